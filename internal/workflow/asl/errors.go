package asl

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Predefined error names of the States Language.
const (
	ErrALL                             = "States.ALL"
	ErrTaskFailed                      = "States.TaskFailed"
	ErrTimeout                         = "States.Timeout"
	ErrHeartbeatTimeout                = "States.HeartbeatTimeout"
	ErrRuntime                         = "States.Runtime"
	ErrDataLimitExceeded               = "States.DataLimitExceeded"
	ErrBranchFailed                    = "States.BranchFailed"
	ErrResultPathMatchFailure          = "States.ResultPathMatchFailure"
	ErrParameterPathFailure            = "States.ParameterPathFailure"
	ErrItemReaderFailed                = "States.ItemReaderFailed"
	ErrResultWriterFailed              = "States.ResultWriterFailed"
	ErrExceedToleratedFailureThreshold = "States.ExceedToleratedFailureThreshold"
	ErrNoChoiceMatched                 = "States.NoChoiceMatched"
	ErrIntrinsicFailure                = "States.IntrinsicFailure"
	ErrQueryEvaluationError            = "States.QueryEvaluationError"
	ErrPermissions                     = "States.Permissions"
)

// MaxPayloadBytes is the largest state input, output or task result, in
// bytes of compact JSON (256 KiB).
const MaxPayloadBytes = 256 * 1024

// Error is an ASL error: a name that retriers and catchers match, and an
// optional human-readable cause. It is what tasks report and what a failed
// execution ends with.
type Error struct {
	Error string `json:"Error"`
	Cause string `json:"Cause,omitempty"`
}

// Err returns e as a Go error (nil for a nil e).
func (e *Error) Err() error {
	if e == nil {
		return nil
	}
	return failedError{*e}
}

type failedError struct{ e Error }

func (f failedError) Error() string {
	if f.e.Cause == "" {
		return f.e.Error
	}
	return f.e.Error + ": " + f.e.Cause
}

// errorOutput is the JSON a catcher receives: {"Error": ..., "Cause": ...}.
func (e *Error) output() any {
	m := map[string]any{"Error": e.Error}
	if e.Cause != "" {
		m["Cause"] = e.Cause
	}
	return m
}

// FunctionError converts the error payload that a Lambda-style function
// returns ({"errorType": ..., "errorMessage": ...}) into the error Step
// Functions reports: Error is the errorType and Cause the payload itself.
func FunctionError(payload []byte) *Error {
	var p struct {
		ErrorType string `json:"errorType"`
	}
	_ = json.Unmarshal(payload, &p)
	name := p.ErrorType
	if name == "" {
		name = "Lambda.Unknown"
	}
	return &Error{Error: name, Cause: string(payload)}
}

// NewFunctionError builds the error of a function that failed with the given
// type and message, shaped like the Lambda error payload.
func NewFunctionError(errorType, errorMessage string) *Error {
	b := encodeJSON(map[string]any{"errorType": errorType, "errorMessage": errorMessage})
	return FunctionError(b)
}

// stateFailure is an error raised while a state processes its data. The
// executor prefixes its message with the state's name and entry event, as AWS
// does for States.Runtime and friends.
type stateFailure struct {
	name string
	msg  string
	raw  bool // msg is the whole cause (no state prefix)
}

func (f *stateFailure) Error() string { return f.name + ": " + f.msg }

func runtimeFail(format string, args ...any) *stateFailure {
	return &stateFailure{name: ErrRuntime, msg: fmt.Sprintf(format, args...)}
}

func queryFail(format string, args ...any) *stateFailure {
	return &stateFailure{name: ErrQueryEvaluationError, msg: fmt.Sprintf(format, args...)}
}

// Problem is one reason a definition is invalid.
type Problem struct {
	Code    string // e.g. SCHEMA_VALIDATION_FAILED, MISSING_TRANSITION_TARGET
	Path    string // JSON pointer into the definition, e.g. /States/Foo/Next
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Code + ": " + p.Message
	}
	return p.Code + ": " + p.Message + " at " + p.Path
}

// DefinitionError reports an invalid state machine definition. Its message
// follows AWS's InvalidDefinition wording.
type DefinitionError struct {
	Problems []Problem
}

func (e *DefinitionError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = "'" + p.String() + "'"
	}
	return "Invalid State Machine Definition: " + strings.Join(parts, ", ")
}

// errorMatches reports whether a retrier's or catcher's ErrorEquals list
// matches name. States.ALL matches every error except the terminal
// States.Runtime and States.DataLimitExceeded; States.TaskFailed matches every
// task error except States.Timeout. States.Runtime cannot be caught at all.
func errorMatches(list []string, name string) bool {
	if name == ErrRuntime {
		return false
	}
	for _, e := range list {
		switch {
		case e == name:
			return true
		case e == ErrALL:
			if name != ErrDataLimitExceeded {
				return true
			}
		case e == ErrTaskFailed:
			if name != ErrTimeout && name != ErrDataLimitExceeded {
				return true
			}
		}
	}
	return false
}
