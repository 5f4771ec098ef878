package events_test

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/events"
	"github.com/nimbus-run/nimbus/internal/events/schedule"
)

type tickEvent struct {
	ID     string          `json:"id"`
	Type   string          `json:"type"`
	Source string          `json:"source"`
	Time   time.Time       `json:"time"`
	Data   json.RawMessage `json:"data"`
}

func ticksOf(t *testing.T, f *fakeFuncs, fn string) []tickEvent {
	t.Helper()
	var out []tickEvent
	for _, c := range f.callsOf(fn) {
		var e tickEvent
		if err := json.Unmarshal(c, &e); err != nil {
			t.Fatalf("schedule payload %s: %v", c, err)
		}
		out = append(out, e)
	}
	return out
}

// TestScheduleFiresOncePerTickAcrossTwoNodes runs one per-second schedule
// on two nodes sharing a NATS server and checks that every tick ran once.
func TestScheduleFiresOncePerTickAcrossTwoNodes(t *testing.T) {
	url := startNATS(t, t.TempDir())
	funcs := newFuncs()
	funcs.set("tick", echo)
	a := newHarness(t, url, funcs, events.Config{})
	b := newHarness(t, url, funcs, events.Config{})
	ctx := context.Background()

	trig := []api.Trigger{{Schedule: "* * * * * *", Input: api.JSON(`{"at":"<aws.scheduler.scheduled-time>"}`)}}
	if _, err := a.events.PutTriggers(ctx, "tick", trig); err != nil {
		t.Fatal(err)
	}
	// b learns of the trigger through the bucket's watch.
	eventually(t, 5*time.Second, "b to run the schedule", func() bool { return len(b.events.Triggers(ctx, "tick")) == 1 })
	eventually(t, 15*time.Second, "5 ticks", func() bool { return len(funcs.callsOf("tick")) >= 5 })
	if _, err := a.events.PutTriggers(ctx, "tick", nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "b to stop the schedule", func() bool { return len(b.events.Triggers(ctx, "tick")) == 0 })
	// Let anything in flight land before counting.
	time.Sleep(300 * time.Millisecond)

	ticks := ticksOf(t, funcs, "tick")
	seen := map[string]int{}
	for _, e := range ticks {
		seen[e.ID]++
		if e.Type != events.ScheduleType || !strings.HasPrefix(e.Source, "/nimbus/schedules/tick/") {
			t.Errorf("tick event %+v: want type %s and a schedule source", e, events.ScheduleType)
		}
		want := `{"at":"` + e.Time.UTC().Format(time.RFC3339) + `"}`
		if string(e.Data) != want {
			t.Errorf("tick data = %s, want the rendered template %s", e.Data, want)
		}
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("tick %s ran %d times, want once", id, n)
		}
	}
	t.Logf("%d ticks, each once", len(seen))
}

