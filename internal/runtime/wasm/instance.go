package wasm

import (
	"context"
	"errors"
	"fmt"
	"io"
	goruntime "runtime"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// Causes of an instance's stop, told apart with context.Cause.
var (
	errTimeout        = errors.New("invocation deadline")
	errCanceled       = errors.New("invocation canceled")
	errInstanceClosed = errors.New("instance closed")
	errExited         = errors.New("guest exited") // it stopped by itself
	errNotReusable    = errors.New("wasm: instance is not reusable")
)

// instance is what both module styles share: one module instance whose
// _start runs on its own goroutine, the guest's goroutine.
type instance struct {
	rt    *Runtime
	memMB int
	mem   *linearMemory
	// ctx is the guest's context: cancelling it (stop) raises the module's
	// interrupt flag, so running code traps at its next loop head
	// (interrupt.go), and wakes every blocking host call (next, stdin,
	// sleep).
	ctx    context.Context
	cancel context.CancelCauseFunc
	// unwatch stops raising the flag on cancel (set before run starts).
	unwatch func() bool
	done    chan struct{} // closed once _start has returned and the module is closed
	// exitErr is what _start returned; read only after done.
	exitErr error
	initDur time.Duration
}

func (r *Runtime) newInstance(spec *function.Spec, m *module) *instance {
	ctx, cancel := context.WithCancelCause(context.Background())
	return &instance{
		rt:     r,
		memMB:  spec.MemoryMB,
		mem:    newLinearMemory(memoryLimit(spec), m.image, r.reaper),
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
	}
}

// launch instantiates m and runs its _start on the guest's goroutine with
// callCtx (in.ctx, possibly with values for host functions). ctx bounds the
// instantiation, including a module's start section.
func (in *instance) launch(ctx, callCtx context.Context, spec *function.Spec, m *module, stdin io.Reader, stdout, stderr io.Writer) error {
	r := in.rt
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		in.cancel(errRuntimeClosed)
		return errRuntimeClosed
	}
	r.instances[in] = struct{}{}
	r.wg.Add(1)
	r.mu.Unlock()

	started := time.Now()
	cfg := r.moduleConfig(spec, in, stdin, stdout, stderr)
	mod, err := r.wr.InstantiateModule(experimental.WithMemoryAllocator(ctx, in.mem.allocator()), m.compiled, cfg)
	if err == nil && in.mem.tooBig {
		_ = mod.Close(context.Background())
		err = in.memoryError()
	}
	if err != nil {
		in.cancel(err)
		in.exitErr = err
		close(in.done)
		in.forget()
		if errors.Is(err, function.ErrMemoryLimit) {
			return err
		}
		return fmt.Errorf("instantiate: %w", err)
	}
	in.initDur = time.Since(started)
	if g, ok := mod.ExportedGlobal(interruptExport).(api.MutableGlobal); ok {
		in.unwatch = context.AfterFunc(in.ctx, func() { g.Set(1) })
	}
	go in.run(callCtx, mod)
	return nil
}

// run is the guest's goroutine.
func (in *instance) run(ctx context.Context, mod api.Module) {
	defer in.forget()
	_, err := mod.ExportedFunction("_start").Call(ctx)
	if in.unwatch != nil {
		in.unwatch()
	}
	in.exitErr = err
	in.cancel(errExited) // release the context's resources; a cause set earlier stays
	// The invocation's outcome is complete: let Invoke have it before the
	// module is torn down (unmapping a used memory takes a while).
	close(in.done)
	// Let the invocation waiting for done run on this thread now, before
	// the teardown: handing it to another (sleeping) thread costs a wake-up,
	// and waiting for the teardown costs the unmapping.
	goruntime.Gosched()
	// Closing only now that _start has returned: wazero frees the memory on
	// close, which must not happen under a running guest.
	_ = mod.Close(context.Background())
}

// stoppedBy returns why the runtime stopped the guest (Close, Runtime.Close),
// or nil when it stopped by itself. Call after done.
func (in *instance) stoppedBy() error {
	if cause := context.Cause(in.ctx); cause != nil && cause != errExited {
		return cause
	}
	return nil
}

