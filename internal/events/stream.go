package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/store"
)

// CloudEvents types of stream triggers.
const (
	BatchType   = "run.nimbus.stream.batch"
	MessageType = "run.nimbus.stream.message"
	// SeqExtension carries a record's stream sequence number.
	SeqExtension = "nimbusseq"
	// KeyExtension is the CloudEvents partitioning extension: the key that
	// ordered_by: key keeps in order.
	KeyExtension = "partitionkey"
	// KeyHeader is the key of a plain (non-CloudEvent) message.
	KeyHeader = "Nimbus-Key"
)

// managedPrefix names the streams Nimbus creates to capture subjects.
const managedPrefix = "NIMBUS_SUBJ_"

// pinGroup is the priority group of ordered triggers' consumers.
const pinGroup = "nimbus"

type streamRunner struct {
	s           *Service
	fn          string
	t           api.Trigger
	stream      string
	filter      string
	batch       int
	window      time.Duration
	concurrency int
	retries     int
	ordered     string
	cons        jetstream.Consumer
	iter        jetstream.MessagesContext

	quit chan struct{}
	// in and lanes are the pipeline's buffers (start), emptied by stop.
	in    chan jetstream.Msg
	lanes []chan jetstream.Msg
	wg    sync.WaitGroup
}

func (s *Service) startStream(fn string, t api.Trigger) (runner, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	r := &streamRunner{s: s, fn: fn, t: t, batch: max(t.Batch, 1), concurrency: max(t.Concurrency, 1),
		retries: function.DefaultAsyncRetries, ordered: t.OrderedBy, quit: make(chan struct{})}
	if t.Retries != nil {
		r.retries = *t.Retries
	}
	if t.Window != "" {
		r.window, _ = time.ParseDuration(t.Window)
	}
	stream, managed, err := s.resolveStream(ctx, t)
	if err != nil {
		return nil, err
	}
	r.stream = stream.CachedInfo().Config.Name
	if t.Subject != "" {
		r.filter = t.Subject
	}
	durable := "nimbus-trigger-" + escapeKey(fn+"-"+t.Name)
	cons, err := stream.Consumer(ctx, durable)
	if err == nil || errors.Is(err, jetstream.ErrConsumerNotFound) {
		cfg := jetstream.ConsumerConfig{
			Durable: durable, Description: "trigger " + t.Name + " of function " + fn,
			AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.cfg.AckWait, MaxDeliver: -1,
			FilterSubject: r.filter, MaxAckPending: max(r.batch*r.concurrency*4, 1000),
			// A trigger on a stream that already holds messages starts with
			// the new ones, as a Kinesis LATEST position; a stream Nimbus
			// made for the trigger is read from its start; either as the
			// trigger's start says, if it does.
			DeliverPolicy: jetstream.DeliverNewPolicy,
		}
		if managed {
			cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		}
		if t.Start != "" {
			oldest, seq, at, _ := api.ParseStart(t.Start) // validated
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = store.DeliverFrom(oldest, seq, at)
		}
		if r.ordered != "" {
			// One node at a time reads an ordered trigger, so that order
			// holds across a cluster; another takes over when it goes.
			cfg.PriorityPolicy = jetstream.PriorityPolicyPinned
			cfg.PriorityGroups = []string{pinGroup}
			cfg.PinnedTTL = 2 * s.cfg.AckWait
		}
		if cons == nil {
			cons, err = stream.CreateOrUpdateConsumer(ctx, cfg)
		} else {
			// The trigger may have changed since (batch, concurrency,
			// ordered_by): the consumer takes its settings and keeps its
			// position (where it started is fixed at its creation).
			was := cons.CachedInfo().Config
			cfg.DeliverPolicy, cfg.OptStartSeq, cfg.OptStartTime = was.DeliverPolicy, was.OptStartSeq, was.OptStartTime
			cons, err = stream.UpdateConsumer(ctx, cfg)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("consumer for stream %s: %w", r.stream, err)
	}
	r.cons = cons
	opts := []jetstream.PullMessagesOpt{jetstream.PullMaxMessages(min(r.batch*r.concurrency*2, 10000))}
	if r.ordered != "" {
		opts = append(opts, jetstream.PullPriorityGroup("nimbus"))
	}
	if r.iter, err = cons.Messages(opts...); err != nil {
		return nil, fmt.Errorf("consume stream %s: %w", r.stream, err)
	}
	r.start()
	return r, nil
}

// resolveStream finds the stream a trigger reads: the named stream, or the
// stream that captures its subject, creating one for the subject when none
// does (managed reports that case).
func (s *Service) resolveStream(ctx context.Context, t api.Trigger) (jetstream.Stream, bool, error) {
	subject := t.Subject
	if t.Stream != "" {
		st, err := s.js.Stream(ctx, t.Stream)
		if err == nil {
			st, err = s.replicate(ctx, st)
			return st, false, err
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, false, fmt.Errorf("stream %s: %w", t.Stream, err)
		}
		// "stream: orders" with no such stream: capture orders and orders.>
		// in a stream of that name.
		st, err = s.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: t.Stream, Subjects: []string{t.Stream, t.Stream + ".>"}, Description: "created by Nimbus for a trigger",
			Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas, MaxAge: 7 * 24 * time.Hour, Discard: jetstream.DiscardOld,
			Metadata: map[string]string{"nimbus.managed": "true"},
		})
		if err != nil {
			return nil, false, fmt.Errorf("create stream %s: %w", t.Stream, err)
		}
		return st, true, nil
	}
	if name, err := s.js.StreamNameBySubject(ctx, subject); err == nil {
		st, err := s.js.Stream(ctx, name)
		if err == nil {
			st, err = s.replicate(ctx, st)
		}
		if err != nil {
			return nil, false, fmt.Errorf("stream %s: %w", name, err)
		}
		return st, strings.HasPrefix(name, managedPrefix), nil
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("find the stream of %s: %w", subject, err)
	}
	st, err := s.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: managedPrefix + escapeKey(subject), Subjects: []string{subject}, Description: "captures " + subject + " for triggers",
		Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas, MaxAge: 7 * 24 * time.Hour, Discard: jetstream.DiscardOld,
		Metadata: map[string]string{"nimbus.managed": "true"},
	})
	if err != nil {
		return nil, false, fmt.Errorf("capture subject %s: %w", subject, err)
	}
	return st, true, nil
}

