// Package api holds the wire types of Nimbus's HTTP management API, its
// stable error codes, and a small client. It is exported so programs other
// than the nimbus CLI can drive a node.
package api

import (
	"time"
)

// Stable error codes. Clients branch on these, never on messages.
const (
	CodeInvalid         = "InvalidRequest"
	CodeUnauthorized    = "Unauthorized"
	CodeNotFound        = "NotFound"
	CodeConflict        = "Conflict"
	CodePayloadTooLarge = "PayloadTooLarge"
	CodeThrottled       = "TooManyRequests"
	CodeFunctionError   = "FunctionError"
	CodeTimeout         = "Timeout"
	CodeMemoryLimit     = "MemoryLimitExceeded"
	CodeUnavailable     = "Unavailable"
	CodeInternal        = "InternalError"
	CodeMethod          = "MethodNotAllowed"
)

// Headers set on invocation responses.
const (
	HeaderInvocationID  = "X-Nimbus-Invocation-Id"
	HeaderFunctionError = "X-Nimbus-Function-Error"
	HeaderColdStart     = "X-Nimbus-Cold-Start"
	HeaderStatus        = "X-Nimbus-Status"
	HeaderDurationMS    = "X-Nimbus-Duration-Ms"
	HeaderVersion       = "X-Nimbus-Executed-Version"
)

// Error is the body of every error response: {"error": {...}}.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the offending field of a spec or manifest, when known.
	Field string `json:"field,omitempty"`
	// Type is the function's own error type for FunctionError.
	Type string `json:"type,omitempty"`
	// InvocationID is set when an invocation ran (or was throttled).
	InvocationID string `json:"invocation_id,omitempty"`
	// Status is the HTTP status (filled in by the client).
	Status int `json:"-"`
}

// ErrorBody wraps Error on the wire.
type ErrorBody struct {
	Error *Error `json:"error"`
}

func (e *Error) Error() string {
	msg := e.Message
	if e.Type != "" {
		msg = e.Type + ": " + msg
	}
	return msg
}

// Function is a deployed function as the API shows it.
type Function struct {
	Name        string            `json:"name"`
	Runtime     string            `json:"runtime"`
	Code        string            `json:"code"`
	Handler     string            `json:"handler,omitempty"`
	Memory      int               `json:"memory"`
	Timeout     string            `json:"timeout"`
	Min         int               `json:"min"`
	Max         int               `json:"max"`
	IdleTimeout string            `json:"idle_timeout"`
	Concurrency int               `json:"concurrency,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Version     string            `json:"version,omitempty"`
	Created     time.Time         `json:"created,omitzero"`
	Updated     time.Time         `json:"updated,omitzero"`
	// Async configures asynchronous invocation (see AsyncConfig).
	Async *AsyncConfig `json:"async,omitempty"`
	// Uses lists the tables and buckets the function may use (data.go).
	Uses *Uses `json:"uses,omitempty"`
	// Instances is filled by GET of one function: live instances on the node.
	Instances *PoolStats `json:"instances,omitempty"`
}

// PoolStats is the state of a function's instances on the answering node.
type PoolStats struct {
	Instances int `json:"instances"`
	Idle      int `json:"idle"`
	Inflight  int `json:"inflight"`
	Starting  int `json:"starting"`
	Queued    int `json:"queued"`
}

// FunctionList is the body of GET /api/v1/functions.
type FunctionList struct {
	Functions []Function `json:"functions"`
}

// PutFunctionResult is the body of PUT /api/v1/functions/{name}.
type PutFunctionResult struct {
	Function Function `json:"function"`
	// Change is created, updated or unchanged.
	Change string `json:"change"`
}

// CodeResult is the body of PUT /api/v1/code.
type CodeResult struct {
	Digest string `json:"digest"`
	Size   int    `json:"size"`
}

// Record is one invocation record.
type Record struct {
	ID          string    `json:"id"`
	Function    string    `json:"function"`
	Version     string    `json:"version"`
	Source      string    `json:"source"`
	Status      string    `json:"status"`
	Started     time.Time `json:"started"`
	QueueMS     float64   `json:"queue_ms"`
	InitMS      float64   `json:"init_ms"`
	DurationMS  float64   `json:"duration_ms"`
	BilledMS    int64     `json:"billed_ms"`
	MemoryMB    int       `json:"memory_mb"`
	MaxMemoryMB float64   `json:"max_memory_mb"`
	ColdStart   bool      `json:"cold_start"`
	TraceID     string    `json:"trace_id"`
	Error       string    `json:"error,omitempty"`
	ErrorType   string    `json:"error_type,omitempty"`
	Logs        string    `json:"logs,omitempty"`
	LogsTrunc   bool      `json:"logs_truncated,omitempty"`
	RequestSize int       `json:"request_bytes"`
	ResultSize  int       `json:"response_bytes"`
}

// RecordList is the body of GET /api/v1/functions/{name}/invocations.
type RecordList struct {
	Invocations []Record `json:"invocations"`
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status  string `json:"status"`
	Version string `json:"version,omitempty"`
}

// Alias is a named pointer at a published version.
type Alias struct {
	Name        string             `json:"name"`
	Function    string             `json:"function,omitempty"`
	Version     string             `json:"version"`
	Weights     map[string]float64 `json:"weights,omitempty"`
	Description string             `json:"description,omitempty"`
	Updated     time.Time          `json:"updated,omitzero"`
}

// PublishResult is the body of POST /api/v1/functions/{name}/versions.
type PublishResult struct {
	Function Function `json:"function"`
	// Created is false when $LATEST was unchanged since the newest version,
	// which is then returned.
	Created bool `json:"created"`
}

// VersionList is the body of GET /api/v1/functions/{name}/versions.
type VersionList struct {
	Versions []Function `json:"versions"`
}

// AliasList is the body of GET /api/v1/functions/{name}/aliases.
type AliasList struct {
	Aliases []Alias `json:"aliases"`
}

// PutAliasResult is the body of PUT /api/v1/functions/{name}/aliases/{alias}.
type PutAliasResult struct {
	Alias  Alias  `json:"alias"`
	Change string `json:"change"`
}
