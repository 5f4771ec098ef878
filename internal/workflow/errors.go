package workflow

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
)

var b64 = base64.RawURLEncoding

// Error is a Step Functions API error: Type is the exception name AWS uses
// (StateMachineDoesNotExist, InvalidDefinition, ...), which SDKs turn into
// typed errors. Engine methods return it for everything a caller can fix.
type Error struct {
	Type    string
	Message string
	Status  int // HTTP status; 400 unless set
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// The exception names of the Step Functions API.
const (
	errStateMachineDoesNotExist   = "StateMachineDoesNotExist"
	errStateMachineAlreadyExists  = "StateMachineAlreadyExists"
	errStateMachineDeleting       = "StateMachineDeleting"
	errStateMachineTypeNotSupport = "StateMachineTypeNotSupported"
	errInvalidDefinition          = "InvalidDefinition"
	errInvalidName                = "InvalidName"
	errInvalidArn                 = "InvalidArn"
	errInvalidExecutionInput      = "InvalidExecutionInput"
	errExecutionDoesNotExist      = "ExecutionDoesNotExist"
	errExecutionAlreadyExists     = "ExecutionAlreadyExists"
	errExecutionLimitExceeded     = "ExecutionLimitExceeded"
	errTaskDoesNotExist           = "TaskDoesNotExist"
	errTaskTimedOut               = "TaskTimedOut"
	errInvalidToken               = "InvalidToken"
	errInvalidOutput              = "InvalidOutput"
	errValidation                 = "ValidationException"
	errUnknownOperation           = "UnknownOperationException"
	errSerialization              = "SerializationException"
	errUnrecognizedClient         = "UnrecognizedClientException"
	errInternal                   = "InternalFailure"
	errServiceUnavailable         = "ServiceUnavailable"
)

func apiErr(typ, format string, args ...any) *Error {
	return &Error{Type: typ, Message: fmt.Sprintf(format, args...)}
}

// toAPIError maps any error to the exception a client sees: engine errors
// keep their type, everything else is an internal failure (500).
func toAPIError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Status == 0 {
			e.Status = http.StatusBadRequest
		}
		return e
	}
	return &Error{Type: errInternal, Message: err.Error(), Status: http.StatusInternalServerError}
}
