package sdk

import (
	"context"
	"sync"
	"time"
)

// invocationContext is the context a handler runs with: the invocation's
// metadata and its deadline. Unlike context.WithDeadline it arms no timer
// until Done is first called: most handlers never wait on Done, and arming
// and stopping a timer per invocation costs a Go WebAssembly guest about as
// much as the rest of a warm invocation. Err reports the deadline without a
// timer, by reading the clock.
type invocationContext struct {
	inv *invocation

	mu    sync.Mutex
	done  chan struct{} // made by the first Done call
	timer *time.Timer
	err   error // set once; done (if made) is closed when it is set
}

var _ context.Context = (*invocationContext)(nil)

func newContext(inv *invocation) (context.Context, context.CancelFunc) {
	c := &invocationContext{inv: inv}
	return c, func() { c.cancel(context.Canceled) }
}

func (c *invocationContext) Deadline() (time.Time, bool) {
	return c.inv.deadline, !c.inv.deadline.IsZero()
}

func (c *invocationContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != nil {
		return c.done
	}
	c.done = make(chan struct{})
	switch {
	case c.err != nil:
		close(c.done)
	case c.expiredLocked():
	case !c.inv.deadline.IsZero():
		c.timer = time.AfterFunc(time.Until(c.inv.deadline), func() { c.cancel(context.DeadlineExceeded) })
	}
	return c.done
}

func (c *invocationContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expiredLocked()
	return c.err
}

func (c *invocationContext) Value(key any) any {
	if key == (ctxKey{}) {
		return c.inv
	}
	return nil
}

func (c *invocationContext) String() string { return "sdk.invocationContext(" + c.inv.id + ")" }

// expiredLocked ends the context if its deadline has passed and reports
// whether it did.
func (c *invocationContext) expiredLocked() bool {
	if c.err == nil && !c.inv.deadline.IsZero() && !time.Now().Before(c.inv.deadline) {
		c.endLocked(context.DeadlineExceeded)
		return true
	}
	return false
}

func (c *invocationContext) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(err)
}

func (c *invocationContext) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
}
