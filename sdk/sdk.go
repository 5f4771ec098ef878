// Package sdk is the Go SDK for Nimbus functions. A function is a handler
// passed to Start; the same source builds for both Nimbus runtimes:
//
//   - GOOS=wasip1 GOARCH=wasm: a long-lived WebAssembly instance that loops on
//     the host functions of the "nimbus" module (docs/wasm-abi.md).
//   - any native GOOS: a process speaking the AWS Lambda Runtime API at
//     $AWS_LAMBDA_RUNTIME_API, so the binary runs under Nimbus's process
//     runtime and on AWS Lambda (provided.al2023) alike.
//
// # Logs
//
// Everything the function writes to stdout or stderr (fmt.Println, the log
// package, log/slog) becomes the invocation's logs in both builds. Log writes
// one entry through the runtime's log call; prefer it when a message must not
// interleave with partial writes of other output.
//
// # Errors and panics
//
// An error returned by the handler becomes an error response
// {"errorType", "errorMessage"}. The type is Error.Type for an *Error, the
// result of an ErrorType() string method when the error has one, "Error" for
// the anonymous errors of errors.New and fmt.Errorf, and the Go type name
// otherwise (for example "PathError"). A panic in the handler is recovered and
// reported as type "Runtime.Panic" with the stack in "stackTrace"; the
// instance keeps serving. Call os.Exit to force a fresh instance.
//
// This package does not own the runtimes: it only speaks their protocols.
package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Handler handles one invocation. event is the invocation's payload (JSON by
// convention); the result is marshaled with encoding/json, except that a
// json.RawMessage is sent as is.
type Handler func(ctx context.Context, event json.RawMessage) (any, error)

// Start runs the invocation loop with h and never returns. It exits the
// process when the runtime cannot be reached.
//
// A process function with concurrency N (AWS_LAMBDA_MAX_CONCURRENCY, as
// on Lambda Managed Instances) runs N loops: h is then called from N
// goroutines at once and must be safe for concurrent use.
func Start(h Handler) {
	if h == nil {
		panic("sdk: Start needs a handler")
	}
	start(h)
}

// Error is an error with an explicit errorType, for handlers that want to
// choose what callers see (Lambda's Step Functions Retry/Catch match on it).
type Error struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *Error) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// errorBody is the error JSON both runtimes accept.
type errorBody struct {
	Type    string   `json:"errorType"`
	Message string   `json:"errorMessage"`
	Trace   []string `json:"stackTrace,omitempty"`
}

// invocation is the metadata of the invocation being served.
type invocation struct {
	id       string
	traceID  string
	deadline time.Time

	// The HTTP request is decoded on first use (most handlers never ask):
	// httpRaw is its JSON when the runtime sent it with the invocation
	// (native); the wasm build asks the host instead.
	httpRaw  string
	httpOnce sync.Once
	http     *HTTPInfo
}

type ctxKey struct{}

// InvocationID returns the ID of the invocation ctx belongs to, or "".
func InvocationID(ctx context.Context) string {
	if inv, ok := ctx.Value(ctxKey{}).(*invocation); ok {
		return inv.id
	}
	return ""
}

// TraceID returns the trace context of the invocation ctx belongs to (a W3C
// traceparent on Nimbus, X-Amzn-Trace-Id on AWS), or "".
func TraceID(ctx context.Context) string {
	if inv, ok := ctx.Value(ctxKey{}).(*invocation); ok {
		return inv.traceID
	}
	return ""
}

// Log writes msg as one log entry of the current invocation. A newline is
// added when msg lacks one.
func Log(ctx context.Context, msg string) {
	if !strings.HasSuffix(msg, "\n") {
		msg += "\n"
	}
	writeLog(msg)
}

// Logf is Log with fmt.Sprintf formatting.
func Logf(ctx context.Context, format string, args ...any) {
	Log(ctx, fmt.Sprintf(format, args...))
}

// invoke runs h on one event and returns either the response payload or the
// error to report. It never panics.
func invoke(inv *invocation, h Handler, event []byte) (payload []byte, ferr *errorBody) {
	ctx, cancel := newContext(inv)
	defer cancel()
	defer func() {
		if v := recover(); v != nil {
			payload = nil
			ferr = &errorBody{
				Type:    "Runtime.Panic",
				Message: fmt.Sprint(v),
				Trace:   strings.Split(strings.TrimSpace(string(debug.Stack())), "\n"),
			}
		}
	}()
	res, err := h(ctx, json.RawMessage(event))
	if err != nil {
		msg := err.Error()
		if se, ok := err.(*Error); ok {
			msg = se.Message // its Error() repeats the type, which has its own field
		}
		return nil, &errorBody{Type: errorType(err), Message: msg}
	}
	switch v := res.(type) {
	case nil:
		return []byte("null"), nil
	case json.RawMessage:
		// Sent as is, so a handler can return bytes it already encoded (an
		// echo returns its event) without a decode/encode round trip.
		if len(v) == 0 {
			return []byte("null"), nil
		}
		return v, nil
	}
	b, err := json.Marshal(res)
	if err != nil {
		return nil, &errorBody{Type: "Runtime.MarshalError", Message: err.Error()}
	}
	return b, nil
}

// errorType names err for the errorType field.
func errorType(err error) string {
	var se *Error
	if errors.As(err, &se) && se.Type != "" {
		return se.Type
	}
	if t, ok := err.(interface{ ErrorType() string }); ok {
		if s := t.ErrorType(); s != "" {
			return s
		}
	}
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.PkgPath() + "." + t.Name() {
	case "errors.errorString", "fmt.wrapError", "fmt.wrapErrors", "errors.joinError":
		// The anonymous errors of errors.New and fmt.Errorf: their type names
		// say nothing to a caller.
		return "Error"
	}
	if t.Name() == "" {
		return "Error"
	}
	return t.Name()
}

// marshalError encodes e, falling back to a fixed body if it cannot (it can
// only fail on invalid UTF-8, which encoding/json replaces, so never).
func marshalError(e *errorBody) []byte {
	b, err := json.Marshal(e)
	if err != nil {
		return []byte(`{"errorType":"Runtime.MarshalError","errorMessage":"cannot encode error"}`)
	}
	return b
}
