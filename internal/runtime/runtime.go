// Package runtime defines what the pool needs from a runtime: something that
// prepares code at deploy time and starts instances that serve invocations.
// The wasm and process subpackages implement it; this package does no I/O.
package runtime

import (
	"context"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
)

// Runtime turns a function spec into instances.
type Runtime interface {
	// Prepare does the deploy-time work for spec (compile, unpack, check) so
	// that Start never does it on the request path. code is the artifact.
	// It returns a *function.FieldError-wrapped error when the code is unusable.
	Prepare(ctx context.Context, spec *function.Spec, code []byte) error
	// Start starts one instance of spec. The returned Init is the cold-start
	// work it did. Start may be called concurrently.
	Start(ctx context.Context, spec *function.Spec) (Instance, error)
	// Forget drops what Prepare kept for a digest no spec uses any more.
	Forget(digest string)
}

// Instance serves invocations until it is closed.
type Instance interface {
	// Invoke runs one invocation. ctx carries the invocation's deadline; when
	// it expires the instance must stop the work and return an error wrapping
	// function.ErrTimeout. A function error is reported in Result.Err, not as
	// the returned error; the returned error means the instance failed (it is
	// then discarded).
	Invoke(ctx context.Context, req *Request) (*Result, error)
	// Capacity is how many invocations the instance serves at once (1 unless
	// a process function sets concurrency).
	Capacity() int
	// Reusable reports whether the instance may serve another invocation
	// (false for WASI commands, which run once, and after a failure).
	Reusable() bool
	// Close stops the instance and frees what it holds.
	Close(ctx context.Context) error
}

// Request is one invocation as an instance sees it.
type Request struct {
	ID       string
	TraceID  string
	Payload  []byte
	Deadline time.Time
	// Meta is passed to runtimes that expose it (client context, identity, ARN).
	ClientContext string
	Identity      string
	// HTTP is set when an HTTP request caused the invocation; runtimes that
	// can expose it to the function do (see docs/http-api.md).
	HTTP *HTTPInfo
}

// HTTPInfo describes the HTTP request behind an invocation.
type HTTPInfo struct {
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Query  string              `json:"query,omitempty"`
	Header map[string][]string `json:"headers,omitempty"`
}

// Result is what an instance returns for one invocation.
type Result struct {
	Payload []byte
	// Err is set when the function itself failed (non-zero exit, SDK error,
	// Lambda error response).
	Err *FunctionError
	// Logs are the invocation's captured logs (bounded by the runtime).
	Logs          []byte
	LogsTruncated bool
	// MaxMemoryBytes is the measured peak memory of the instance, 0 if unknown.
	MaxMemoryBytes uint64
}

// FunctionError is an error raised by function code.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
	// Trace is optional (Lambda's stackTrace).
	Trace []string `json:"stackTrace,omitempty"`
}

func (e *FunctionError) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// RunOnce is implemented by instances that serve exactly one invocation by
// design (WASI commands). The pool keeps replacements for them pre-started;
// an instance that is not reusable because it failed gets no such treatment.
type RunOnce interface {
	RunOnce() bool
}

// Init reports cold-start work; instances that know it implement InitReporter.
type InitReporter interface {
	// InitDuration is the time from start to ready for the first invocation.
	InitDuration() time.Duration
}

// MaxLogBytes bounds the logs captured per invocation.
const MaxLogBytes = 64 << 10