// TestScheduleCatchUp checks what a schedule does with ticks missed while
// no node ran: those within the catch-up window fire once, older ones are
// recorded as missed.
func TestScheduleCatchUp(t *testing.T) {
	url := startNATS(t, t.TempDir())
	funcs := newFuncs()
	funcs.set("tick", echo)
	// The node's clock stands an hour ahead: after catching up, the
	// runner sleeps in real time until the next tick of its clock, which
	// must not come during the test. (With the real time, a test run in
	// the last seconds of a minute saw that minute's tick fire too.)
	now := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	a := newHarness(t, url, funcs, events.Config{Now: func() time.Time { return now }})
	ctx := context.Background()

	// The schedule last fired 10 minutes ago; the window is 3m30s.
	kv, err := a.st.JS.KeyValue(ctx, events.StateBucket)
	if err != nil {
		t.Fatal(err)
	}
	last := now.Add(-10 * time.Minute).Truncate(time.Minute)
	state := mustJSON(t, map[string]any{"last_fired": last})
	if _, err := kv.Put(ctx, "tick_2Fcatch", state); err != nil {
		t.Fatal(err)
	}
	trig := []api.Trigger{{Name: "catch", Schedule: "rate(1 minute)", CatchUp: "3m30s"}}
	if _, err := a.events.PutTriggers(ctx, "tick", trig); err != nil {
		t.Fatal(err)
	}
	sched, _ := schedule.Parse("rate(1 minute)")
	fire, _, missedCount := schedule.Missed(sched, last, now, 210*time.Second)
	eventually(t, 10*time.Second, "the caught-up ticks", func() bool { return len(funcs.callsOf("tick")) >= len(fire) })
	time.Sleep(200 * time.Millisecond)
	got := ticksOf(t, funcs, "tick")
	if len(got) != len(fire) {
		t.Fatalf("fired %d ticks, want %d (those within the window)", len(got), len(fire))
	}
	// Caught-up ticks are invoked concurrently, so they may arrive in any
	// order; each must be there once.
	sort.Slice(got, func(i, j int) bool { return got[i].Time.Before(got[j].Time) })
	for i, e := range got {
		if !e.Time.Equal(fire[i]) {
			t.Errorf("tick %d at %s, want %s", i, e.Time, fire[i])
		}
	}
	st := a.events.Triggers(ctx, "tick")
	if len(st) != 1 || st[0].Missed != missedCount || missedCount == 0 {
		t.Errorf("status %+v: want %d missed", st, missedCount)
	}

	// A restart does not fire the caught-up ticks again.
	a.stop()
	b := newHarness(t, url, funcs, events.Config{Now: func() time.Time { return now }})
	eventually(t, 5*time.Second, "the schedule to run again", func() bool { return len(b.events.Triggers(ctx, "tick")) == 1 })
	time.Sleep(500 * time.Millisecond)
	if n := len(funcs.callsOf("tick")); n != len(fire) {
		t.Errorf("after a restart %d ticks ran, want still %d", n, len(fire))
	}
}

func TestBadTriggersAreRefusedNamingTheField(t *testing.T) {
	url := startNATS(t, t.TempDir())
	funcs := newFuncs()
	funcs.set("fn", echo)
	h := newHarness(t, url, funcs, events.Config{})
	tests := []struct {
		name  string
		trig  api.Trigger
		field string
	}{
		{"bad cron", api.Trigger{Schedule: "61 * * * *"}, "triggers[0].schedule"},
		{"bad rate", api.Trigger{Schedule: "rate(0 minutes)"}, "triggers[0].schedule"},
		{"bad zone", api.Trigger{Schedule: "rate(1 minute)", Timezone: "Mars/Olympus"}, "triggers[0].timezone"},
		{"two kinds", api.Trigger{Schedule: "rate(1 minute)", Subject: "x"}, "triggers[0]"},
		{"none", api.Trigger{}, "triggers[0]"},
		{"batch on schedule", api.Trigger{Schedule: "rate(1 minute)", Batch: 5}, "triggers[0].batch"},
		{"bad subject", api.Trigger{Subject: "a..b"}, "triggers[0].subject"},
		{"big batch", api.Trigger{Stream: "s", Batch: 100000}, "triggers[0].batch"},
		{"bad window", api.Trigger{Stream: "s", Window: "forever"}, "triggers[0].window"},
		{"bad order", api.Trigger{Stream: "s", OrderedBy: "time"}, "triggers[0].ordered_by"},
		{"webhook style", api.Trigger{Webhook: "w", Style: "gitlab", SecretEnv: "S"}, "triggers[0].style"},
		{"webhook secret", api.Trigger{Webhook: "w", Style: "github"}, "triggers[0].secret_env"},
		{"hmac header", api.Trigger{Webhook: "w", Style: "hmac", SecretEnv: "S"}, "triggers[0].header"},
		{"bad input", api.Trigger{Schedule: "rate(1 minute)", Input: api.JSON(`{`)}, "triggers[0].input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.events.PutTriggers(context.Background(), "fn", []api.Trigger{tc.trig})
			if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Errorf("PutTriggers(%+v) = %v, want an error naming %s", tc.trig, err, tc.field)
			}
		})
	}
	if _, err := h.events.PutTriggers(context.Background(), "missing", nil); err == nil {
		t.Error("triggers of a missing function: want an error")
	}
}
