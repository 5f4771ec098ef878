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

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// counter is an Invoker that counts the records of the batches it gets.
type counter struct {
	mu      sync.Mutex
	records int
	sizes   []int // records per batch, one per batch
}

func (c *counter) Invoke(_ context.Context, req *invoke.Request) (*invoke.Response, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := strings.Count(string(req.Payload), `"eventName"`)
	c.records += n
	c.sizes = append(c.sizes, n)
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
	s := startOrders(t, 0)
	c := &counter{}
	tr, err := s.StartTrigger(context.Background(), spec, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Stop)
	return s, tr, c
}

// startOrders starts a service on a store of its own with the table
// orders (key id; history 0 is the default).
func startOrders(t testing.TB, history int) *Service {
	t.Helper()
	s := startService(t, Config{})
	if _, _, err := s.PutTable(context.Background(), TableDef{Name: "orders", Key: "id", History: history}); err != nil {
		t.Fatal(err)
	}
	return s
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
	batches := len(c.sizes)
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
	if n := len(c.sizes) - batches; n > 2 {
		t.Errorf("7 changes made together came in %d batches (records per batch, from the first: %v), want at most 2", n, c.sizes)
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

// TestTriggerKeepsTurn: a runner that finds its next batch waiting keeps
// the trigger's turn for it, writing the turn's key to renew it only, where
// it took and gave back the turn for every batch (four round trips to the
// KV bucket each, which more than halved the rate of delivery to a
// function that costs nothing: BenchmarkTriggerDelivery).
func TestTriggerKeepsTurn(t *testing.T) {
	ctx := context.Background()
	s := startOrders(t, 0)
	// A backlog of changes, one per batch, that the trigger starts on.
	const changes = 200
	for i := range changes {
		if _, err := s.Put(ctx, "orders", fmt.Appendf(nil, `{"id":"%d"}`, i), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	writes := func() uint64 {
		info, err := s.turns.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq
	}
	before := writes()
	c := &counter{}
	tr, err := s.StartTrigger(ctx, TriggerSpec{Function: "f", Name: "backlog", Table: "orders", Batch: 1, Start: Start{Oldest: true}}, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Stop)
	testutil.EventuallyWithin(t, 30*time.Second, "the backlog to be delivered", func() bool { return c.count() == changes })
	// The first batch takes the turn, the last gives it back, and a
	// renewal every triggerBeat between them.
	if n := writes() - before; n > 10 {
		t.Errorf("%d batches wrote the trigger's turn %d times, want a few", changes, n)
	}
}

// TestTriggerInTurnAfterGap: a batch whose first change follows a gap the
// table's history made (changes dropped before anyone fetched them) goes
// when nothing before it is pending, and waits when another runner holds
// an earlier change; a change the history dropped while a runner held it
// is not delivered after its item's later ones. Two runners that each
// fetched one of two changes after such a gap gave them back to each other
// for ever (3 of 25 runs of TestTriggerOrderWithShortHistory).
func TestTriggerInTurnAfterGap(t *testing.T) {
	ctx := context.Background()
	s := startOrders(t, 2)
	tr, err := s.StartTrigger(ctx, TriggerSpec{Function: "f", Name: "gap", Table: "orders", Batch: 10}, &counter{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.Stop() // the test fetches for it: its consumer stays
	put := func(v int) {
		t.Helper()
		if _, err := s.Put(ctx, "orders", fmt.Appendf(nil, `{"id":"k","v":%d}`, v), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func() jetstream.Msg {
		t.Helper()
		b, err := tr.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			return m
		}
		t.Fatal("no change to fetch")
		return nil
	}
	seqs := func(msgs []jetstream.Msg) (out []uint64) {
		for _, m := range msgs {
			out = append(out, streamSeq(m))
		}
		return out
	}
	put(0)
	if err := fetch().DoubleAck(ctx); err != nil { // the floor: 1
		t.Fatal(err)
	}
	for v := 1; v <= 4; v++ { // 2 and 3 drop out of the history of two
		put(v)
	}
	first, second := fetch(), fetch() // 4 and 5, as two runners would
	if got, err := tr.inTurn(ctx, []jetstream.Msg{second}); got != nil || err != nil {
		t.Errorf("change 5 went while change 4 was pending: %v, %v", seqs(got), err)
	}
	got, err := tr.inTurn(ctx, []jetstream.Msg{first})
	if err != nil || !slices.Equal(seqs(got), []uint64{4}) {
		t.Fatalf("change 4, the first after the floor the stream holds: %v, %v; want it to go", seqs(got), err)
	}
	tr.endTurn()
	// Change 5, still held, drops out of the history: it is acknowledged,
	// not delivered after the item's later changes.
	put(5)
	put(6)
	if err := first.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	third := fetch()
	if got, err := tr.inTurn(ctx, []jetstream.Msg{second, third}); err != nil || !slices.Equal(seqs(got), []uint64{streamSeq(third)}) {
		t.Errorf("a batch of change 5 (dropped) and %d: %v, %v; want only %d", streamSeq(third), seqs(got), err, streamSeq(third))
	}
}
