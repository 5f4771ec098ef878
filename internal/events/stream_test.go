package events_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/events"
	"github.com/nimbus-run/nimbus/internal/function"
)

type batch struct {
	Type string `json:"type"`
	Data struct {
		Trigger string `json:"trigger"`
		Records []struct {
			ID   string          `json:"id"`
			Seq  string          `json:"nimbusseq"`
			Key  string          `json:"partitionkey"`
			Data json.RawMessage `json:"data"`
		} `json:"records"`
	} `json:"data"`
}

func publish(t *testing.T, h *harness, subject string, i int, extra string) {
	t.Helper()
	ev := fmt.Sprintf(`{"specversion":"1.0","id":"ev-%d","source":"/test","type":"com.example.order","data":{"n":%d%s}}`, i, i, extra)
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/api/v1/events?subject="+subject, bytes.NewBufferString(ev))
	req.Header.Set("Content-Type", "application/cloudevents+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("publish %d: status %d", i, resp.StatusCode)
	}
}

// TestPartialBatchFailureRedeliversOnlyFailedItems: the function reports
// two records of each batch as failed; only those come back, and after the
// retries they are dead-lettered.
func TestPartialBatchFailureRedeliversOnlyFailedItems(t *testing.T) {
	url := startNATS(t, t.TempDir())
	funcs := newFuncs()
	var mu sync.Mutex
	seen := map[string]int{}
	maxBatch := 0
	funcs.set("orders", func(p []byte) ([]byte, error) {
		var b batch
		if err := json.Unmarshal(p, &b); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		maxBatch = max(maxBatch, len(b.Data.Records))
		var failures []map[string]string
		for _, r := range b.Data.Records {
			seen[r.ID]++
			if bytes.Contains(r.Data, []byte(`"fail":true`)) {
				failures = append(failures, map[string]string{"itemIdentifier": r.ID})
			}
		}
		return json.Marshal(map[string]any{"batchItemFailures": failures})
	})
	h := newHarness(t, url, funcs, events.Config{})
	ctx := context.Background()
	one := 1
	if _, err := h.events.PutTriggers(ctx, "orders", []api.Trigger{{Subject: "orders.*", Batch: 5, Window: "200ms", Retries: &one}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		extra := ""
		if i == 3 || i == 14 {
			extra = `,"fail":true`
		}
		publish(t, h, "orders.new", i, extra)
	}
	eventually(t, 20*time.Second, "both failed records dead-lettered", func() bool {
		l, _, err := h.queue.DeadLetters(ctx, "orders", 10)
		return err == nil && len(l) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	for i := range 20 {
		id := fmt.Sprintf("ev-%d", i)
		want := 1
		if i == 3 || i == 14 {
			want = 2 // first try + 1 retry
		}
		if seen[id] != want {
			t.Errorf("record %s handled %d times, want %d", id, seen[id], want)
		}
	}
	if maxBatch > 5 || maxBatch < 2 {
		t.Errorf("largest batch had %d records, want 2 to 5 (batch 5, window 200ms)", maxBatch)
	}
	st := h.events.Triggers(ctx, "orders")
	if len(st) != 1 || st[0].StreamName == "" || st[0].State != "active" {
		t.Errorf("trigger status %+v", st)
	}
}

// TestOrderedByKey: records of one key reach the function in order, a
// failed record holding back the later ones of its key until it succeeds.
func TestOrderedByKey(t *testing.T) {
	url := startNATS(t, t.TempDir())
	funcs := newFuncs()
	var mu sync.Mutex
	var order = map[string][]int{}
	failedOnce := false
	funcs.set("ordered", func(p []byte) ([]byte, error) {
		var b batch
		if err := json.Unmarshal(p, &b); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range b.Data.Records {
			var d struct{ N int }
			_ = json.Unmarshal(r.Data, &d)
			if d.N == 2 && !failedOnce {
				failedOnce = true
				return nil, fmt.Errorf("transient")
			}
			order[r.Key] = append(order[r.Key], d.N)
		}
		return []byte(`{}`), nil
	})
	h := newHarness(t, url, funcs, events.Config{})
	ctx := context.Background()
	if _, err := h.events.PutTriggers(ctx, "ordered", []api.Trigger{{Stream: "ORDERED", Batch: 1, Concurrency: 3, OrderedBy: "key"}}); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		m := nats.NewMsg("ORDERED.x")
		m.Header.Set(events.KeyHeader, fmt.Sprintf("k%d", i%3))
		m.Data = []byte(fmt.Sprintf(`{"n":%d}`, i))
		if _, err := h.st.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 20*time.Second, "all 30 records", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, v := range order {
			n += len(v)
		}
		return n == 30
	})
	mu.Lock()
	defer mu.Unlock()
	for k, ns := range order {
		for i := 1; i < len(ns); i++ {
			if ns[i] < ns[i-1] {
				t.Errorf("key %s handled out of order: %v", k, ns)
				break
			}
		}
	}
}

// TestStopHandsRecordsBack: a node that stops (a rolling restart) hands
// back the records its stream trigger holds but has not handled, and
// releases an ordered trigger's pin, so that another node handles them at
// once instead of after the ack wait (30 s here) or the pin's TTL.
func TestStopHandsRecordsBack(t *testing.T) {
	for name, trigger := range oneByOne("HANDOVER") {
		t.Run(name, func(t *testing.T) {
			url := startNATS(t, t.TempDir())
			const n = 20
			var mu sync.Mutex
			seen := map[int]bool{}
			record := func(p []byte) {
				var b batch
				_ = json.Unmarshal(p, &b)
				mu.Lock()
				defer mu.Unlock()
				for _, r := range b.Data.Records {
					var d struct{ N int }
					_ = json.Unmarshal(r.Data, &d)
					seen[d.N] = true
				}
			}
			count := func() int {
				mu.Lock()
				defer mu.Unlock()
				return len(seen)
			}
			slow, fast := newFuncs(), newFuncs()
			slow.set("sink", func(p []byte) ([]byte, error) {
				record(p)
				time.Sleep(100 * time.Millisecond) // records pile up in the runner meanwhile
				return []byte(`{}`), nil
			})
			fast.set("sink", func(p []byte) ([]byte, error) { record(p); return []byte(`{}`), nil })
			cfg := events.Config{AckWait: 30 * time.Second}
			a := newHarness(t, url, slow, cfg)
			ctx := context.Background()
			if _, err := a.events.PutTriggers(ctx, "sink", []api.Trigger{trigger}); err != nil {
				t.Fatal(err)
			}
			for i := range n {
				m := nats.NewMsg("HANDOVER.x")
				m.Header.Set(events.KeyHeader, "k") // one key: an ordered trigger keeps them on one lane
				m.Data = []byte(fmt.Sprintf(`{"n":%d}`, i))
				if _, err := a.st.JS.PublishMsg(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			eventually(t, 10*time.Second, "the first node at work", func() bool { return count() >= 2 })
			newHarness(t, url, fast, cfg) // the second node
			stopped := time.Now()
			a.stop()
			eventually(t, 10*time.Second, "every record, handled by the second node", func() bool { return count() == n })
			t.Logf("%d records after the stop in %v", n, time.Since(stopped).Round(time.Millisecond))
			if len(fast.callsOf("sink")) == 0 {
				t.Fatal("the second node handled nothing")
			}
		})
	}
}

// TestStopWhileThrottledDeadLettersNothing: a runner stopped while its
// function is throttled hands its records back untried. It counted the
// wait as a failed attempt, so with no retries left it dead-lettered
// records the function had never run.
func TestStopWhileThrottledDeadLettersNothing(t *testing.T) {
	for name, trigger := range oneByOne("THROTTLED") {
		t.Run(name, func(t *testing.T) {
			url := startNATS(t, t.TempDir())
			zero := 0
			trigger.Retries = &zero
			busy, free := newFuncs(), newFuncs()
			busy.set("sink", func([]byte) ([]byte, error) { return nil, function.ErrThrottled })
			free.set("sink", func([]byte) ([]byte, error) { return []byte(`{}`), nil })
			cfg := events.Config{AckWait: 30 * time.Second}
			a := newHarness(t, url, busy, cfg)
			ctx := context.Background()
			if _, err := a.events.PutTriggers(ctx, "sink", []api.Trigger{trigger}); err != nil {
				t.Fatal(err)
			}
			m := nats.NewMsg("THROTTLED.x")
			m.Header.Set(events.KeyHeader, "k")
			m.Data = []byte(`{"n":1}`)
			if _, err := a.st.JS.PublishMsg(ctx, m); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "the throttled function tried", func() bool { return len(busy.callsOf("sink")) >= 2 })
			b := newHarness(t, url, free, cfg)
			a.stop()
			eventually(t, 10*time.Second, "the record, handled by the second node", func() bool { return len(free.callsOf("sink")) == 1 })
			l, _, err := b.queue.DeadLetters(ctx, "sink", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(l) != 0 {
				t.Fatalf("%d dead letters for a record the function never ran: %+v", len(l), l)
			}
		})
	}
}

// oneByOne gives an unordered and an ordered trigger on stream, each
// taking one record at a time.
func oneByOne(stream string) map[string]api.Trigger {
	return map[string]api.Trigger{
		"unordered": {Stream: stream, Batch: 1},
		"ordered":   {Stream: stream, Batch: 1, OrderedBy: "key"},
	}
}

// TestRemovedTriggerDeletesItsConsumer: a stream trigger removed from its
// function takes its durable consumer with it (left, the consumer kept
// the stream's messages pending for it for ever); one moved to another
// subject of the same stream reads the new subject.
func TestRemovedTriggerDeletesItsConsumer(t *testing.T) {
	funcs := newFuncs()
	funcs.set("sink", echo)
	h := newHarness(t, startNATS(t, t.TempDir()), funcs, events.Config{})
	ctx := context.Background()
	// consumers lists the filters of the trigger consumers of every stream.
	consumers := func() []string {
		t.Helper()
		var out []string
		streams := h.st.JS.ListStreams(ctx)
		for si := range streams.Info() {
			st, err := h.st.JS.Stream(ctx, si.Config.Name)
			if err != nil {
				t.Fatal(err)
			}
			l := st.ListConsumers(ctx)
			for ci := range l.Info() {
				if strings.HasPrefix(ci.Name, "nimbus-trigger-") {
					out = append(out, ci.Config.FilterSubject)
				}
			}
			if err := l.Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := streams.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	// Both subjects are the same stream's: a moved trigger found its old
	// consumer there by name, filter and all.
	if _, err := h.st.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		triggers []api.Trigger
		want     []string
	}{
		{[]api.Trigger{{Name: "t", Subject: "orders.eu"}}, []string{"orders.eu"}},
		{[]api.Trigger{{Name: "t", Subject: "orders.us"}}, []string{"orders.us"}},
		{nil, nil},
	} {
		if _, err := h.events.PutTriggers(ctx, "sink", step.triggers); err != nil {
			t.Fatal(err)
		}
		if got := consumers(); !slices.Equal(got, step.want) {
			t.Fatalf("triggers %+v: consumers on %q, want %q", step.triggers, got, step.want)
		}
	}
}

// TestTriggerChangesReachItsConsumer: a stream trigger changed in place
// (ordered_by added or dropped, batch and concurrency raised) runs with its
// consumer updated from the same position. The consumer was only made when
// missing, so adding ordered_by left a trigger failing for good ("priority
// group is not supported for this consumer") and a larger batch kept the old
// consumer's MaxAckPending.
func TestTriggerChangesReachItsConsumer(t *testing.T) {
	funcs := newFuncs()
	funcs.set("sink", echo)
	h := newHarness(t, startNATS(t, t.TempDir()), funcs, events.Config{})
	ctx := context.Background()
	publish := func(n int) {
		t.Helper()
		m := nats.NewMsg("CHANGING.x")
		m.Header.Set(events.KeyHeader, "k")
		m.Data = []byte(fmt.Sprintf(`{"n":%d}`, n))
		if _, err := h.st.JS.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i, step := range []struct {
		trigger    api.Trigger
		pinned     bool
		ackPending int
	}{
		{api.Trigger{Name: "t", Stream: "CHANGING"}, false, 1000},
		{api.Trigger{Name: "t", Stream: "CHANGING", OrderedBy: "key"}, true, 1000},
		{api.Trigger{Name: "t", Stream: "CHANGING", Batch: 500, Concurrency: 4}, false, 8000},
	} {
		if _, err := h.events.PutTriggers(ctx, "sink", []api.Trigger{step.trigger}); err != nil {
			t.Fatal(err)
		}
		if sts := h.events.Triggers(ctx, "sink"); len(sts) != 1 || sts[0].State != "active" {
			t.Fatalf("step %d: status %+v, want the trigger active", i, sts)
		}
		st, err := h.st.JS.Stream(ctx, "CHANGING")
		if err != nil {
			t.Fatal(err)
		}
		var cfg jetstream.ConsumerConfig
		l := st.ListConsumers(ctx)
		for ci := range l.Info() {
			cfg = ci.Config
		}
		if (cfg.PriorityPolicy == jetstream.PriorityPolicyPinned) != step.pinned || cfg.MaxAckPending != step.ackPending {
			t.Fatalf("step %d: consumer priority policy %v, max ack pending %d; want pinned %v, %d", i, cfg.PriorityPolicy, cfg.MaxAckPending, step.pinned, step.ackPending)
		}
		publish(i)
		eventually(t, 10*time.Second, fmt.Sprintf("record %d delivered", i), func() bool { return len(funcs.callsOf("sink")) >= i+1 })
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(funcs.callsOf("sink")); n != 3 {
		t.Fatalf("%d deliveries of 3 records: a change replayed the stream", n)
	}
}

// TestStreamTriggerStarts: triggers on a stream that already holds
// messages begin where their start says (new by default, oldest, a
// sequence, a time), and one started again with another start keeps its
// position.
func TestStreamTriggerStarts(t *testing.T) {
	funcs := newFuncs()
	var mu sync.Mutex
	seen := map[string][]string{} // trigger -> event ids
	funcs.set("sink", func(p []byte) ([]byte, error) {
		var b batch
		if err := json.Unmarshal(p, &b); err != nil {
			return nil, err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range b.Data.Records {
			seen[b.Data.Trigger] = append(seen[b.Data.Trigger], r.ID)
		}
		return []byte("{}"), nil
	})
	h := newHarness(t, startNATS(t, t.TempDir()), funcs, events.Config{})
	ctx := context.Background()
	st, err := h.st.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "ORDERS", Subjects: []string{"orders.>"}})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, h, "orders.eu", 1, "")
	publish(t, h, "orders.eu", 2, "")
	time.Sleep(20 * time.Millisecond)
	middle := time.Now().UTC()
	time.Sleep(20 * time.Millisecond)
	publish(t, h, "orders.eu", 3, "")
	info, err := st.Info(ctx)
	if err != nil || info.State.Msgs != 3 {
		t.Fatalf("stream: %+v, %v", info, err)
	}
	triggers := []api.Trigger{
		{Name: "new", Stream: "ORDERS"},
		{Name: "oldest", Stream: "ORDERS", Start: "oldest"},
		{Name: "seq", Stream: "ORDERS", Start: "2"},
		{Name: "time", Stream: "ORDERS", Start: middle.Format(time.RFC3339Nano)},
	}
	if _, err := h.events.PutTriggers(ctx, "sink", triggers); err != nil {
		t.Fatal(err)
	}
	publish(t, h, "orders.eu", 4, "")
	want := map[string][]string{
		"new":    {"ev-4"},
		"oldest": {"ev-1", "ev-2", "ev-3", "ev-4"},
		"seq":    {"ev-2", "ev-3", "ev-4"},
		"time":   {"ev-3", "ev-4"},
	}
	check := func(want map[string][]string) {
		t.Helper()
		eventually(t, 10*time.Second, "the deliveries", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for k, ids := range want {
				if len(seen[k]) < len(ids) {
					return false
				}
			}
			return true
		})
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for k, ids := range want {
			if got := seen[k]; !slices.Equal(got, ids) {
				t.Errorf("trigger %s saw %v, want %v", k, got, ids)
			}
		}
	}
	check(want)

	// Redeployed with another start, "new" keeps its position.
	triggers[0].Start = "oldest"
	if _, err := h.events.PutTriggers(ctx, "sink", triggers); err != nil {
		t.Fatal(err)
	}
	publish(t, h, "orders.eu", 5, "")
	for k := range want {
		want[k] = append(want[k], "ev-5")
	}
	check(want)

	if _, err := h.events.PutTriggers(ctx, "sink", []api.Trigger{{Stream: "ORDERS", Start: "soon"}}); err == nil || !strings.Contains(err.Error(), "triggers[0].start") {
		t.Fatalf("a bad start: %v, want an error naming triggers[0].start", err)
	}
}
