// Package cloudevent owns the CloudEvents 1.0 edge of Nimbus: reading an
// event from an HTTP request (binary or structured content mode), creating
// events, and their JSON form, which is what Nimbus stores on JetStream and
// what event patterns match.
//
// It is a thin layer over the CloudEvents Go SDK (sdk-go v2): the SDK does
// the binding and the JSON format; this package adds a body size limit,
// errors callers can branch on, and one rule the rest of Nimbus relies on:
// a payload with a JSON media type is valid JSON and sits under "data", so
// patterns can address it, while a binary payload sits under "data_base64".
//
// It does not own HTTP routes, authentication or delivery.
package cloudevent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
)

// Event is a CloudEvent, the SDK's type, so that callers need not import it.
type Event = event.Event

// DefaultMaxBody bounds a request body when FromHTTP is given no limit. It
// is generous for events (EventBridge allows 256 KiB) and small enough that
// a hostile client cannot make a node buffer much.
const DefaultMaxBody = 1 << 20

// Errors callers branch on; the gateway maps ErrTooLarge to 413,
// ErrNotCloudEvent to 415 and ErrMalformed to 400.
var (
	ErrTooLarge      = errors.New("cloudevent: body too large")
	ErrNotCloudEvent = errors.New("cloudevent: not a CloudEvent")
	ErrMalformed     = errors.New("cloudevent: malformed event")
)

// FromHTTP reads one event from r in binary mode (ce-* headers, the body is
// the data) or structured mode (Content-Type application/cloudevents+json,
// the body is the event). It reads at most maxBody bytes of body
// (DefaultMaxBody when maxBody <= 0) and consumes r.Body.
//
// # Errors
//
// ErrTooLarge, ErrNotCloudEvent (no ce-specversion header and no
// CloudEvents content type, or batch mode, which is not supported), or
// ErrMalformed wrapping the reason (bad JSON, missing required attribute,
// invalid extension name, JSON media type with a body that is not JSON).
func FromHTTP(r *http.Request, maxBody int64) (Event, error) {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
		if err != nil {
			return Event{}, fmt.Errorf("%w: read body: %v", ErrMalformed, err)
		}
		if int64(len(b)) > maxBody {
			return Event{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, maxBody)
		}
		body = b
	}
	msg := cehttp.NewMessage(r.Header, io.NopCloser(bytes.NewReader(body)))
	defer msg.Finish(nil)
	switch msg.ReadEncoding() {
	case binding.EncodingBinary, binding.EncodingStructured:
	case binding.EncodingBatch:
		return Event{}, fmt.Errorf("%w: batch mode (application/cloudevents-batch+json) is not supported", ErrNotCloudEvent)
	default:
		ct := r.Header.Get("Content-Type")
		if strings.HasPrefix(strings.ToLower(ct), "application/cloudevents") {
			return Event{}, fmt.Errorf("%w: unsupported event format %q (want application/cloudevents+json)", ErrNotCloudEvent, ct)
		}
		return Event{}, fmt.Errorf("%w: no ce-specversion header (binary mode) and content type %q is not application/cloudevents+json (structured mode)", ErrNotCloudEvent, ct)
	}
	if v := r.Header.Get("Ce-Specversion"); v != "" && v != event.CloudEventsVersionV1 {
		return Event{}, fmt.Errorf("%w: specversion %q, want 1.0", ErrMalformed, v)
	}
	e, err := binding.ToEvent(context.Background(), msg)
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := normalize(e); err != nil {
		return Event{}, err
	}
	return *e, nil
}

// New creates an event with a fresh UUID id and the current time. data may
// be nil; contentType describes it ("application/json" when empty and data
// is set).
//
// # Errors
//
// ErrMalformed when source or type is empty, or when a JSON contentType is
// given data that is not JSON.
func New(source, typ, subject string, data []byte, contentType string) (Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	e.SetID(uuid.NewString())
	e.SetSource(source)
	e.SetType(typ)
	if subject != "" {
		e.SetSubject(subject)
	}
	e.SetTime(time.Now().UTC())
	if data != nil {
		if contentType == "" {
			contentType = event.ApplicationJSON
		}
		e.SetDataContentType(contentType)
		e.DataEncoded = append([]byte(nil), data...)
	}
	if err := normalize(&e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// ToJSON encodes e in the CloudEvents JSON format (structured mode body).
func ToJSON(e Event) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("cloudevent: encode: %w", err)
	}
	return b, nil
}

// FromJSON decodes an event in the CloudEvents JSON format, as stored on
// JetStream.
func FromJSON(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := normalize(&e); err != nil {
		return Event{}, err
	}
	return e, nil
}

// normalize validates e and decides how its data travels in JSON: as JSON
// under "data" for a JSON media type (which must then be valid JSON), as a
// string for valid UTF-8 text, else base64 under "data_base64". The SDK
// alone would write a binary-mode body that is not valid JSON verbatim into
// "data" and produce a document nobody can parse.
func normalize(e *Event) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if e.DataEncoded == nil {
		return nil
	}
	mt := e.DataMediaType()
	if mt == "" {
		mt = event.ApplicationJSON
	}
	switch {
	case isJSON(mt):
		if e.DataBase64 {
			// Structured mode may carry JSON as data_base64; keep it so.
			return nil
		}
		if !json.Valid(e.DataEncoded) {
			return fmt.Errorf("%w: data is not valid JSON but its content type is %q", ErrMalformed, mt)
		}
	case isText(mt) && utf8.Valid(e.DataEncoded):
		// A string under "data", as the JSON format prescribes for text.
	default:
		e.DataBase64 = true
	}
	return nil
}

func isJSON(mt string) bool {
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}

func isText(mt string) bool {
	if m, _, err := mime.ParseMediaType(mt); err == nil {
		mt = m
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/xml" || strings.HasSuffix(mt, "+xml")
}
