package store

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestAnswering: a bucket's first read is tried again while it finds no
// responders, and only then; any answer ends the wait.
func TestAnswering(t *testing.T) {
	ctx := context.Background()
	calls := 0
	err := answering(ctx, func() error {
		if calls++; calls < 4 {
			return nats.ErrNoResponders
		}
		return nats.ErrKeyNotFound
	})
	if err != nil || calls != 4 {
		t.Fatalf("answering = %v after %d reads, want nil after 4", err, calls)
	}
	calls = 0
	if err := answering(ctx, func() error { calls++; return errors.New("timeout") }); err != nil || calls != 1 {
		t.Fatalf("another error: %v after %d reads, want nil after 1 (the bucket's users meet it)", err, calls)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := answering(cancelled, func() error { return nats.ErrNoResponders }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled start: %v, want context.Canceled", err)
	}
}
