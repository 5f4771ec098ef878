package data

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/store"
)

// TableChange streams. A table's KV bucket is a JetStream stream, and every
// write to it is a message carrying the new item and the one it replaced
// (table.go), so the stream itself is the change stream: durable, ordered
// per key (one subject per key), and replayable from any revision. A
// trigger is a durable consumer on it; its acknowledged position survives
// restarts of every node. Buckets likewise: each object's info message on
// the object store's stream is a "created" or "deleted" event.

// Event names.
const (
	EventInsert        = "INSERT"
	EventModify        = "MODIFY"
	EventRemove        = "REMOVE"
	EventObjectCreated = "ObjectCreated"
	EventObjectRemoved = "ObjectRemoved"
)

// TableChange is one change of a table, in the node API's shape.
type TableChange = api.TableChange

// ObjectEvent is one change of a bucket.
type ObjectEvent struct {
	ID        string    `json:"eventID"`
	Name      string    `json:"eventName"`
	Source    string    `json:"eventSource"`
	Bucket    string    `json:"bucket"`
	Key       string    `json:"key"`
	Size      int64     `json:"size,omitempty"`
	ETag      string    `json:"etag,omitempty"`
	Sequence  uint64    `json:"sequence"`
	Time      time.Time `json:"time"`
	Redeliver bool      `json:"redelivered,omitempty"`
}

// change decodes a table stream message.
func (h *tableHandle) change(subject string, hdr nats.Header, body []byte, seq uint64, t time.Time) (*TableChange, error) {
	key := strings.TrimPrefix(subject, h.pre)
	pk, sk, err := splitKVKey(key, h.def.Sort != "")
	if err != nil {
		return nil, err
	}
	c := &TableChange{
		EventID: h.def.Name + "-" + strconv.FormatUint(seq, 10), EventSource: "nimbus:table", Table: h.def.Name,
		Keys: map[string]json.RawMessage{h.def.Key: pk.JSON()}, Revision: seq, Time: t.UTC(), Reason: hdr.Get(hReason),
	}
	if sk != nil {
		c.Keys[h.def.Sort] = sk.JSON()
	}
	op := hdr.Get(hKVOperation)
	switch {
	case op == opDel || op == opPurge || hdr.Get(jetstream.MarkerReasonHeader) != "":
		c.EventName = EventRemove
		if len(body) > 0 {
			c.OldImage = json.RawMessage(body)
		}
	default:
		item, old, found := bytes.Cut(body, []byte{'\n'})
		c.NewImage = json.RawMessage(item)
		c.EventName = EventInsert
		if found {
			c.EventName, c.OldImage = EventModify, json.RawMessage(old)
		}
	}
	return c, nil
}

// Changes reads up to limit changes of a table, in order, from from (the
// zero Start, like Oldest, from the oldest change kept). It is the replay
// primitive: triggers read the same stream through a durable consumer. A
// page ends early where the stream does; the next begins at the last
// change's revision + 1. With wait > 0, a page that would be empty waits
// up to wait for the first change to come (a long poll: a follower learns
// of a change as it is made, without asking again and again).
func (s *Service) Changes(ctx context.Context, table string, from Start, limit int, wait time.Duration) ([]TableChange, error) {
	h, err := s.table(ctx, table)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > MaxLimit {
		limit = DefaultLimit
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{h.pre + ">"}}
	if from != (Start{}) {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = from.policy()
	}
	cons, done, err := store.ReadOnce(ctx, h.stream, cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	// The wait also ends when the node begins to stop (Drain).
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.draining, cancel)()
	var out []TableChange
	for len(out) < limit {
		var batch jetstream.MessageBatch
		n := min(limit-len(out), 256)
		if len(out) == 0 && wait > 0 && wctx.Err() == nil {
			// One request answers with the changes there are, or the
			// first to come; the page ends with the stream (below), and
			// fctx's end ends the request.
			fctx, fcancel := context.WithTimeout(wctx, max(wait, minFetchWait))
			defer fcancel()
			batch, err = cons.Fetch(n, jetstream.FetchContext(fctx))
		} else {
			batch, err = cons.FetchNoWait(n)
		}
		if err != nil {
			return nil, err
		}
		got, last := 0, false
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				return nil, err
			}
			if err := cons.InOrder(md); err != nil {
				return nil, err
			}
			c, err := h.change(m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream, md.Timestamp)
			if err == nil {
				out = append(out, *c)
			}
			// Nothing after it: stop without another fetch, or
			// waiting for more.
			if last = md.NumPending == 0; last {
				break
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// A waiting fetch that ends with its wait, or with a drain,
		// ends the page.
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			if cons.Unanswered(ctx, got, err) {
				continue
			}
			return nil, err
		}
		if got == 0 || last {
			break
		}
	}
	return out, nil
}

