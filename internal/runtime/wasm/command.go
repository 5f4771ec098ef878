package wasm

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// commandInstance runs a WASI command once: the event on stdin, the result on
// stdout, logs on stderr, the exit code for success or failure.
//
// It is started ahead of its invocation: _start runs (Go's runtime init,
// package init, main up to its first read of stdin) while the instance waits
// in the pool, and blocks on stdin until Invoke hands it the event.
type commandInstance struct {
	*instance
	stdin  *stdinFeed
	stdout *boundedBuffer // the guest's goroutine writes; Invoke reads after done
	stderr *logBuffer     // idem
	used   atomic.Bool
}

var (
	_ runtime.Instance     = (*commandInstance)(nil)
	_ runtime.InitReporter = (*commandInstance)(nil)
)

func (r *Runtime) startCommand(ctx context.Context, spec *function.Spec, m *module) (*commandInstance, error) {
	in := r.newInstance(spec, m)
	c := &commandInstance{
		instance: in,
		stdin:    &stdinFeed{ready: make(chan struct{}), stop: in.ctx.Done(), waiting: make(chan struct{})},
		stdout:   &boundedBuffer{limit: r.cfg.MaxResponseBytes},
		stderr:   newLogBuffer(runtime.MaxLogBytes),
	}
	if err := in.launch(ctx, in.ctx, spec, m, c.stdin, c.stdout, c.stderr); err != nil {
		return nil, err
	}
	return c, nil
}

// Invoke implements runtime.Instance. It serves one invocation only.
func (c *commandInstance) Invoke(ctx context.Context, req *runtime.Request) (*runtime.Result, error) {
	if !c.used.CompareAndSwap(false, true) {
		return nil, errNotReusable
	}
	c.stdin.provide(req.Payload)
	select {
	case <-c.done:
	case <-ctx.Done():
		select {
		case <-c.done: // finished just in time: the result stands
		default:
			err := c.expire(ctx)
			return c.partialResult(), err
		}
	}
	res := &runtime.Result{
		Logs:           c.stderr.Bytes(),
		LogsTruncated:  c.stderr.Truncated(),
		MaxMemoryBytes: c.mem.size.Load(),
	}
	if cause := c.stoppedBy(); cause != nil {
		return res, fmt.Errorf("wasm: invoke: %w", cause) // closed under it
	}
	code, trapped := exitStatus(c.exitErr)
	if code != 0 || trapped {
		ferr, err := c.failure(res.Logs)
		if err != nil {
			return res, err
		}
		res.Err = ferr
		return res, nil
	}
	if c.stdout.overflow {
		res.Err = responseTooLarge(c.rt.cfg.MaxResponseBytes)
		return res, nil
	}
	res.Payload = c.stdout.buf
	return res, nil
}

// partialResult is what a stopped guest left, when it stopped in time to
// read it safely.
func (c *commandInstance) partialResult() *runtime.Result {
	res := &runtime.Result{MaxMemoryBytes: c.mem.size.Load()}
	if c.exited() {
		res.Logs, res.LogsTruncated = c.stderr.Bytes(), c.stderr.Truncated()
	}
	return res
}

// Reusable implements runtime.Instance: a command runs once.
func (c *commandInstance) Reusable() bool { return !c.used.Load() && !c.exited() }

// RunOnce tells the pool to keep WASI command instances pre-started.
func (c *commandInstance) RunOnce() bool { return true }

// Close implements runtime.Instance.
func (c *commandInstance) Close(ctx context.Context) error { return c.close(ctx) }

// stdinFeed is a command's stdin: reads block until the event is provided (or
// the instance stops), then return it and io.EOF.
type stdinFeed struct {
	ready chan struct{}
	stop  <-chan struct{}
	data  []byte // written before ready is closed, read after
	// waiting is closed at the first read: the guest has finished its init
	// (benchmarks use it to time Invoke alone).
	waiting     chan struct{}
	waitingOnce sync.Once
}

func (s *stdinFeed) provide(p []byte) {
	s.data = p
	close(s.ready)
}

func (s *stdinFeed) Read(p []byte) (int, error) {
	s.waitingOnce.Do(func() { close(s.waiting) })
	select {
	case <-s.ready:
	case <-s.stop:
		return 0, io.ErrClosedPipe
	}
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, s.data)
	s.data = s.data[n:]
	return n, nil
}

func responseTooLarge(limit int) *runtime.FunctionError {
	return &runtime.FunctionError{
		Type:    "Function.ResponseSizeTooLarge",
		Message: "the response exceeds the maximum of " + byteSize(limit),
	}
}
