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
	e, err := s.results.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("invocation %s: no such async invocation (outcomes are kept %s): %w", id, s.cfg.ResultsTTL, function.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("invocation %s: %w", id, err)
	}
	var out api.Invocation
	if err := json.Unmarshal(e.Value(), &out); err != nil {
		return nil, fmt.Errorf("invocation %s: unreadable outcome: %w", id, err)
	}
	return &out, nil
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
