// Package invoke is the one path every invocation takes: resolve the
// function, take the deadline from its timeout, acquire an instance from its
// pool, run, and leave exactly one record. Surfaces (gateway, CLI through the
// API, triggers, workflows) call Invoker.Invoke; none of them touch pools.
package invoke

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/pool"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// Catalog resolves a function name and qualifier ($LATEST, a version or an
// alias) to the spec to run (the registry).
type Catalog interface {
	Resolve(name, qualifier string) (*function.Spec, error)
}

// Observer counts finished invocations (the metrics).
type Observer interface {
	Observe(fn, status string, d time.Duration, cold bool)
}

// Request is one invocation.
type Request struct {
	Function  string
	Qualifier string
	Payload   []byte
	// Source says where it came from: http, cli, async, schedule, ...
	Source string
	// TraceID is a W3C trace id (32 hex digits); one is made when empty.
	TraceID string
	// ID is the invocation id; one is made when empty.
	ID string
	// HTTP describes the HTTP request that caused the invocation, if any.
	HTTP *runtime.HTTPInfo
	// ClientContext is the caller's client context (Lambda's, as JSON),
	// passed to runtimes that expose it.
	ClientContext string
}

// Response is the outcome of an invocation that ran.
type Response struct {
	Payload []byte
	// Err is set when the function failed; the payload is then empty.
	Err    *runtime.FunctionError
	Record *function.Record
}

// Invoker runs invocations.
type Invoker struct {
	cat      Catalog
	pools    *pool.Manager
	rec      *Recorder
	obs      Observer
	log      *slog.Logger
	maxInput int
}

// Config configures an Invoker.
type Config struct {
	// MaxPayload bounds the request payload (default 6 MiB, Lambda's sync limit).
	MaxPayload int
}

// New returns an Invoker.
func New(cfg Config, cat Catalog, pools *pool.Manager, rec *Recorder, obs Observer, log *slog.Logger) *Invoker {
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = 6 << 20
	}
	return &Invoker{cat: cat, pools: pools, rec: rec, obs: obs, log: log, maxInput: cfg.MaxPayload}
}

// NewID returns a random UUID-formatted invocation id.
func NewID() string {
	var b [16]byte
	putUint64(b[:8], rand.Uint64())
	putUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

// NewTraceID returns a random W3C trace id.
func NewTraceID() string {
	var b [16]byte
	putUint64(b[:8], rand.Uint64())
	putUint64(b[8:], rand.Uint64())
	return hex.EncodeToString(b[:])
}

func putUint64(b []byte, v uint64) {
	for i := range 8 {
		b[i] = byte(v >> (8 * i))
	}
}

// Invoke runs req and waits for its result. The function's timeout is the
// one deadline, from here through queueing and cold start to the instance.
//
// # Errors
// Wrapping function.ErrNotFound, ErrPayloadTooBig (no record: nothing ran);
// ErrThrottled, ErrTimeout, ErrFunction, ErrMemoryLimit, ErrUnavailable (a
// record was written and is in the Response, which is then non-nil).
func (iv *Invoker) Invoke(ctx context.Context, req *Request) (*Response, error) {
	spec, err := iv.cat.Resolve(req.Function, req.Qualifier)
	if err != nil {
		return nil, err
	}
	if len(req.Payload) > iv.maxInput {
		return nil, fmt.Errorf("payload is %d bytes, the limit is %d: %w", len(req.Payload), iv.maxInput, function.ErrPayloadTooBig)
	}
	p, err := iv.pools.Pool(spec)
	if err != nil {
		return nil, err
	}
	if req.ID == "" {
		req.ID = NewID()
	}
	if req.TraceID == "" {
		req.TraceID = NewTraceID()
	}
	start := time.Now()
	timeout := time.Duration(spec.Timeout)
	ctx, cancel := context.WithDeadline(ctx, start.Add(timeout))
	defer cancel()

	rec := &function.Record{
		ID: req.ID, Function: spec.Name, Version: spec.Version, Source: req.Source,
		Started: start.UTC(), MemoryMB: spec.MemoryMB, TraceID: req.TraceID,
		RequestSize: len(req.Payload),
	}
	resp := &Response{Record: rec}

	lease, err := p.Acquire(ctx)
	if err != nil {
		rec.QueueMS = ms(time.Since(start))
		iv.finish(rec, err, 0, false)
		return resp, err
	}
	rec.QueueMS = ms(lease.Queued)
	rec.ColdStart = lease.Cold
	rec.InitMS = ms(lease.Init)

	runStart := time.Now()
	res, err := lease.Instance.Invoke(ctx, &runtime.Request{
		ID: req.ID, TraceID: req.TraceID, Payload: req.Payload,
		Deadline: start.Add(timeout), HTTP: req.HTTP, ClientContext: req.ClientContext,
	})
	run := time.Since(runStart)
	lease.Release()
	if res != nil {
		rec.Logs = string(res.Logs)
		rec.LogsTrunc = res.LogsTruncated
		rec.MaxMemoryMB = math.Round(float64(res.MaxMemoryBytes)/(1<<20)*100) / 100
	}
	switch {
	case err != nil && errors.Is(err, function.ErrTimeout):
		err = fmt.Errorf("%s timed out after %s while running: %w", spec.Name, timeout, function.ErrTimeout)
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("%s timed out after %s while running (%v): %w", spec.Name, timeout, err, function.ErrTimeout)
	case err != nil:
		err = fmt.Errorf("%s: instance failed: %w", spec.Name, err)
	case res.Err != nil:
		resp.Err = res.Err
		rec.ErrorType = res.Err.Type
		err = fmt.Errorf("%s: %w: %s", spec.Name, function.ErrFunction, res.Err.Error())
	default:
		resp.Payload = res.Payload
		rec.ResultSize = len(res.Payload)
	}
	iv.finish(rec, err, run, lease.Cold)
	return resp, err
}

func (iv *Invoker) finish(rec *function.Record, err error, run time.Duration, cold bool) {
	rec.DurationMS = ms(run)
	rec.BilledMS = int64(math.Ceil(rec.DurationMS))
	if rec.BilledMS < 1 && run > 0 {
		rec.BilledMS = 1
	}
	switch {
	case err == nil:
		rec.Status = function.StatusOK
	case errors.Is(err, function.ErrThrottled):
		rec.Status = function.StatusThrottled
	case errors.Is(err, function.ErrTimeout):
		rec.Status = function.StatusTimeout
	default:
		rec.Status = function.StatusError
	}
	if err != nil {
		rec.Error = err.Error()
		if rec.ErrorType == "" {
			rec.ErrorType = errorType(err)
		}
	}
	if iv.obs != nil {
		iv.obs.Observe(rec.Function, rec.Status, run, cold)
	}
	iv.rec.Add(rec)
}

func errorType(err error) string {
	switch {
	case errors.Is(err, function.ErrThrottled):
		return "TooManyRequestsException"
	case errors.Is(err, function.ErrTimeout):
		return "Sandbox.Timedout"
	case errors.Is(err, function.ErrMemoryLimit):
		return "Runtime.OutOfMemory"
	default:
		return "Runtime.Error"
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
