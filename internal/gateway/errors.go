package gateway

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
	"github.com/nimbus-run/nimbus/internal/events/webhook"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway/apigw"
	"github.com/nimbus-run/nimbus/internal/gateway/auth"
	"github.com/nimbus-run/nimbus/internal/httpbody"
)

// ErrMethodNotAllowed is wrapped when a user route has the request's path
// but not its method (405).
var ErrMethodNotAllowed = errors.New("method not allowed")

// errorFor maps an engine error to its HTTP status and stable code. This is
// the only place that does.
func errorFor(err error) (int, *api.Error) {
	e := &api.Error{Message: err.Error()}
	var fe *function.FieldError
	switch {
	// Data services: the finer kinds first, as each also matches a
	// function sentinel below.
	case errors.Is(err, data.ErrConditionFailed):
		e.Code = api.CodeConditionFailed
		return http.StatusConflict, e
	case errors.Is(err, data.ErrNotEmpty):
		e.Code = api.CodeNotEmpty
		return http.StatusConflict, e
	case errors.Is(err, data.ErrInvalidRange):
		e.Code = api.CodeInvalidRange
		return http.StatusRequestedRangeNotSatisfiable, e
	case errors.Is(err, httpbody.ErrStalled):
		e.Code = api.CodeRequestTimeout
		return http.StatusRequestTimeout, e
	case errors.Is(err, data.ErrPreconditionFailed):
		e.Code = api.CodePreconditionFailed
		return http.StatusPreconditionFailed, e
	case errors.Is(err, data.ErrForbidden), errors.Is(err, data.ErrBadSignature):
		e.Code = api.CodeAccessDenied
		return http.StatusForbidden, e
	// User routes (the API gateway): auth errors carry detail for the log
	// only; the message is the public one.
	case errors.Is(err, auth.ErrMissingCredentials), errors.Is(err, auth.ErrInvalidCredentials):
		e.Code, e.Message = api.CodeUnauthorized, auth.PublicMessage(err)
		return http.StatusUnauthorized, e
	case errors.Is(err, auth.ErrForbidden):
		e.Code, e.Message = api.CodeForbidden, auth.PublicMessage(err)
		return http.StatusForbidden, e
	case errors.Is(err, auth.ErrUnavailable):
		e.Code, e.Message = api.CodeUnavailable, auth.PublicMessage(err)
		return http.StatusServiceUnavailable, e
	case errors.Is(err, auth.ErrMalformedAuthorizerResponse):
		e.Code = api.CodeInternal
		return http.StatusInternalServerError, e
	case errors.Is(err, apigw.ErrMalformedResponse):
		// The function answered something that is not an HTTP response.
		e.Code = api.CodeBadGateway
		return http.StatusBadGateway, e
	case errors.Is(err, ErrMethodNotAllowed):
		e.Code = api.CodeMethod
		return http.StatusMethodNotAllowed, e
	// Events: an unknown event format, and webhooks whose signature fails.
	case errors.Is(err, cloudevent.ErrNotCloudEvent):
		e.Code = api.CodeUnsupportedMediaType
		return http.StatusUnsupportedMediaType, e
	case errors.Is(err, webhook.ErrMissingSignature), errors.Is(err, webhook.ErrBadSignature), errors.Is(err, webhook.ErrStale):
		e.Code = api.CodeBadSignature
		return http.StatusUnauthorized, e
	case errors.As(err, &fe):
		e.Code, e.Field = api.CodeInvalid, fe.Field
		return http.StatusBadRequest, e
	case errors.Is(err, function.ErrInvalid):
		e.Code = api.CodeInvalid
		return http.StatusBadRequest, e
	case errors.Is(err, function.ErrNotFound):
		e.Code = api.CodeNotFound
		return http.StatusNotFound, e
	case errors.Is(err, function.ErrPayloadTooBig):
		e.Code = api.CodePayloadTooLarge
		return http.StatusRequestEntityTooLarge, e
	case errors.Is(err, function.ErrThrottled):
		e.Code = api.CodeThrottled
		return http.StatusTooManyRequests, e
	case errors.Is(err, function.ErrTimeout):
		e.Code = api.CodeTimeout
		return http.StatusGatewayTimeout, e
	case errors.Is(err, function.ErrMemoryLimit):
		e.Code = api.CodeMemoryLimit
		return http.StatusInternalServerError, e
	case errors.Is(err, function.ErrFunction):
		e.Code = api.CodeFunctionError
		return http.StatusInternalServerError, e
	case errors.Is(err, function.ErrConflict):
		e.Code = api.CodeConflict
		return http.StatusConflict, e
	case errors.Is(err, function.ErrUnavailable):
		e.Code = api.CodeUnavailable
		return http.StatusServiceUnavailable, e
	}
	e.Code, e.Message = api.CodeInternal, "internal error: "+err.Error()
	return http.StatusInternalServerError, e
}

func writeError(w http.ResponseWriter, err error) {
	status, e := errorFor(err)
	writeAPIError(w, status, e)
}

// WriteError writes err as the management API does: status, stable code
// and the whole message. For surfaces built by other packages.
func WriteError(w http.ResponseWriter, err error) { writeError(w, err) }

// ErrorAnswer is the status and JSON body WriteError writes for err, for
// surfaces that carry answers without an http.ResponseWriter.
func ErrorAnswer(err error) (int, []byte) {
	status, e := errorFor(err)
	b, _ := json.Marshal(api.ErrorBody{Error: e})
	return status, b
}

// WritePublicError writes err to a client of a user route, who may be
// anyone: the status and stable code as usual, but a message that is the
// status text, except for a bad request or an oversized body, where the
// detail is about the client's own input. The caller logs err itself.
func WritePublicError(w http.ResponseWriter, err error) {
	status, e := errorFor(err)
	if status != http.StatusBadRequest && status != http.StatusRequestEntityTooLarge {
		e.Message, e.Field, e.Type = http.StatusText(status), "", ""
	}
	writeAPIError(w, status, e)
}

func writeAPIError(w http.ResponseWriter, status int, e *api.Error) {
	if status == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, api.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v) //nolint:errcheck // the client went away
}

// LambdaError maps an engine error to the HTTP status and error code
// (X-Amzn-ErrorType) of AWS Lambda's API, for the Invoke API of package
// lambdaapi. Function errors and timeouts are not errors there (Lambda
// answers 200 with X-Amz-Function-Error) and are handled before this.
func LambdaError(err error) (status int, code string) {
	switch {
	case errors.Is(err, function.ErrInvalid):
		return http.StatusBadRequest, "InvalidParameterValueException"
	case errors.Is(err, function.ErrNotFound):
		return http.StatusNotFound, "ResourceNotFoundException"
	case errors.Is(err, function.ErrPayloadTooBig):
		return http.StatusRequestEntityTooLarge, "RequestTooLargeException"
	case errors.Is(err, function.ErrThrottled):
		return http.StatusTooManyRequests, "TooManyRequestsException"
	case errors.Is(err, function.ErrConflict):
		return http.StatusConflict, "ResourceConflictException"
	case errors.Is(err, function.ErrUnavailable):
		return http.StatusServiceUnavailable, "ServiceException"
	}
	return http.StatusInternalServerError, "ServiceException"
}