// minFetchWait is the shortest wait of a long poll: a fetch asks the
// server to hold it a little less than its context's time left.
const minFetchWait = 10 * time.Millisecond

// Invoker runs a synchronous invocation (invoke.Invoker).
type Invoker interface {
	Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error)
}

// DeadLetter is a batch that failed every attempt.
type DeadLetter struct {
	Function, ID, Source, Reason, Error, ErrorType string
	Attempts                                       int
	Payload                                        []byte
	// DedupeID makes a repeated dead-lettering of one failure store once.
	DedupeID string
}

// DeadLetters stores dead letters (the node adapts async.Service, whose
// DLQ lists and replays them like any failed async invocation).
type DeadLetters interface {
	AddDeadLetter(ctx context.Context, d DeadLetter) error
}

// TriggerSpec declares a table or bucket trigger of a function: exactly
// one of Table or Bucket.
type TriggerSpec struct {
	Function string
	// Name identifies the trigger; its durable position is kept under it.
	Name   string
	Table  string
	Bucket string
	// Events filters bucket events: "created", "deleted" (default both).
	Events []string
	// Prefix filters bucket events by key.
	Prefix string
	// Batch is the most records per invocation (default 10 for tables, 1
	// for buckets; at most 1000).
	Batch int
	// Retries of a failed batch before it is dead-lettered (default 2).
	Retries *int
	// Start is where the trigger begins when its durable position is
	// created (default: the changes after that); a trigger that exists
	// keeps its position whatever Start says.
	Start Start
}

// Trigger is a running table or bucket trigger.
type Trigger struct {
	spec   TriggerSpec
	s      *Service
	inv    Invoker
	dlq    DeadLetters
	stream jetstream.Stream
	cfg    jetstream.ConsumerConfig // of its consumer, as first made
	cons   jetstream.Consumer
	table  *tableHandle
	cancel context.CancelFunc
	done   chan struct{}

	// Used by the runner only (and by its batch's heartbeat, while the
	// runner waits for the batch).
	turn    uint64        // revision of the turn it holds (turns.go); 0: none
	turnAt  time.Time     // when it last wrote the turn's end
	gaveRev uint64        // revision of the turn it last gave back; 0: none
	acked   uint64        // the last stream sequence it acknowledged
	pause   time.Duration // after the last failed fetch
	gone    time.Time     // when it found its consumer gone; zero: there

	mu        sync.Mutex
	lastError string
	delivered uint64
}

// consumerName is the durable consumer of a trigger: stable across
// restarts and nodes, unique per function and trigger.
func consumerName(fn, name string) string {
	sum := sha256.Sum256([]byte(fn + "/" + name))
	return triggerConsumerPrefix + hex.EncodeToString(sum[:10])
}

// triggerConsumerPrefix begins the name of every trigger's consumer.
const triggerConsumerPrefix = "nimbus-trigger-"

