package invoke

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/store"
	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// TestRecorderKeepsEveryRecord: records added concurrently from many
// goroutines (so batches form) are all stored, once, and read back newest
// first per function.
func TestRecorderKeepsEveryRecord(t *testing.T) {
	st := storetest.Open(t)
	rec := NewRecorder(st.JS, slog.New(slog.DiscardHandler))
	rec.Start(context.Background())
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				rec.Add(&function.Record{ID: fmt.Sprintf("w%d-%04d", w, i), Function: fmt.Sprintf("f%d", w%2), Status: "ok"})
			}
		}()
	}
	wg.Wait()
	if err := rec.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"f0", "f1"} {
		raw, err := st.LastRecords(context.Background(), store.RecordSubject(fn), 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != writers/2*each {
			t.Fatalf("%s: %d records, want %d", fn, len(raw), writers/2*each)
		}
		seen := map[string]bool{}
		for _, r := range raw {
			var got function.Record
			if err := json.Unmarshal(r, &got); err != nil {
				t.Fatalf("record %s: %v", r, err)
			}
			if got.Function != fn || seen[got.ID] {
				t.Fatalf("record %+v: wrong function or duplicate", got)
			}
			seen[got.ID] = true
		}
	}
	// Newest first, and limit honoured.
	raw, _ := st.LastRecords(context.Background(), store.RecordSubject("f0"), 3)
	if len(raw) != 3 {
		t.Fatalf("limit 3 gave %d", len(raw))
	}
	var newest function.Record
	json.Unmarshal(raw[0], &newest)
	if newest.ID[len(newest.ID)-4:] != fmt.Sprintf("%04d", each-1) {
		t.Errorf("newest = %s, want a writer's last record", newest.ID)
	}
}