// replicate gives a stream Nimbus created for a trigger the node's number
// of replicas (store.Store.Replicate), as a node restarted with a higher
// --replicas does for its other streams; an operator's own streams are
// left as they are.
func (s *Service) replicate(ctx context.Context, st jetstream.Stream) (jetstream.Stream, error) {
	cfg := st.CachedInfo().Config
	if cfg.Metadata["nimbus.managed"] != "true" || cfg.Replicas >= s.st.Replicas() {
		return st, nil
	}
	if err := s.st.Replicate(ctx, cfg.Name); err != nil {
		return nil, err
	}
	return s.js.Stream(ctx, cfg.Name)
}

func (r *streamRunner) spec() api.Trigger { return r.t }

// remove stops the runner of a trigger that is gone and deletes its
// durable consumer: left, it kept the stream's messages for it as pending
// for ever (nats consumer ls still listed it). The stream stays, also one
// Nimbus made for the trigger's subject, which other triggers may read.
func (r *streamRunner) remove(ctx context.Context) {
	r.stop()
	if err := store.DeleteDurable(ctx, r.s.js, r.cons); err != nil {
		r.s.log.Warn("events: trigger stopped, its consumer not deleted", "function", r.fn, "trigger", r.t.Name, "err", err)
	}
}

// stop ends the runner and hands back every record it holds but has not
// settled, so that another node's runner takes them at once instead of
// after the ack wait: those in the iterator's buffer (drained), in the
// pipeline's channels and batches, and those an ordered lane was waiting
// to retry. A batch being invoked finishes first. An ordered trigger's pin
// is released, so that the next node need not wait out its pinned TTL.
func (r *streamRunner) stop() {
	close(r.quit)
	r.iter.Drain()
	r.wg.Wait()
	for m := range r.in {
		giveBack(m)
	}
	for _, l := range r.lanes {
		for m := range l {
			giveBack(m)
		}
	}
	if r.ordered != "" {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.s.ctx), 5*time.Second)
		defer cancel()
		if st, err := r.s.js.Stream(ctx, r.stream); err == nil {
			_ = st.UnpinConsumer(ctx, r.cons.CachedInfo().Name, pinGroup)
		}
	}
}

// giveBack hands a record back to JetStream for redelivery now.
func giveBack(m jetstream.Msg) { _ = m.Nak() }

func (r *streamRunner) status(ctx context.Context) api.TriggerStatus {
	st := api.TriggerStatus{Function: r.fn, Name: r.t.Name, Kind: r.t.Kind(), Trigger: r.t, State: "active", StreamName: r.stream}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if info, err := r.cons.Info(ctx); err == nil {
		st.Pending = info.NumPending + uint64(info.NumAckPending)
	} else {
		st.State = "error: " + err.Error()
	}
	return st
}

