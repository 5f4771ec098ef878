package sdk

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestInvocationContext(t *testing.T) {
	t.Run("deadline", func(t *testing.T) {
		ctx, cancel := newContext(&invocation{id: "a", deadline: time.Now().Add(50 * time.Millisecond)})
		defer cancel()
		if _, ok := ctx.Deadline(); !ok {
			t.Fatal("Deadline() reports none")
		}
		if err := ctx.Err(); err != nil {
			t.Fatalf("Err() = %v before the deadline", err)
		}
		// A derived context must end with it.
		child, stop := context.WithCancel(ctx)
		defer stop()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("a derived context did not end at the deadline")
		}
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Errorf("Err() = %v, %v; want DeadlineExceeded", ctx.Err(), child.Err())
		}
	})
	t.Run("err-without-done", func(t *testing.T) {
		ctx, cancel := newContext(&invocation{deadline: time.Now().Add(-time.Millisecond)})
		defer cancel()
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			t.Errorf("Err() = %v after the deadline, want DeadlineExceeded", ctx.Err())
		}
		select {
		case <-ctx.Done():
		default:
			t.Error("Done() is open after the deadline")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := newContext(&invocation{id: "c"})
		if _, ok := ctx.Deadline(); ok {
			t.Error("Deadline() reports one; none was given")
		}
		done := ctx.Done()
		cancel()
		cancel()
		<-done
		if !errors.Is(ctx.Err(), context.Canceled) {
			t.Errorf("Err() = %v, want Canceled", ctx.Err())
		}
		if InvocationID(ctx) != "c" {
			t.Errorf("InvocationID = %q, want c", InvocationID(ctx))
		}
	})
}