// StartTrigger starts a trigger: a durable consumer on the table's or
// bucket's stream, and a goroutine that invokes the function with batches
// of records, at least once and in order (one batch in flight for the
// whole cluster, so records of a key are never reordered). A batch that
// fails is retried with backoff and then dead-lettered; Stop ends it.
func (s *Service) StartTrigger(ctx context.Context, spec TriggerSpec, inv Invoker, dlq DeadLetters) (*Trigger, error) {
	if (spec.Table == "") == (spec.Bucket == "") {
		return nil, invalid("trigger", "name exactly one of table or bucket")
	}
	if spec.Name == "" {
		spec.Name = spec.Function + "-" + spec.Table + spec.Bucket
	}
	if spec.Batch == 0 {
		spec.Batch = 10
		if spec.Bucket != "" {
			spec.Batch = 1
		}
	}
	if spec.Batch < 1 || spec.Batch > 1000 {
		return nil, invalid("batch", "%d is out of range: use 1 to 1000", spec.Batch)
	}
	for _, e := range spec.Events {
		if e != "created" && e != "deleted" {
			return nil, invalid("events", "%q is not an event: use created or deleted", e)
		}
	}
	t := &Trigger{spec: spec, s: s, inv: inv, dlq: dlq, done: make(chan struct{})}
	var stream jetstream.Stream
	var filter string
	if spec.Table != "" {
		h, err := s.table(ctx, spec.Table)
		if err != nil {
			return nil, err
		}
		t.table, stream, filter = h, h.stream, h.pre+">"
	} else {
		h, err := s.bucket(ctx, spec.Bucket)
		if err != nil {
			return nil, err
		}
		stream, filter = h.stream, "$O."+h.store+".M.>"
	}
	cfg := jetstream.ConsumerConfig{
		Durable: consumerName(spec.Function, spec.Name), Description: "trigger " + spec.Name + " of function " + spec.Function,
		FilterSubject: filter, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: triggerAckWait, MaxDeliver: -1,
		// One batch in flight for the whole cluster: the order of records
		// of a key holds even when several nodes run the trigger.
		MaxAckPending: spec.Batch,
	}
	cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = spec.Start.policy()
	cons, err := stream.Consumer(ctx, cfg.Durable)
	switch {
	case err == nil:
		// It keeps its position (where it started is fixed at its
		// creation) and takes the trigger's other settings.
		was := cons.CachedInfo().Config
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = was.DeliverPolicy, was.OptStartSeq, was.OptStartTime
		cons, err = stream.UpdateConsumer(ctx, cfg)
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		cons, err = stream.CreateConsumer(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("trigger %s: consumer: %w", spec.Name, err)
	}
	t.stream, t.cfg, t.cons = stream, cfg, cons
	var rctx context.Context
	rctx, t.cancel = context.WithCancel(context.WithoutCancel(ctx))
	s.wg.Add(1)
	go t.run(rctx)
	return t, nil
}

// Stop ends the trigger and waits for its batch in flight.
func (t *Trigger) Stop() {
	t.cancel()
	<-t.done
}

// Remove ends the trigger and deletes its durable consumer, for a trigger
// that was removed or moved to another table or bucket: its position is
// no use any more, and on a bucket it would keep old object infos for it
// (objhistory.go). Another node removing it too finds nothing to delete
// (store.DeleteDurable).
func (t *Trigger) Remove(ctx context.Context) error {
	t.Stop()
	if err := store.DeleteDurable(ctx, t.s.js, t.cons); err != nil {
		return fmt.Errorf("trigger %s: deleting its consumer on %s: %w", t.spec.Name, t.cons.CachedInfo().Stream, err)
	}
	return nil
}

// Delivered is how many records the trigger has delivered successfully.
func (t *Trigger) Delivered() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.delivered
}

// LastError is the last failure (of an invocation, or of a fetch), "" if
// none since the last batch delivered.
func (t *Trigger) LastError() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastError
}