// start runs the pipeline: fetch -> batcher(s) -> invoking workers. With
// ordered_by, each of `concurrency` lanes owns the keys that hash to it and
// handles its batches one at a time.
func (r *streamRunner) start() {
	in := make(chan jetstream.Msg, r.batch*r.concurrency)
	r.in = in
	r.wg.Add(1)
	go r.fetch(in)
	if r.ordered == "" {
		batches := make(chan []jetstream.Msg)
		r.wg.Add(1 + r.concurrency)
		go r.batcher(in, batches)
		for range r.concurrency {
			go r.worker(batches)
		}
		return
	}
	lanes := make([]chan jetstream.Msg, r.concurrency)
	r.lanes = lanes
	for i := range lanes {
		lanes[i] = make(chan jetstream.Msg, r.batch)
		batches := make(chan []jetstream.Msg)
		r.wg.Add(2)
		go r.batcher(lanes[i], batches)
		go r.worker(batches)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			for _, l := range lanes {
				close(l)
			}
		}()
		for m := range in {
			h := fnv.New32a()
			h.Write([]byte(r.key(m)))
			select {
			case lanes[h.Sum32()%uint32(len(lanes))] <- m:
			case <-r.quit: // the lane's batcher may be gone
				giveBack(m)
			}
		}
	}()
}

// key is what ordered_by orders by.
func (r *streamRunner) key(m jetstream.Msg) string {
	if r.ordered == "subject" {
		return m.Subject()
	}
	h := m.Headers()
	if k := h.Get("ce-" + KeyExtension); k != "" {
		return k
	}
	if k := h.Get(KeyHeader); k != "" {
		return k
	}
	if strings.HasPrefix(h.Get("Content-Type"), "application/cloudevents") {
		var e struct {
			Key string `json:"partitionkey"`
		}
		if json.Unmarshal(m.Data(), &e) == nil {
			return e.Key
		}
	}
	return ""
}

func (r *streamRunner) fetch(out chan<- jetstream.Msg) {
	defer r.wg.Done()
	defer close(out)
	for {
		m, err := r.iter.Next()
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			continue
		}
		select {
		case <-r.quit: // stopping: what the drained iterator still holds goes back
			giveBack(m)
			continue
		default:
		}
		select {
		case out <- m:
		case <-r.quit:
			giveBack(m)
		}
	}
}

// batcher groups messages: a batch goes out when it is full, when the
// window since its first message has passed, or, with no window, as soon
// as no more messages are waiting.
func (r *streamRunner) batcher(in <-chan jetstream.Msg, out chan<- []jetstream.Msg) {
	defer r.wg.Done()
	defer close(out)
	var cur []jetstream.Msg
	var timer *time.Timer
	var timeout <-chan time.Time
	flush := func() bool {
		if timer != nil {
			timer.Stop()
			timer, timeout = nil, nil
		}
		if len(cur) == 0 {
			return true
		}
		select {
		case out <- cur:
			cur = nil
			return true
		case <-r.quit:
			for _, m := range cur {
				giveBack(m)
			}
			return false
		}
	}
	for {
		select {
		case m, ok := <-in:
			if !ok {
				flush()
				return
			}
			cur = append(cur, m)
			switch {
			case len(cur) >= r.batch:
				if !flush() {
					return
				}
			case r.window == 0:
				if len(in) == 0 && !flush() {
					return
				}
			case timer == nil:
				timer = time.NewTimer(r.window)
				timeout = timer.C
			}
		case <-timeout:
			if !flush() {
				return
			}
		case <-r.quit:
			for _, m := range cur {
				giveBack(m)
			}
			return
		}
	}
}

func (r *streamRunner) worker(batches <-chan []jetstream.Msg) {
	defer r.wg.Done()
	for b := range batches {
		r.process(b)
	}
}

// item is one record of a batch.
type item struct {
	msg    jetstream.Msg
	md     *jetstream.MsgMetadata
	record json.RawMessage
	id     string
}

