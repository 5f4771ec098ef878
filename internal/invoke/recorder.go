package invoke

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/store"
)

// maxBatch bounds the records of one message (each is ~0.5-70 KB with logs).
const maxBatch = 256

// Recorder writes invocation records to the records stream. Publishing is
// asynchronous so the request path never waits for JetStream, but nothing is
// dropped: when the buffer is full Add blocks (back-pressure), a failed
// publish is retried, and Stop flushes what is left.
type Recorder struct {
	js  jetstream.JetStream
	log *slog.Logger
	ch  chan *function.Record

	wg   sync.WaitGroup
	once sync.Once
}

// NewRecorder returns a recorder; Start runs it.
func NewRecorder(js jetstream.JetStream, log *slog.Logger) *Recorder {
	return &Recorder{js: js, log: log, ch: make(chan *function.Record, 8192)}
}

// Start begins publishing.
func (r *Recorder) Start(ctx context.Context) error {
	r.wg.Add(1)
	go r.run()
	return nil
}

// Add queues a record.
func (r *Recorder) Add(rec *function.Record) { r.ch <- rec }

func (r *Recorder) run() {
	defer r.wg.Done()
	type pending struct {
		id  string
		msg *nats.Msg
		fut jetstream.PubAckFuture
	}
	var inflight []pending
	publish := func(p pending) pending {
		for attempt := 0; ; attempt++ {
			fut, err := r.js.PublishMsgAsync(p.msg)
			if err == nil {
				p.fut = fut
				return p
			}
			if attempt%50 == 0 {
				r.log.Warn("records: publish failed, retrying", "id", p.id, "err", err)
			}
			time.Sleep(min(time.Duration(attempt+1)*10*time.Millisecond, time.Second))
		}
	}
	// settle waits for acks of everything in flight and republishes failures.
	settle := func() {
		for len(inflight) > 0 {
			var retry []pending
			for _, p := range inflight {
				select {
				case <-p.fut.Ok():
				case err := <-p.fut.Err():
					r.log.Warn("records: not stored, retrying", "id", p.id, "err", err)
					retry = append(retry, p)
				}
			}
			inflight = inflight[:0]
			for _, p := range retry {
				inflight = append(inflight, publish(p))
			}
		}
	}
	// Records are batched per function: under load one message carries
	// many records (newline-delimited JSON), which is what lets JetStream
	// keep up with the invocation rate; an idle node still writes each
	// record at once, since a batch is whatever is queued right now.
	for rec := range r.ch {
		batch := map[string][][]byte{}
		first := map[string]string{}
		add := func(rec *function.Record) {
			b, err := json.Marshal(rec)
			if err != nil {
				r.log.Error("records: unencodable record", "id", rec.ID, "err", err)
				return
			}
			if _, ok := first[rec.Function]; !ok {
				first[rec.Function] = rec.ID
			}
			batch[rec.Function] = append(batch[rec.Function], b)
		}
		add(rec)
		for n := 1; n < maxBatch && len(r.ch) > 0; n++ {
			add(<-r.ch)
		}
		for fn, lines := range batch {
			msg := nats.NewMsg(store.RecordSubject(fn))
			msg.Data = bytes.Join(lines, []byte{'\n'})
			// A batch gets its own id, set once, so a republished batch is
			// deduplicated; a record's id would not do: the attempts of an
			// async invocation share it, and all of them must be kept.
			msg.Header.Set(jetstream.MsgIDHeader, NewID())
			inflight = append(inflight, publish(pending{id: first[fn], msg: msg}))
		}
		if len(r.ch) == 0 || len(inflight) >= 256 {
			settle()
		}
	}
	settle()
}

// Stop flushes queued records and stops. Records added after Stop panic.
func (r *Recorder) Stop(ctx context.Context) error {
	r.once.Do(func() { close(r.ch) })
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