func (t *Trigger) run(ctx context.Context) {
	defer t.s.wg.Done()
	defer close(t.done)
	defer t.endTurn()
	for ctx.Err() == nil {
		msgs, err := t.fetch()
		if err != nil {
			t.endTurn()
			if ctx.Err() == nil {
				t.unanswered(ctx, err)
			}
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		t.pause, t.gone = 0, time.Time{}
		// Redeliveries may come after later messages.
		slices.SortFunc(msgs, func(a, b jetstream.Msg) int { return cmp.Compare(streamSeq(a), streamSeq(b)) })
		batch, err := t.inTurn(ctx, msgs)
		if batch == nil {
			if err != nil && ctx.Err() == nil {
				t.fail(err.Error())
			}
			for _, m := range msgs {
				_ = m.NakWithDelay(turnWait)
			}
			continue
		}
		t.process(ctx, batch)
	}
}

// fetch returns the next batch: the first change to come (within a
// second, so that the runner sees its stop), and up to Batch-1 of those
// already there after it. One fetch of Batch changes waited for Batch, or
// for its second to end: a change made alone reached the function 0.85 s
// late, where it now takes 1.5-1.9 ms (TestTriggerDelivers). The batches
// this makes are often partial, which the trigger's turn keeps in order
// across runners (turns.go). A runner holding the turn keeps it for the
// next batch when one is there at once, and gives it back before waiting.
func (t *Trigger) fetch() ([]jetstream.Msg, error) {
	var msgs []jetstream.Msg
	take := func(batch jetstream.MessageBatch, err error) error {
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && len(msgs) == 0 && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			return err
		}
		return nil
	}
	if t.turn != 0 {
		if err := take(t.cons.FetchNoWait(t.spec.Batch)); err != nil {
			return nil, err
		}
	}
	if len(msgs) == 0 {
		t.endTurn()
		if err := take(t.cons.Fetch(1, jetstream.FetchMaxWait(time.Second))); err != nil || len(msgs) == 0 {
			return nil, err
		}
	}
	// A fetch without wait may bring fewer changes than are there (one
	// run of 30 of TestTriggerDelivers split 4 changes 1 and 3): ask
	// again while the last says more are.
	for len(msgs) < t.spec.Batch {
		md, err := msgs[len(msgs)-1].Metadata()
		if err != nil || md.NumPending == 0 {
			break
		}
		n := len(msgs)
		if take(t.cons.FetchNoWait(t.spec.Batch-n)) != nil || len(msgs) == n {
			break
		}
	}
	return msgs, nil
}

// unanswered deals with a fetch that failed at once: no one answered (its
// consumer gone, or its stream between leaders), or another error. The
// runner says so (LastError) and waits, 50 ms at first and twice as long
// each time after, up to a second, before it fetches again: it fetched as
// fast as the failures came, a whole core's worth, and never delivered
// again once its consumer was gone.
//
// A consumer gone for consumerGrace is made anew, from after the last
// batch this runner acknowledged (or from the trigger's start): deleted by
// hand, or lost with a server. A removed trigger's runners stop as soon as
// their node learns of the removal, well within that time, and so never
// bring its consumer back.
func (t *Trigger) unanswered(ctx context.Context, err error) {
	t.pause = min(max(2*t.pause, 50*time.Millisecond), time.Second)
	defer sleep(ctx, t.pause)
	if _, ierr := t.cons.Info(ctx); !errors.Is(ierr, jetstream.ErrConsumerNotFound) {
		t.gone = time.Time{}
		t.fail(fmt.Sprintf("fetching a batch: %v", err))
		return
	}
	if t.gone.IsZero() {
		t.gone = time.Now()
	}
	name := t.cfg.Durable
	if time.Since(t.gone) < consumerGrace {
		t.fail(fmt.Sprintf("its consumer %s is gone: it is made anew %v after it went, unless the trigger was removed", name, consumerGrace))
		return
	}
	cfg, from := t.cfg, "the trigger's start"
	if t.acked > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = jetstream.DeliverByStartSequencePolicy, t.acked+1, nil
		from = fmt.Sprintf("stream sequence %d", t.acked+1)
	}
	cons, cerr := t.stream.CreateConsumer(ctx, cfg)
	if cerr != nil {
		t.fail(fmt.Sprintf("its consumer %s is gone, and making it anew failed: %v", name, cerr))
		return
	}
	t.cons, t.gone, t.pause = cons, time.Time{}, 0
	t.fail(fmt.Sprintf("its consumer %s was gone, and was made anew from %s", name, from))
	t.s.log.Warn("data: a trigger's consumer was gone; made anew", "trigger", t.spec.Name, "function", t.spec.Function, "consumer", name, "from", from)
}

// consumerGrace is how long a trigger's consumer must have been gone
// before its runner makes it anew (unanswered).
var consumerGrace = 30 * time.Second