// process invokes the function with a batch and settles each message:
// acknowledged when it succeeded, redelivered with backoff when it failed
// and has tries left, dead-lettered when it has none. The function may
// report partial failure with Lambda's {"batchItemFailures":
// [{"itemIdentifier": id}]}, where id is a record's id or nimbusseq.
func (r *streamRunner) process(batch []jetstream.Msg) {
	items := make([]*item, 0, len(batch))
	for _, m := range batch {
		md, err := m.Metadata()
		if err != nil {
			_ = m.Term()
			continue
		}
		rec, id := r.record(m, md)
		items = append(items, &item{msg: m, md: md, record: rec, id: id})
	}
	if len(items) == 0 {
		return
	}
	stopBeat := heartbeat(items, r.s.cfg.AckWait/3)
	defer stopBeat()
	pending := items
	for try := 1; ; try++ {
		failed, errText, stopped := r.invoke(pending)
		if stopped {
			// Stopped while the function was throttled: nothing ran, so
			// nothing failed; another runner takes the records now.
			for _, it := range pending {
				giveBack(it.msg)
			}
			return
		}
		failedSet := map[*item]bool{}
		for _, it := range failed {
			failedSet[it] = true
		}
		for _, it := range pending {
			if !failedSet[it] {
				_ = it.msg.Ack()
				r.s.m.records.WithLabelValues(r.fn, "ok").Inc()
			}
		}
		if len(failed) == 0 {
			return
		}
		if r.ordered == "" {
			// Unordered: JetStream redelivers each failed record on its own
			// schedule; the rest of the stream moves on.
			for _, it := range failed {
				if int(it.md.NumDelivered) > r.retries {
					r.deadLetter(it, errText, int(it.md.NumDelivered))
					continue
				}
				r.s.m.records.WithLabelValues(r.fn, "retried").Inc()
				_ = it.msg.NakWithDelay(retryDelay(int(it.md.NumDelivered)))
			}
			return
		}
		// Ordered: the lane waits for its failed records, so that no later
		// record of their keys overtakes them.
		if try > r.retries {
			for _, it := range failed {
				r.deadLetter(it, errText, try)
			}
			return
		}
		r.s.m.records.WithLabelValues(r.fn, "retried").Add(float64(len(failed)))
		select {
		case <-time.After(retryDelay(try)):
		case <-r.quit:
			for _, it := range failed {
				giveBack(it.msg)
			}
			return
		}
		pending = failed
	}
}

func retryDelay(n int) time.Duration {
	d := 200 * time.Millisecond << min(n-1, 10)
	d = min(d, time.Minute)
	return d/2 + rand.N(d/2+1)
}

func heartbeat(items []*item, every time.Duration) func() {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				for _, it := range items {
					_ = it.msg.InProgress()
				}
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-exited }
}

// batchEvent is the CloudEvent a stream trigger's function receives.
type batchEvent struct {
	SpecVersion     string    `json:"specversion"`
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	Type            string    `json:"type"`
	Subject         string    `json:"subject"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"`
	Data            batchData `json:"data"`
}

type batchData struct {
	Function string            `json:"function"`
	Trigger  string            `json:"trigger"`
	Stream   string            `json:"stream"`
	Records  []json.RawMessage `json:"records"`
}

func (r *streamRunner) envelope(items []*item) []byte {
	recs := make([]json.RawMessage, len(items))
	for i, it := range items {
		recs[i] = it.record
	}
	e := batchEvent{
		SpecVersion: "1.0", ID: fmt.Sprintf("%s-%d-%d", r.stream, items[0].md.Sequence.Stream, len(items)),
		Source: "/nimbus/streams/" + r.stream, Type: BatchType, Subject: r.t.Name, Time: time.Now().UTC(),
		DataContentType: "application/json",
		Data:            batchData{Function: r.fn, Trigger: r.t.Name, Stream: r.stream, Records: recs},
	}
	b, _ := json.Marshal(e) // records are valid JSON
	return b
}

// invoke runs the function on items and returns the ones that failed;
// stopped says the runner was stopped while the function was throttled,
// before it ran.
func (r *streamRunner) invoke(items []*item) (failed []*item, errText string, stopped bool) {
	payload := r.envelope(items)
	req := &invoke.Request{Function: r.fn, Payload: payload, Source: "stream:" + r.t.Name}
	wait := 10 * time.Millisecond
	var resp *invoke.Response
	var err error
	for {
		req.ID = ""
		resp, err = r.s.inv.Invoke(r.s.ctx, req)
		if !errors.Is(err, function.ErrThrottled) {
			break
		}
		select {
		case <-time.After(wait):
		case <-r.quit:
			return nil, "", true
		}
		wait = min(wait*2, time.Second)
	}
	if err != nil {
		msg := err.Error()
		if resp != nil && resp.Err != nil {
			msg = resp.Err.Message
		}
		return items, msg, false
	}
	var out struct {
		Failures []struct {
			ID any `json:"itemIdentifier"`
		} `json:"batchItemFailures"`
	}
	if json.Unmarshal(resp.Payload, &out) != nil || len(out.Failures) == 0 {
		return nil, "", false
	}
	byID := map[string]*item{}
	for _, it := range items {
		byID[it.id] = it
		byID[strconv.FormatUint(it.md.Sequence.Stream, 10)] = it
	}
	seen := map[*item]bool{}
	for _, f := range out.Failures {
		id := fmt.Sprint(f.ID)
		if f.ID == nil || id == "" {
			// As in Lambda: a failure without an id fails the whole batch.
			return items, "batchItemFailures entry without itemIdentifier", false
		}
		it, ok := byID[id]
		if !ok {
			return items, fmt.Sprintf("batchItemFailures names %q, which is not in the batch", id), false
		}
		if !seen[it] {
			seen[it] = true
			failed = append(failed, it)
		}
	}
	return failed, "reported in batchItemFailures", false
}

