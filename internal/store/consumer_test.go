package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/store"
	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// TestLastRecordsDeletesItsConsumers: reading records leaves no consumer
// behind. Each read left one for 5 minutes, and a stream holds at most
// 1,000: 1,100 reads (a dashboard polling a function's records for a few
// minutes) failed with "maximum consumers limit reached".
func TestLastRecordsDeletesItsConsumers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := storetest.Open(t)
	subj := store.RecordSubject("echo")
	for i := range 3 {
		if _, err := st.JS.Publish(ctx, subj, fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 1100 {
		recs, err := st.LastRecords(ctx, subj, 2)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if len(recs) != 2 || string(recs[0]) != `{"n":2}` {
			t.Fatalf("read %d: %s", i, recs)
		}
	}
	info, err := st.Records.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Errorf("the records stream holds %d consumers after the reads, want 0", info.State.Consumers)
	}
}
