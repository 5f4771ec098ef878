package asl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// RunOptions configures Run.
type RunOptions struct {
	// Context describes the execution; StartTime defaults to Now().
	Context ExecContext
	// Function invokes a function for Task states that call one (a function
	// ARN or name as Resource, or arn:aws:states:::lambda:invoke). It returns
	// the response payload, or the function's error (see FunctionError).
	Function func(ctx context.Context, call FunctionCall) (json.RawMessage, *Error)
	// Invoke performs any other Task resource with the task's input. For
	// ".waitForTaskToken" resources it returns the output the token's owner
	// sends back.
	Invoke func(ctx context.Context, resource string, input json.RawMessage) (json.RawMessage, *Error)
	// Now and Sleep are the clock (defaults: time.Now and a real sleep).
	// A VirtualClock makes Waits and retry backoffs instant in tests.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// MaxConcurrentTasks bounds the task calls in flight (default 64).
	MaxConcurrentTasks int
}

// Run executes m to completion in the calling goroutine (tasks that are
// pending together are invoked concurrently). It is the runner for Express
// workflows and tests; Standard workflows are driven by the durable executor
// through Start/Pending/Complete/Fire. The returned execution holds the
// status, output or error, and the history events (unless NoHistory).
// An error is returned only when ctx ends first or an option is missing.
func Run(ctx context.Context, m *Machine, input json.RawMessage, opts RunOptions) (*Execution, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	sleep := opts.Sleep
	if sleep == nil {
		sleep = realSleep
	}
	ec := opts.Context
	if ec.StartTime.IsZero() {
		ec.StartTime = now()
	}
	ex, err := m.Start(input, ec)
	if err != nil {
		return nil, err
	}
	limit := opts.MaxConcurrentTasks
	if limit <= 0 {
		limit = 64
	}
	for !ex.Done() {
		if err := ctx.Err(); err != nil {
			return ex, err
		}
		pending := ex.Pending()
		var tasks, timers []Action
		for _, a := range pending {
			if a.Kind == ActionTask {
				tasks = append(tasks, a)
			} else {
				timers = append(timers, a)
			}
		}
		if len(tasks) > 0 {
			results := make([]Result, len(tasks))
			sem := make(chan struct{}, limit)
			var wg sync.WaitGroup
			for i, a := range tasks {
				if len(tasks) == 1 {
					results[i] = runTask(ctx, a, opts)
					break
				}
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					results[i] = runTask(ctx, a, opts)
				}()
			}
			wg.Wait()
			if err := ctx.Err(); err != nil {
				return ex, err
			}
			for i, a := range tasks {
				if err := ex.Complete(a.ID, results[i], now()); err != nil && !errors.Is(err, ErrUnknownAction) && !errors.Is(err, ErrNotRunning) {
					return ex, err
				}
			}
			continue
		}
		if len(timers) == 0 {
			return ex, fmt.Errorf("asl: execution is stuck with no pending action")
		}
		earliest := timers[0].Until
		for _, a := range timers[1:] {
			if a.Until.Before(earliest) {
				earliest = a.Until
			}
		}
		if d := earliest.Sub(now()); d > 0 {
			if err := sleep(ctx, d); err != nil {
				return ex, err
			}
		}
		at := now()
		for _, a := range timers {
			if !a.Until.After(at) || a.Until.Equal(earliest) {
				if err := ex.Fire(a.ID, at); err != nil && !errors.Is(err, ErrUnknownAction) && !errors.Is(err, ErrNotRunning) {
					return ex, err
				}
			}
		}
	}
	return ex, nil
}

func runTask(ctx context.Context, a Action, opts RunOptions) Result {
	tctx := ctx
	if a.TimeoutSeconds > 0 {
		var cancel context.CancelFunc
		tctx, cancel = context.WithTimeout(ctx, time.Duration(a.TimeoutSeconds)*time.Second)
		defer cancel()
	}
	var out json.RawMessage
	var terr *Error
	switch {
	case a.Function != nil && opts.Function != nil:
		out, terr = opts.Function(tctx, *a.Function)
		if terr == nil && a.TaskToken != "" && opts.Invoke != nil {
			// The function was started; the result comes with the token.
			out, terr = opts.Invoke(tctx, a.Resource, a.Input)
		}
	case a.Function == nil && opts.Invoke != nil:
		out, terr = opts.Invoke(tctx, a.Resource, a.Input)
	default:
		terr = &Error{Error: ErrTaskFailed, Cause: fmt.Sprintf("no invoker is configured for resource '%s'", a.Resource)}
	}
	if terr == nil && tctx.Err() != nil && ctx.Err() == nil {
		terr = &Error{Error: ErrTimeout, Cause: fmt.Sprintf("The task did not finish within %d seconds.", a.TimeoutSeconds)}
	}
	if terr != nil && errors.Is(tctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		terr = &Error{Error: ErrTimeout, Cause: fmt.Sprintf("The task did not finish within %d seconds.", a.TimeoutSeconds)}
	}
	return Result{Output: out, Error: terr}
}

func realSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// VirtualClock is a clock whose Sleep returns at once after moving time
// forward; with it, Run finishes hour-long Waits instantly.
type VirtualClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewVirtualClock returns a clock that starts at start.
func NewVirtualClock(start time.Time) *VirtualClock { return &VirtualClock{t: start} }

// Now returns the clock's time.
func (c *VirtualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Sleep advances the clock by d.
func (c *VirtualClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return nil
}