func (r *streamRunner) deadLetter(it *item, errText string, attempts int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.s.ctx), 10*time.Second)
	defer cancel()
	err := r.s.queue.AddDeadLetter(ctx, async.DeadLetterInput{
		Function: r.fn, ID: it.id, Source: "stream:" + r.t.Name, Reason: "retries", Error: errText,
		ErrorType: "BatchItemFailure", Attempts: attempts, Payload: r.envelope([]*item{it}),
		ContentType: "application/cloudevents+json", Enqueued: it.md.Timestamp,
		DedupeID: fmt.Sprintf("dlq.%s.%d", r.stream, it.md.Sequence.Stream),
	})
	if err != nil {
		r.s.log.Warn("events: dead letter not stored, redelivering", "function", r.fn, "seq", it.md.Sequence.Stream, "err", err)
		_ = it.msg.NakWithDelay(time.Second)
		return
	}
	r.s.m.records.WithLabelValues(r.fn, "dead_lettered").Inc()
	_ = it.msg.Ack()
}

// record turns a stream message into the CloudEvent the function sees:
// a CloudEvent message (structured, or binary with ce- headers) as it is,
// any other message wrapped in a run.nimbus.stream.message event whose id
// is "<stream>-<sequence>". Each gets the nimbusseq extension.
func (r *streamRunner) record(m jetstream.Msg, md *jetstream.MsgMetadata) (json.RawMessage, string) {
	e, err := messageEvent(m.Headers(), m.Data())
	if err != nil {
		ct := m.Headers().Get("Content-Type")
		data := m.Data()
		switch {
		case ct != "":
		case json.Valid(data):
			ct = "application/json"
		case utf8.Valid(data):
			ct = "text/plain"
		default:
			ct = "application/octet-stream"
		}
		if len(data) == 0 {
			data = nil
		}
		e, err = cloudevent.New("/nimbus/streams/"+r.stream, MessageType, m.Subject(), data, ct)
		if err != nil {
			// A JSON content type on a body that is not JSON: keep it as bytes.
			e, _ = cloudevent.New("/nimbus/streams/"+r.stream, MessageType, m.Subject(), data, "application/octet-stream")
		}
		e.SetID(fmt.Sprintf("%s-%d", r.stream, md.Sequence.Stream))
		e.SetTime(md.Timestamp.UTC())
		if k := m.Headers().Get(KeyHeader); k != "" {
			e.SetExtension(KeyExtension, k)
		}
	}
	e.SetExtension(SeqExtension, strconv.FormatUint(md.Sequence.Stream, 10))
	b, err := cloudevent.ToJSON(e)
	if err != nil {
		b, _ = json.Marshal(map[string]any{"id": e.ID(), "error": err.Error()})
	}
	return b, e.ID()
}

// messageEvent reads a CloudEvent from a NATS message in the structured or
// binary mode of the CloudEvents NATS binding, by way of the HTTP reader
// (the header conventions are the same).
func messageEvent(h map[string][]string, data []byte) (cloudevent.Event, error) {
	hh := http.Header{}
	binary := false
	for k, vs := range h {
		for _, v := range vs {
			hh.Add(k, v)
		}
		if strings.EqualFold(k, "ce-specversion") {
			binary = true
		}
	}
	ct := hh.Get("Content-Type")
	if !binary && !strings.HasPrefix(strings.ToLower(ct), "application/cloudevents") {
		// No content type but a body that is a CloudEvent: structured too.
		if ct != "" || !bytes.Contains(data, []byte(`"specversion"`)) {
			return cloudevent.Event{}, errors.New("not a CloudEvent")
		}
		hh.Set("Content-Type", "application/cloudevents+json")
	}
	req := &http.Request{Header: hh, Body: io.NopCloser(bytes.NewReader(data))}
	return cloudevent.FromHTTP(req, int64(len(data))+1)
}
