package async

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
)

const (
	statusQueued    = api.AsyncQueued
	statusSucceeded = api.AsyncSucceeded
	statusFailed    = api.AsyncFailed
)

// status is the outcome record kept in the results bucket. Its JSON is
// api.Invocation's; the record stays a *function.Record so that no
// conversion runs per invocation.
type status struct {
	ID              string           `json:"id"`
	Function        string           `json:"function"`
	Status          string           `json:"status"`
	Source          string           `json:"source,omitempty"`
	Enqueued        time.Time        `json:"enqueued"`
	Finished        time.Time        `json:"finished,omitzero"`
	Attempts        int              `json:"attempts"`
	Result          json.RawMessage  `json:"result,omitempty"`
	ResultTruncated bool             `json:"result_truncated,omitempty"`
	Error           string           `json:"error,omitempty"`
	ErrorType       string           `json:"error_type,omitempty"`
	Record          *function.Record `json:"record,omitempty"`
}

func (s *status) encode() []byte {
	b, _ := json.Marshal(s) // plain data: cannot fail
	return b
}

func decodeStatus(b []byte) (*status, error) {
	var st status
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// resultJSON turns a function's result into JSON for the status record:
// JSON as it is, text as a JSON string, anything else as base64 in a string.
func resultJSON(p []byte) (json.RawMessage, bool) {
	if len(p) > maxResultBytes {
		return nil, true
	}
	if len(p) == 0 {
		return nil, false
	}
	if json.Valid(p) {
		return p, false
	}
	var s string
	if utf8.Valid(p) {
		s = string(p)
	} else {
		s = base64.StdEncoding.EncodeToString(p)
	}
	b, _ := json.Marshal(s)
	return b, false
}

// Invocation returns the tracked state of an async invocation.
//
// # Errors
//
// Wrapping function.ErrNotFound when the id is unknown or its outcome has
// expired.
func (s *Service) Invocation(ctx context.Context, id string) (*api.Invocation, error) {
	if !validID(id) {
		return nil, fmt.Errorf("invocation %q: %w", truncate(id, 80), function.ErrNotFound)
	}
	out, err := s.outcome(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// No outcome yet: the invocation may still wait in the queue. Its
		// message is found by subject (nimbus.async.*.<id>); accepting an
		// event writes nothing else.
		out, err = s.pending(ctx, id)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			// A worker may have written the outcome and acknowledged (so
			// deleted) the message between the two reads: look again.
			out, err = s.outcome(ctx, id)
		}
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("invocation %s: no such async invocation (outcomes are kept %s): %w", id, s.cfg.ResultsTTL, function.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("invocation %s: %w", id, err)
	}
	return out, nil
}

// outcome reads the record of id from the results bucket: written by the
// worker when an attempt fails (status queued, for a retry) and when the
// invocation is done.
func (s *Service) outcome(ctx context.Context, id string) (*api.Invocation, error) {
	e, err := s.results.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	var out api.Invocation
	if err := json.Unmarshal(e.Value(), &out); err != nil {
		return nil, fmt.Errorf("unreadable outcome: %w", err)
	}
	return &out, nil
}

// pending describes id from its message still in the queue (waiting or
// running its first attempt).
//
// # Errors
//
// jetstream.ErrMsgNotFound when the queue holds no message for id.
func (s *Service) pending(ctx context.Context, id string) (*api.Invocation, error) {
	m, err := s.stream.GetLastMsgForSubject(ctx, SubjectPrefix+"*."+subjectToken(id))
	if err != nil {
		return nil, err
	}
	ev, err := parseEvent(m.Subject, m.Header, m.Data)
	if err != nil || ev.id != id {
		return nil, jetstream.ErrMsgNotFound
	}
	return &api.Invocation{ID: id, Function: ev.fn, Status: statusQueued, Source: ev.source, Enqueued: ev.enqueued}, nil
}

type metrics struct {
	enqueued  prometheus.Counter
	outcomes  *prometheus.CounterVec
	retries   prometheus.Counter
	throttled prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		enqueued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nimbus_async_enqueued_total", Help: "Asynchronous invocations accepted (durably queued).",
		}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_async_outcomes_total", Help: "Asynchronous invocations finished, by status (succeeded, failed) and reason.",
		}, []string{"status", "reason"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nimbus_async_retries_total", Help: "Failed attempts of asynchronous invocations scheduled for retry.",
		}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nimbus_async_throttled_total", Help: "Attempts that waited for capacity (not counted as retries).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.enqueued, m.outcomes, m.retries, m.throttled} {
			if err := reg.Register(c); err != nil {
				// Registered already by an earlier node in the same process
				// (tests): the counters still count, just unexported.
				_ = err
			}
		}
	}
	return m
}
