package events_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/events"
)

// fakeData records the table and bucket triggers handed to it.
type fakeData struct {
	mu      sync.Mutex
	running map[string]api.Trigger // function/name -> trigger
	started int
	removed []string // function/name of the triggers removed for good
}

type fakeDataTrigger struct {
	d   *fakeData
	key string
}

func (f *fakeData) StartDataTrigger(_ context.Context, fn string, t api.Trigger) (events.DataTrigger, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running[fn+"/"+t.Name] = t
	f.started++
	return &fakeDataTrigger{d: f, key: fn + "/" + t.Name}, nil
}

func (t *fakeDataTrigger) Stop() {
	t.d.mu.Lock()
	delete(t.d.running, t.key)
	t.d.mu.Unlock()
}
func (t *fakeDataTrigger) Remove(context.Context) error {
	t.Stop()
	t.d.mu.Lock()
	t.d.removed = append(t.d.removed, t.key)
	t.d.mu.Unlock()
	return nil
}
func (t *fakeDataTrigger) Delivered() uint64 { return 0 }
func (t *fakeDataTrigger) LastError() string { return "" }

// TestDataTriggerHandOff checks that table and bucket triggers are
// validated, handed to Config.Data, restarted when they change (keeping
// their durable position) and removed, position and all, when they are
// removed from the function.
func TestDataTriggerHandOff(t *testing.T) {
	funcs := newFuncs()
	funcs.set("sink", echo)
	fd := &fakeData{running: map[string]api.Trigger{}}
	h := newHarness(t, startNATS(t, t.TempDir()), funcs, events.Config{Data: fd})
	ctx := context.Background()

	if _, err := h.events.PutTriggers(ctx, "sink", []api.Trigger{{Bucket: "avatars", Events: []string{"changed"}}}); err == nil {
		t.Fatal("a bad bucket event was accepted")
	}
	ts := []api.Trigger{{Table: "orders", Batch: 10}, {Bucket: "avatars", Events: []string{"created"}, Prefix: "img/"}}
	if _, err := h.events.PutTriggers(ctx, "sink", ts); err != nil {
		t.Fatal(err)
	}
	fd.mu.Lock()
	got := fd.running["sink/sink-1"]
	n := len(fd.running)
	fd.mu.Unlock()
	if n != 2 || got.Bucket != "avatars" || got.Prefix != "img/" || got.Events[0] != "created" {
		t.Fatalf("running = %d triggers, sink-1 = %+v; want the table and the bucket trigger", n, got)
	}
	for _, st := range h.events.Triggers(ctx, "sink") {
		if st.State != "active" || (st.Kind != api.KindTable && st.Kind != api.KindBucket) {
			t.Errorf("status = %+v", st)
		}
	}
	// A change restarts the changed trigger only; removal stops it.
	ts[0].Batch = 20
	if _, err := h.events.PutTriggers(ctx, "sink", ts[:1]); err != nil {
		t.Fatal(err)
	}
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if len(fd.running) != 1 || fd.running["sink/sink-0"].Batch != 20 || fd.started != 3 {
		t.Fatalf("after the change: running %+v, %d starts; want the table trigger with batch 20, 3 starts", fd.running, fd.started)
	}
	if !slices.Equal(fd.removed, []string{"sink/sink-1"}) {
		t.Fatalf("removed %q, want the bucket trigger sink/sink-1 alone (a changed trigger keeps its position)", fd.removed)
	}
}