// forget unregisters the instance from its runtime.
func (in *instance) forget() {
	in.rt.mu.Lock()
	delete(in.rt.instances, in)
	in.rt.mu.Unlock()
	in.rt.wg.Done()
}

// stop asks the guest to stop; it does not wait.
func (in *instance) stop(cause error) { in.cancel(cause) }

// exited reports whether the guest has stopped.
func (in *instance) exited() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// waitStopped waits up to stopGrace for the guest to stop after stop.
func (in *instance) waitStopped() bool {
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-in.done:
		return true
	case <-t.C:
		in.rt.log.Warn("wasm: guest did not stop within the grace period", "grace", stopGrace)
		return false
	}
}

// close stops the guest and waits for it (or ctx).
func (in *instance) close(ctx context.Context) error {
	in.stop(errInstanceClosed)
	select {
	case <-in.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wasm: close instance: %w", ctx.Err())
	}
}

// InitDuration implements runtime.InitReporter.
func (in *instance) InitDuration() time.Duration { return in.initDur }

// Capacity implements runtime.Instance: a guest is single-threaded.
func (in *instance) Capacity() int { return 1 }

// nanosleep is the guest's sleep: the wall clock, cut short by stop.
func (in *instance) nanosleep(ns int64) {
	if ns <= 0 {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.ctx.Done():
	}
}

func (in *instance) memoryError() error {
	return fmt.Errorf("%w (%d MB)", function.ErrMemoryLimit, in.memMB)
}

// expire stops the guest after ctx (the invocation's) ended, and returns the
// error for it: function.ErrTimeout on a deadline.
func (in *instance) expire(ctx context.Context) error {
	deadline := errors.Is(ctx.Err(), context.DeadlineExceeded)
	if deadline {
		in.stop(errTimeout)
	} else {
		in.stop(errCanceled)
	}
	in.waitStopped()
	if deadline {
		return fmt.Errorf("wasm: invoke: %w", function.ErrTimeout)
	}
	return fmt.Errorf("wasm: invoke: %w", context.Cause(ctx))
}

// failure describes why the guest stopped, from its exit and its output
// (read only after done). A refused memory grow makes it a memory-limit
// error, which is returned as the Go error (the instance failed); otherwise
// it is the function's error.
func (in *instance) failure(output []byte) (*runtime.FunctionError, error) {
	if in.mem.exceeded.Load() {
		return nil, in.memoryError()
	}
	msg, trace := errorSummary(output)
	var exit *sys.ExitError
	switch err := in.exitErr; {
	case err == nil || errors.As(err, &exit):
		if msg == "" {
			code := uint32(0)
			if exit != nil {
				code = exit.ExitCode()
			}
			msg = fmt.Sprintf("exit status %d", code)
		}
	default:
		// A trap: wazero's message is "wasm error: <reason>" and a wasm
		// stack trace; the guest's own output, if any, says more.
		first, stack, _ := strings.Cut(err.Error(), "\n")
		if msg == "" {
			msg = first
			for _, line := range strings.Split(stack, "\n") {
				if line = strings.TrimSpace(line); line != "" && len(trace) < 64 {
					trace = append(trace, line)
				}
			}
		} else {
			msg = first + ": " + msg
		}
	}
	return &runtime.FunctionError{Type: "Runtime.ExitError", Message: msg, Trace: trace}, nil
}

// deadlineOf is the deadline an invocation tells the guest.
func deadlineOf(ctx context.Context, req *runtime.Request) time.Time {
	if !req.Deadline.IsZero() {
		return req.Deadline
	}
	d, _ := ctx.Deadline()
	return d
}

// exitStatus decodes what _start returned: an exit code (0 for a normal
// return), or trapped for a trap or host panic.
func exitStatus(err error) (code uint32, trapped bool) {
	if err == nil {
		return 0, false
	}
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), false
	}
	return 0, true
}

func byteSize(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
