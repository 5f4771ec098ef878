package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// The data and event calls speak the node's HTTP API (docs/data.md,
// docs/http-api.md) with the function's own credential: over HTTP from a
// process (NIMBUS_API, NIMBUS_DATA_TOKEN), through the nimbus.api host call
// from WebAssembly (docs/wasm-abi.md). One client serves both builds; only
// roundTrip differs.

// Errors that data and event calls wrap, for errors.Is.
var (
	// ErrNotFound: no such item, object, table or bucket.
	ErrNotFound = errors.New("not found")
	// ErrConditionFailed: a conditional write (IfAbsent, IfRevision) found
	// another revision.
	ErrConditionFailed = errors.New("condition failed")
	// ErrAccessDenied: the function's spec does not list the table or
	// bucket under uses (the message names what is missing).
	ErrAccessDenied = errors.New("access denied")
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
		return e.Code == "ConditionFailed"
	case ErrAccessDenied:
		return e.Code == "AccessDenied"
	}
	return false
}

// ErrorType names the error by its code when a handler returns an
// *APIError as is (the SDK's calls return it wrapped: errors.As finds it).
func (e *APIError) ErrorType() string { return e.Code }

// apiRequest and apiResponse are the envelope of nimbus.api, and what the
// native build turns into HTTP.
type apiRequest struct {
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Query  string            `json:"query,omitempty"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
}

type apiResponse struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
}

func (r *apiResponse) header(name string) string {
	return r.Header[canonicalHeader(name)]
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
	if resp.Status >= 200 && resp.Status < 300 {
		return resp, nil
	}
	e := &APIError{Status: resp.Status}
	var body struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
		} `json:"error"`
	}
	if json.Unmarshal(resp.Body, &body) == nil && body.Error != nil {
		e.Code, e.Message, e.Field = body.Error.Code, body.Error.Message, body.Error.Field
	}
	if e.Code == "" {
		// A HEAD answer has no body: the status says it all.
		e.Code = codeOfStatus(resp.Status)
	}
	return nil, e
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
	case 503:
		return "Unavailable"
	}
	return "InternalError"
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
		req.Header = map[string]string{"Content-Type": "application/json"}
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
