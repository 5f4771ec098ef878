package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nimbus-run/nimbus/internal/apitext"
)

// The data and event calls speak the node's HTTP API (docs/data.md,
// docs/http-api.md) with the function's own credential: over HTTP from a
// process (NIMBUS_API, NIMBUS_DATA_TOKEN), through the nimbus.api_v2 host call
// from WebAssembly (docs/wasm-abi.md). One client serves both builds; only
// roundTrip differs.

// Errors that data and event calls wrap, for errors.Is.
var (
	// ErrNotFound: no such item, object, table or bucket.
	ErrNotFound = errors.New("not found")
	// ErrConditionFailed: a conditional write (IfAbsent, IfRevision;
	// PutIfAbsent, PutIfMatch) found another revision or object.
	ErrConditionFailed = errors.New("condition failed")
	// ErrAccessDenied: the function's spec does not list the table or
	// bucket under uses (the message names what is missing).
	ErrAccessDenied = errors.New("access denied")
	// ErrInvalidRange: a ranged read (Bucket.GetRange) starts at or past
	// the end of the object.
	ErrInvalidRange = errors.New("invalid range")
)

// APIError is an error answer of the node: its stable code (as in
// docs/http-api.md), HTTP status and message.
type APIError struct {
	Status  int
	Code    string
	Message string
	// Field names the offending field, when the node says.
	Field string
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%s (status %d)", e.Code, e.Status)
	}
	return e.Code + ": " + e.Message
}

// Is lets errors.Is match the sentinel errors by code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == "NotFound"
	case ErrConditionFailed:
		return e.Code == "ConditionFailed" || e.Code == "PreconditionFailed"
	case ErrAccessDenied:
		return e.Code == "AccessDenied"
	case ErrInvalidRange:
		return e.Code == "InvalidRange"
	}
	return false
}

// ErrorType names the error by its code when a handler returns an
// *APIError as is (the SDK's calls return it wrapped: errors.As finds it).
func (e *APIError) ErrorType() string { return e.Code }

// apiRequest and apiResponse are a data call: what the wasm build frames
// for nimbus.api_v2 (internal/apitext) and the native build turns into
// HTTP.
type apiRequest = apitext.Request

type apiResponse struct {
	Status int
	Header map[string]string // canonical names; see headers
	Body   []byte

	// head is an api_v2 answer's header lines, left unparsed until asked
	// for: most answers are read for their body only, and a map costs a
	// wasm guest microseconds.
	head []byte
}

// parseTextResponse reads a nimbus.api_v2 answer. The answer keeps none of
// b: the caller reuses it.
func parseTextResponse(b []byte) (*apiResponse, error) {
	status, head, body, err := apitext.ParseResponse(bytes.Clone(b))
	if err != nil {
		return nil, fmt.Errorf("nimbus.api_v2: %w", err)
	}
	out := &apiResponse{Status: status, head: head}
	if len(body) > 0 {
		out.Body = body
	}
	return out, nil
}

// headers returns the answer's headers, parsing them on first use.
func (r *apiResponse) headers() map[string]string {
	if r.Header == nil && len(r.head) > 0 {
		r.Header = apitext.Headers(r.head)
	}
	return r.Header
}

func (r *apiResponse) header(name string) string {
	return r.headers()[canonicalHeader(name)]
}

// canonicalHeader is net/http's CanonicalHeaderKey for valid names: the
// SDK does not import net/http in shared code, which would add about 2 MB
// to every wasm module.
func canonicalHeader(s string) string {
	b := []byte(s)
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - ('a' - 'A')
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c + ('a' - 'A')
		}
		upper = c == '-'
	}
	return string(b)
}

// do runs req and turns an error answer into an *APIError.
func do(ctx context.Context, req *apiRequest) (*apiResponse, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp, err := roundTrip(ctx, req)
	if err != nil {
		return nil, err
	}
	return answerOf(resp)
}

// answerOf is resp, or the *APIError an answer outside 2xx stands for.
func answerOf(resp *apiResponse) (*apiResponse, error) {
	if resp.Status < 200 || resp.Status > 299 {
		return nil, answerError(resp.Status, resp.Body)
	}
	return resp, nil
}

// answerError is the error an answer of status with body (the API's JSON
// error, if any) stands for.
func answerError(status int, b []byte) *APIError {
	e := &APIError{Status: status}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error != nil {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
	}
	if e.Code == "" {
		// A HEAD answer has no body: the status says it all.
		e.Code = codeOfStatus(status)
	}
	return e
}

func codeOfStatus(status int) string {
	switch status {
	case 400:
		return "InvalidRequest"
	case 403:
		return "AccessDenied"
	case 404:
		return "NotFound"
	case 409:
		return "Conflict"
	case 412:
		return "ConditionFailed"
	case 413:
		return "PayloadTooLarge"
	case 416:
		return "InvalidRange"
	case 503:
		return "Unavailable"
	}
	return "InternalError"
}

// jsonHeader is the header of a JSON request; not to be changed.
var jsonHeader = map[string]string{"Content-Type": "application/json"}

// doBody sends body, JSON, with method to path.
func doBody(ctx context.Context, method, path string, body []byte) (*apiResponse, error) {
	return do(ctx, &apiRequest{Method: method, Path: path, Body: body, Header: jsonHeader})
}

// doJSON sends in as JSON (when not nil) and decodes the answer into out
// (when not nil).
func doJSON(ctx context.Context, method, path string, in, out any) error {
	req := &apiRequest{Method: method, Path: path}
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		req.Body = b
		req.Header = jsonHeader
	}
	resp, err := do(ctx, req)
	if err != nil {
		return err
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}