// triggerAckWait is how long a batch fetched by a runner that then
// vanished (a kill -9, a lost node) stays out before JetStream hands it to
// another: the batches after it wait as long, since a key's changes go in
// order. A runner at work on a batch says so every triggerBeat, so a slow
// function (up to its timeout, and the retries' backoff) keeps its batch.
const (
	triggerAckWait = 10 * time.Second
	triggerBeat    = triggerAckWait / 3
)

// turnWait is how long a batch that is not in turn waits before it is
// delivered again.
const turnWait = 250 * time.Millisecond

// inTurn says which of a batch just fetched may go to the function now:
// none (nil), or the batch without the messages at or below the consumer's
// acknowledgement floor. Those were acknowledged by another runner (after
// this one's ack wait ran out) or dropped from the stream while this
// runner held them (their item written more times than the table's
// history keeps): delivered now, they would reach the function after
// their item's later changes. They are acknowledged here.
//
// MaxAckPending = Batch keeps one batch in flight only while every fetch
// takes a whole batch. A fetch that found fewer messages leaves room for
// another node's fetch of the next ones, whose function could then see a
// key's later change before the earlier one; and after a kill -9, the
// consumer's state on disk may lag its acknowledgements and deliveries by
// up to 100 ms, stranding part of a batch as pending until its ack wait
// ends while the messages after it flow. So a batch goes now only when no
// message before its first is still to be delivered: when it holds every
// pending message, when its first follows the acknowledgement floor, or
// when the stream holds none of the consumer's messages between the two
// (the history dropped them before anyone fetched them; without this
// check, two runners that each fetched one of the two changes after such
// a gap each found the other's pending, gave it back, and fetched one
// again, for ever: 3 runs of 25 of TestTriggerOrderWithShortHistory).
// Otherwise the batch is delivered again after turnWait, until the earlier
// messages have been acknowledged or come back with it.
//
// It takes the trigger's turn first (turns.go), which it holds when it
// returns messages.
func (t *Trigger) inTurn(ctx context.Context, msgs []jetstream.Msg) ([]jetstream.Msg, error) {
	if ok, err := t.takeTurn(ctx); !ok {
		if err != nil {
			err = fmt.Errorf("trigger %s: taking its turn: %w", t.spec.Name, err)
		}
		return nil, err
	}
	info, err := t.cons.Info(ctx)
	if err != nil {
		t.endTurn()
		return nil, fmt.Errorf("trigger %s: %w", t.spec.Name, err)
	}
	floor := info.AckFloor.Stream
	for len(msgs) > 0 && streamSeq(msgs[0]) <= floor {
		_ = msgs[0].Ack()
		msgs = msgs[1:]
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	first := streamSeq(msgs[0])
	if info.NumAckPending <= len(msgs) || first <= floor+1 {
		return msgs, nil
	}
	next, err := t.stream.GetMsg(ctx, floor+1, jetstream.WithGetMsgSubject(t.cfg.FilterSubject))
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && next.Sequence >= first {
		return msgs, nil
	}
	t.endTurn()
	if err != nil {
		return nil, fmt.Errorf("trigger %s: the first change after its acknowledgement floor: %w", t.spec.Name, err)
	}
	return nil, nil
}

// streamSeq is a delivered message's sequence in its stream (0 if its
// metadata does not parse).
func streamSeq(m jetstream.Msg) uint64 {
	md, err := m.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (t *Trigger) fail(msg string) {
	t.mu.Lock()
	t.lastError = msg
	t.mu.Unlock()
}

// records builds the batch's records; messages a bucket trigger filters out
// are acknowledged at once.
func (t *Trigger) records(msgs []jetstream.Msg) []any {
	var out []any
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			continue
		}
		redelivered := md.NumDelivered > 1
		if t.table != nil {
			c, err := t.table.change(m.Subject(), m.Headers(), m.Data(), md.Sequence.Stream, md.Timestamp)
			if err != nil {
				continue
			}
			c.Redelivered = redelivered
			out = append(out, c)
			continue
		}
		var oi jetstream.ObjectInfo
		if err := json.Unmarshal(m.Data(), &oi); err != nil {
			continue
		}
		ev := &ObjectEvent{
			ID: t.spec.Bucket + "-" + strconv.FormatUint(md.Sequence.Stream, 10), Name: EventObjectCreated, Source: "nimbus:bucket",
			Bucket: t.spec.Bucket, Key: oi.Name, Size: int64(oi.Size), Sequence: md.Sequence.Stream, Time: md.Timestamp.UTC(), Redeliver: redelivered,
		}
		kind := "created"
		if oi.Deleted {
			ev.Name, kind = EventObjectRemoved, "deleted"
		} else {
			ev.ETag = infoOf(t.spec.Bucket, &oi).ETag
		}
		if (len(t.spec.Events) > 0 && !slices.Contains(t.spec.Events, kind)) || !strings.HasPrefix(oi.Name, t.spec.Prefix) {
			continue
		}
		out = append(out, ev)
	}
	return out
}

