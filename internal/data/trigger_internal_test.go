package data

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// counter is an Invoker that counts the records of the batches it gets.
type counter struct {
	mu      sync.Mutex
	records int
	batches int
}

func (c *counter) Invoke(_ context.Context, req *invoke.Request) (*invoke.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records += strings.Count(string(req.Payload), `"eventName"`)
	c.batches++
	return &invoke.Response{Payload: []byte(`null`)}, nil
}

func (c *counter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.records
}

// cpuTime is the CPU time the test process has used.
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startOrdersTrigger starts a service on a JetStream of its own, with a
// table "orders" keyed by id, and the trigger spec on it, which a counter
// serves; all stop at cleanup.
func startOrdersTrigger(t testing.TB, spec TriggerSpec) (*Service, *Trigger, *counter) {
	t.Helper()
	ctx := context.Background()
	s := New(Config{}, storetest.Open(t))
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	if _, _, err := s.PutTable(ctx, TableDef{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	c := &counter{}
	tr, err := s.StartTrigger(ctx, spec, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Stop)
	return s, tr, c
}

// TestTriggerConsumerGone: a trigger whose durable consumer disappears
// (deleted by hand, lost with a server) says so and waits between its
// fetches, where it fetched as fast as the failures came (a core's worth
// of CPU) and never delivered again; once the consumer has been gone for
// consumerGrace it is made anew after the last batch the runner
// acknowledged, and the changes made meanwhile are delivered.
func TestTriggerConsumerGone(t *testing.T) {
	// Restored after the trigger stops (cleanups run last first).
	grace := consumerGrace
	t.Cleanup(func() { consumerGrace = grace })
	consumerGrace = 2 * time.Second
	ctx := context.Background()
	s, tr, c := startOrdersTrigger(t, TriggerSpec{Function: "f", Name: "gone", Table: "orders"})
	put := func(id string) {
		t.Helper()
		if _, err := s.Put(ctx, "orders", []byte(`{"id":"`+id+`"}`), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for c.count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%d records delivered, want %d (last error %q)", c.count(), n, tr.LastError())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	put("a")
	wait(1)

	if err := tr.stream.DeleteConsumer(ctx, tr.cfg.Durable); err != nil {
		t.Fatal(err)
	}
	put("b")
	start, cpu := time.Now(), cpuTime(t)
	time.Sleep(consumerGrace / 2)
	if used, took := cpuTime(t)-cpu, time.Since(start); used > took/3 {
		t.Errorf("the process used %v of CPU in %v while the trigger's consumer was gone", used, took)
	}
	if e := tr.LastError(); !strings.Contains(e, "is gone") {
		t.Errorf("last error %q while the consumer is gone, want it to say so", e)
	}
	// b, and not a again: made anew after a, not from the trigger's
	// start (new: b would be lost) nor from the oldest change.
	wait(2)
	put("c")
	wait(3)
	time.Sleep(100 * time.Millisecond)
	if n := c.count(); n != 3 {
		t.Errorf("%d records delivered, want 3 (a change delivered twice)", n)
	}
}

// TestTriggerDelivers: a change made alone reaches the trigger's function
// at once, and changes made together go in one batch, or two. A fetch of
// a whole batch waited for it to fill or for its second to end: a lone
// change arrived 0.85 s late here.
func TestTriggerDelivers(t *testing.T) {
	ctx := context.Background()
	s, _, c := startOrdersTrigger(t, TriggerSpec{Function: "f", Name: "soon", Table: "orders", Batch: 10})
	var lags []time.Duration
	for i := range 5 {
		time.Sleep(150 * time.Millisecond)
		start := time.Now()
		if _, err := s.Put(ctx, "orders", []byte(fmt.Sprintf(`{"id":"%d"}`, i)), PutOptions{}); err != nil {
			t.Fatal(err)
		}
		for c.count() < i+1 {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("change %d not delivered after 5s", i)
			}
			time.Sleep(time.Millisecond)
		}
		lags = append(lags, time.Since(start))
	}
	slices.Sort(lags)
	if lags[2] > 200*time.Millisecond {
		t.Errorf("a lone change reached the function after %v (median of %v)", lags[2], lags)
	}
	c.mu.Lock()
	batches := c.batches
	for i := range 7 {
		if _, err := s.Put(ctx, "orders", []byte(fmt.Sprintf(`{"id":"b%d"}`, i)), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	c.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for c.count() < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("%d records delivered, want 12", c.count())
		}
		time.Sleep(time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.batches - batches; n > 2 {
		t.Errorf("7 changes made together came in %d batches, want at most 2", n)
	}
}

// BenchmarkTriggerDelivery puts changes into a table in a loop and times
// each until the trigger's function, which does nothing, has seen them
// all: what a trigger's own machinery costs a change (in process):
// go test ./internal/data -run '^$' -bench TriggerDelivery -benchtime 2000x
func BenchmarkTriggerDelivery(b *testing.B) {
	for _, batch := range []int{1, 10} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			ctx := context.Background()
			s, _, c := startOrdersTrigger(b, TriggerSpec{Function: "f", Name: "bench", Table: "orders", Batch: batch})
			b.ResetTimer()
			for i := range b.N {
				if _, err := s.Put(ctx, "orders", fmt.Appendf(nil, `{"id":"%d"}`, i), PutOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			for c.count() < b.N {
				time.Sleep(100 * time.Microsecond)
			}
		})
	}
}
