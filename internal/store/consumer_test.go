package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// TestReadOnce: a read through a OnceReader makes one consumer and leaves
// none, reads from its start in order, stops where fn says, and notices a
// message that never reached it.
func TestReadOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := storetest.Open(t)
	subj := store.RecordSubject("once")
	var seqs []uint64
	for i := range 10 {
		ack, err := st.JS.Publish(ctx, subj, fmt.Appendf(nil, `{"n":%d}`, i))
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	created, err := st.JS.Conn().SubscribeSync("$JS.EVENT.ADVISORY.CONSUMER.CREATED.>")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: seqs[2]}
	// Batches of three: the read goes on across fetches.
	err = store.ReadAll(ctx, st.Records, cfg, 3, func(m jetstream.Msg, _ *jetstream.MsgMetadata) bool {
		got = append(got, string(m.Data()))
		return len(got) < 5
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"n":2} {"n":3} {"n":4} {"n":5} {"n":6}]`; fmt.Sprint(got) != want {
		t.Fatalf("read %v, want %s", got, want)
	}
	consumers := 0
	for {
		if _, err := created.NextMsg(300 * time.Millisecond); err != nil {
			break
		}
		consumers++
	}
	if consumers != 1 {
		t.Errorf("the read made %d consumers, want 1", consumers)
	}
	if info, err := st.Records.Info(ctx); err != nil || info.State.Consumers != 0 {
		t.Errorf("the records stream holds %+v consumers after the read (%v), want 0", info.State.Consumers, err)
	}

	// A message that went missing: the one after it is out of order.
	cons, done, err := store.ReadOnce(ctx, st.Records, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	batch, err := cons.FetchNoWait(3)
	if err != nil {
		t.Fatal(err)
	}
	var checks []error
	i := 0
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if i != 1 { // the second never came
			checks = append(checks, cons.InOrder(md))
		}
		i++
	}
	if len(checks) != 2 || checks[0] != nil || !errors.Is(checks[1], store.ErrMessagesLost) {
		t.Fatalf("checks of the first and third messages: %v, want nil and ErrMessagesLost", checks)
	}
}