func (t *Trigger) process(ctx context.Context, msgs []jetstream.Msg) {
	recs := t.records(msgs)
	ackAll := func() {
		for _, m := range msgs {
			_ = m.Ack()
		}
		t.acked = max(t.acked, streamSeq(msgs[len(msgs)-1]))
	}
	if len(recs) == 0 {
		ackAll()
		return
	}
	payload, _ := json.Marshal(map[string]any{"Records": recs})
	source := "table"
	if t.spec.Bucket != "" {
		source = "bucket"
	}
	retries := 2
	if t.spec.Retries != nil {
		retries = *t.spec.Retries
	}
	// Keep the batch's messages alive while it is being worked on.
	stopBeat := make(chan struct{})
	var beat sync.WaitGroup
	beat.Add(1)
	go func() {
		defer beat.Done()
		tk := time.NewTicker(triggerBeat)
		defer tk.Stop()
		for {
			select {
			case <-stopBeat:
				return
			case <-tk.C:
				for _, m := range msgs {
					_ = m.InProgress()
				}
				t.renewTurn(ctx)
			}
		}
	}()
	defer func() { close(stopBeat); beat.Wait() }()
	// A runner stopped mid-batch hands it back at once, rather than make
	// the next runner wait out the ack wait.
	giveBack := func() {
		for _, m := range msgs {
			_ = m.Nak()
		}
	}

	var lastErr, errType string
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			sleep(ctx, time.Duration(1<<min(attempt-1, 6))*time.Second)
		}
		if ctx.Err() != nil {
			giveBack()
			return
		}
		resp, err := t.inv.Invoke(ctx, &invoke.Request{Function: t.spec.Function, Payload: payload, Source: source})
		if err == nil && resp.Err == nil {
			ackAll()
			t.mu.Lock()
			t.delivered += uint64(len(recs))
			t.lastError = ""
			t.mu.Unlock()
			return
		}
		if ctx.Err() != nil {
			giveBack()
			return
		}
		lastErr, errType = fmt.Sprint(err), ""
		if resp != nil && resp.Err != nil {
			lastErr, errType = resp.Err.Message, resp.Err.Type
		}
		t.fail(lastErr)
	}
	first, _ := msgs[0].Metadata()
	id := t.spec.Name + "-" + strconv.FormatUint(first.Sequence.Stream, 10)
	if t.dlq != nil {
		err := t.dlq.AddDeadLetter(context.WithoutCancel(ctx), DeadLetter{
			Function: t.spec.Function, ID: id, Source: source, Reason: "RetriesExhausted",
			Error: lastErr, ErrorType: errType, Attempts: retries + 1, Payload: payload,
			DedupeID: "trigger." + id,
		})
		if err != nil {
			// Not acknowledged: JetStream redelivers it, and the DLQ's
			// dedupe keeps a second dead-lettering from storing twice.
			t.s.log.Error("data: trigger batch not dead-lettered", "trigger", t.spec.Name, "err", err)
			return
		}
	} else {
		t.s.log.Error("data: trigger batch dropped after its retries (no dead-letter queue)", "trigger", t.spec.Name, "err", lastErr)
	}
	ackAll()
}
