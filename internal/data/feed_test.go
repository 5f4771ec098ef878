package data

import (
	"context"
	"testing"
	"time"
)

// TestCatchUpWaitsWhileTheIndexProgresses: a reader waits for an index
// that keeps applying messages for longer than the stall limit (one being
// built over a large bucket), and gives up on one that stops.
func TestCatchUpWaitsWhileTheIndexProgresses(t *testing.T) {
	ctx := context.Background()
	f := &feed{what: "test"}
	const stall, steps = 500 * time.Millisecond, 60
	go func() {
		for seq := uint64(1); seq <= steps; seq++ { // 1.2 s, more than twice the stall limit
			time.Sleep(20 * time.Millisecond)
			f.mu.Lock()
			f.advance(seq)
			f.mu.Unlock()
		}
	}()
	if err := f.catchUp(ctx, steps, stall); err != nil {
		t.Fatalf("a progressing index: %v", err)
	}
	start := time.Now()
	if err := f.catchUp(ctx, steps+1, stall); err == nil {
		t.Fatal("an index that applies nothing caught up")
	}
	if waited := time.Since(start); waited < stall || waited > 4*stall {
		t.Errorf("gave up on a stopped index after %s, want about %s", waited, stall)
	}
}
