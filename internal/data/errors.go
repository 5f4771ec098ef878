package data

import (
	"errors"
	"fmt"

	"github.com/nimbus-run/nimbus/internal/function"
)

// Errors callers branch on. Each also matches the function package's
// sentinel of the same meaning under errors.Is, so surfaces that know only
// those (the management API) map them correctly; the S3 API tells the
// finer ones apart.
var (
	// ErrNoSuchTable, ErrNoSuchBucket, ErrNoSuchKey and ErrNoSuchUpload are
	// "not found" errors.
	ErrNoSuchTable  error = kindError{"no such table", function.ErrNotFound}
	ErrNoSuchBucket error = kindError{"no such bucket", function.ErrNotFound}
	ErrNoSuchKey    error = kindError{"no such key", function.ErrNotFound}
	ErrNoSuchUpload error = kindError{"no such multipart upload", function.ErrNotFound}
	// ErrConditionFailed: a conditional write found another revision (or
	// an item where none was to be).
	ErrConditionFailed error = kindError{"condition failed", function.ErrConflict}
	// ErrNotEmpty: deleting a table or bucket that holds data without force.
	ErrNotEmpty error = kindError{"not empty", function.ErrConflict}
	// ErrExists: creating what exists with another definition.
	ErrExists error = kindError{"already exists", function.ErrConflict}
	// ErrForbidden: the function's spec does not list the table or bucket.
	ErrForbidden error = kindError{"access denied", nil}
	// ErrInvalidRange: an HTTP Range outside the object.
	ErrInvalidRange error = kindError{"requested range not satisfiable", function.ErrInvalid}
	// ErrInvalidPart: a part number past an object's parts (ObjectInfo.Part).
	ErrInvalidPart error = kindError{"no such part", function.ErrInvalid}
	// ErrNotModified and ErrPreconditionFailed: a conditional read of an
	// object (CheckConditions) answered with 304 and 412.
	ErrNotModified        error = kindError{"not modified", nil}
	ErrPreconditionFailed error = kindError{"precondition failed", nil}
	// ErrTooLarge: an item or object over its limit.
	ErrTooLarge error = kindError{"too large", function.ErrPayloadTooBig}
	// ErrBusy: an upload that waited for its turn (Config.MaxUploads)
	// longer than a put may keep its first chunk waiting (Config.OrphanAge).
	ErrBusy error = kindError{"too many uploads in progress", function.ErrUnavailable}
	// ErrBadSignature: a presigned URL that was tampered with or expired.
	ErrBadSignature error = kindError{"bad or expired signature", nil}
)

// kindError is a sentinel that also matches a broader sentinel.
type kindError struct {
	msg   string
	broad error
}

func (e kindError) Error() string { return e.msg }

func (e kindError) Is(target error) bool { return e.broad != nil && target == e.broad }

// invalid returns a field error (400).
func invalid(field, format string, args ...any) error {
	return function.Invalid(field, format, args...)
}

func wrapf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel)
}

// IsNotFound reports whether err is any "not found".
func IsNotFound(err error) bool { return errors.Is(err, function.ErrNotFound) }
