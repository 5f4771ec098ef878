package wasm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// sdkInstance is a long-lived guest looping on the nimbus host module: its
// _start blocks in nimbus.next until Invoke hands it a call, and answers with
// nimbus.respond or nimbus.error.
//
// Ownership: the fields under "guest" are touched only by the guest's
// goroutine (host functions run on it), so they need no lock; a call and its
// outcome cross goroutines through channels.
type sdkInstance struct {
	*instance
	calls  chan *call    // Invoke -> next; unbuffered: a send means the guest took it
	ready  chan struct{} // closed at the guest's first next: init is over
	broken atomic.Bool   // a failure or timeout: not to be reused

	spec   *function.Spec // whose permissions nimbus.api calls carry
	api    http.Handler   // Config.API for spec; nil without one
	tables Tables         // Config.Tables for spec; nil without one

	// guest
	readied    bool
	pending    *call                 // handed over, not yet read (the guest's buffer was too small)
	cur        *call                 // read by the guest, not yet answered
	logs       *logBuffer            // where the guest's output goes now
	result     []byte                // a nimbus.api result that did not fit, for api_result
	streams    map[int32]*bodyStream // open streamed bodies (hoststream.go)
	lastStream int32
}

// call is one invocation in flight.
type call struct {
	req      *runtime.Request
	deadline time.Time
	out      chan outcome // buffered: the guest never blocks on answering

	// apiCtx bounds the invocation's data calls (apiContext): made on the
	// first, shared by the rest, stopped by answer.
	apiCtx  context.Context
	apiStop context.CancelFunc
}

// outcome is the guest's answer to a call.
type outcome struct {
	payload []byte
	ferr    *runtime.FunctionError
	logs    *logBuffer
	mem     uint64
}

var (
	_ runtime.Instance     = (*sdkInstance)(nil)
	_ runtime.InitReporter = (*sdkInstance)(nil)
)

// sdkKey finds the sdkInstance in the context host functions receive.
type sdkKey struct{}

func (r *Runtime) startSDK(ctx context.Context, spec *function.Spec, m *module) (*sdkInstance, error) {
	in := r.newInstance(spec, m)
	s := &sdkInstance{
		instance: in,
		spec:     spec,
		calls:    make(chan *call),
		ready:    make(chan struct{}),
		logs:     newLogBuffer(runtime.MaxLogBytes),
	}
	if r.cfg.API != nil {
		s.api = r.cfg.API(spec)
	}
	if r.cfg.Tables != nil {
		s.tables = r.cfg.Tables(spec)
	}
	out := guestOutput{s}
	started := time.Now()
	if err := in.launch(ctx, context.WithValue(in.ctx, sdkKey{}, s), spec, m, emptyReader{}, out, out); err != nil {
		return nil, err
	}
	initTimer := time.NewTimer(r.cfg.InitTimeout)
	defer initTimer.Stop()
	select {
	case <-s.ready:
		s.initDur = time.Since(started)
		return s, nil
	case <-s.done:
		// The guest exited during init; its output is safe to read now.
		ferr, err := s.failure(s.logs.Bytes())
		if err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
		return nil, fmt.Errorf("init: %w", ferr)
	case <-ctx.Done():
		s.stop(context.Cause(ctx))
		return nil, fmt.Errorf("init: %w", context.Cause(ctx))
	case <-initTimer.C:
		s.stop(errTimeout)
		return nil, fmt.Errorf("init: %w: no nimbus.next call within %s", function.ErrTimeout, r.cfg.InitTimeout)
	}
}

// Invoke implements runtime.Instance.
func (s *sdkInstance) Invoke(ctx context.Context, req *runtime.Request) (*runtime.Result, error) {
	if s.broken.Load() {
		return nil, errNotReusable
	}
	c := &call{req: req, deadline: deadlineOf(ctx, req), out: make(chan outcome, 1)}
	select {
	case s.calls <- c:
	case <-s.done:
		s.broken.Store(true)
		if cause := s.stoppedBy(); cause != nil {
			return nil, fmt.Errorf("wasm: invoke: %w", cause)
		}
		return nil, fmt.Errorf("wasm: invoke: the instance exited between invocations: %w", s.exitError())
	case <-ctx.Done():
		// The guest is not in next: it is still busy after its last answer.
		s.broken.Store(true)
		return &runtime.Result{}, s.expire(ctx)
	}
	select {
	case o := <-c.out:
		return o.result(), nil
	case <-s.done:
		select {
		case o := <-c.out: // answered, then exited
			s.broken.Store(true)
			return o.result(), nil
		default:
		}
		s.broken.Store(true)
		// The guest exited or trapped mid-invocation: a function error, the
		// instance is discarded. Its output is safe to read after done.
		res := &runtime.Result{
			Logs:           s.logs.Bytes(),
			LogsTruncated:  s.logs.Truncated(),
			MaxMemoryBytes: s.mem.size.Load(),
		}
		if cause := s.stoppedBy(); cause != nil {
			return res, fmt.Errorf("wasm: invoke: %w", cause) // closed under it
		}
		ferr, err := s.failure(res.Logs)
		if err != nil {
			return res, err
		}
		res.Err = ferr
		return res, nil
	case <-ctx.Done():
		select {
		case o := <-c.out: // answered just in time
			return o.result(), nil
		default:
		}
		s.broken.Store(true)
		err := s.expire(ctx)
		res := &runtime.Result{MaxMemoryBytes: s.mem.size.Load()}
		if s.exited() {
			res.Logs, res.LogsTruncated = s.logs.Bytes(), s.logs.Truncated()
		}
		return res, err
	}
}

func (o outcome) result() *runtime.Result {
	return &runtime.Result{
		Payload:        o.payload,
		Err:            o.ferr,
		Logs:           o.logs.Bytes(),
		LogsTruncated:  o.logs.Truncated(),
		MaxMemoryBytes: o.mem,
	}
}

// exitError describes a guest that exited; call after done.
func (s *sdkInstance) exitError() error {
	ferr, err := s.failure(s.logs.Bytes())
	if err != nil {
		return err
	}
	return ferr
}

// Reusable implements runtime.Instance.
func (s *sdkInstance) Reusable() bool { return !s.broken.Load() && !s.exited() }

// Close implements runtime.Instance.
func (s *sdkInstance) Close(ctx context.Context) error { return s.close(ctx) }

// guestOutput sends the guest's stdout and stderr to the current logs.
type guestOutput struct{ s *sdkInstance }

func (g guestOutput) Write(p []byte) (int, error) { return g.s.logs.Write(p) }

// emptyReader is an SDK guest's stdin: events come through nimbus.next.
type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, io.EOF }
