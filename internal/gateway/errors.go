package gateway

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
)

// errorFor maps an engine error to its HTTP status and stable code. This is
// the only place that does.
func errorFor(err error) (int, *api.Error) {
	e := &api.Error{Message: err.Error()}
	var fe *function.FieldError
	switch {
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

func writeAPIError(w http.ResponseWriter, status int, e *api.Error) {
	if status == http.StatusTooManyRequests {
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
