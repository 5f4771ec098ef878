package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadConsumer makes an ordered consumer that reads stream for a while
// (an index's feed, for as long as it runs), which nats.go makes anew
// after a lost connection or message; done deletes it as soon as the
// reading ends. A read that ends costs less through a OnceReader.
//
// nats.go leaves an ordered consumer on the server until it has been idle
// for 5 minutes, and a stream holds at most 1,000 consumers
// (nats-server's default): a stream read more than about three times a
// second ran out ("maximum consumers limit reached"), and then not even a
// trigger's durable consumer could be created on it. A consumer whose
// reader could not delete it (a lost connection, a crash) goes after
// ReadConsumerIdle.
func ReadConsumer(ctx context.Context, stream jetstream.Stream, cfg jetstream.OrderedConsumerConfig) (cons jetstream.Consumer, done func(), err error) {
	cfg.InactiveThreshold = ReadConsumerIdle
	cons, err = stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return cons, func() {
		info := cons.CachedInfo() // nil: never created on the server
		if info == nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stream.DeleteConsumer(ctx, info.Name) //nolint:errcheck // ReadConsumerIdle removes it anyway
	}, nil
}

// OnceReader is a consumer for one read of a stream that ends (a page of
// changes, of records, of dead letters; a sweep; a history; a download).
//
// ReadConsumer's ordered consumer resumes after a lost connection, but
// costs a read two consumers: nats.go creates it when asked for it, then
// deletes it and makes it anew at the first fetch. Each is a request to
// JetStream, and on a cluster a change of its metadata: a page of ten
// changes took 0.47-0.49 ms on a node of its own and 1.85-1.95 ms on a
// three-server cluster, against 0.30-0.31 and 1.06-1.18 with one consumer
// (BenchmarkChangesPage in internal/data, three runs each, alternating).
// A plain consumer does not resume on its own, so a reader checks with
// InOrder that no message went missing on the way, and with Unanswered
// that its first fetch was heard.
type OnceReader struct {
	jetstream.Consumer
	next   uint64        // the consumer's delivery sequence of the message to come
	waited time.Duration // in Unanswered, all told
	pause  time.Duration // Unanswered's last
}

// ErrMessagesLost says a read missed messages on their way from the server
// (a connection lost mid-fetch): reading again from the same start reads
// them.
var ErrMessagesLost = errors.New("messages were lost on their way from the server: read again")

// ReadOnce makes a OnceReader with an ordered consumer's settings (no
// acknowledgements, in memory, one replica) from cfg's start and filter;
// done deletes its consumer, which otherwise goes after ReadConsumerIdle.
func ReadOnce(ctx context.Context, stream jetstream.Stream, cfg jetstream.OrderedConsumerConfig) (r *OnceReader, done func(), err error) {
	cc := jetstream.ConsumerConfig{
		DeliverPolicy: cfg.DeliverPolicy, OptStartSeq: cfg.OptStartSeq, OptStartTime: cfg.OptStartTime,
		AckPolicy: jetstream.AckNonePolicy, InactiveThreshold: ReadConsumerIdle,
		Replicas: 1, MemoryStorage: true, HeadersOnly: cfg.HeadersOnly,
	}
	if len(cfg.FilterSubjects) == 1 {
		cc.FilterSubject = cfg.FilterSubjects[0]
	} else {
		cc.FilterSubjects = cfg.FilterSubjects
	}
	cons, err := stream.CreateConsumer(ctx, cc)
	if err != nil {
		return nil, nil, err
	}
	r = &OnceReader{Consumer: cons, next: 1}
	return r, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		stream.DeleteConsumer(ctx, cons.CachedInfo().Name) //nolint:errcheck // ReadConsumerIdle removes it anyway
	}, nil
}

// InOrder checks that md is of the message after the last one checked:
// the consumer counts a message delivered once it has sent it, so one
// lost on its way would not come again.
//
// # Errors
//
// ErrMessagesLost.
func (r *OnceReader) InOrder(md *jetstream.MsgMetadata) error {
	if md.Sequence.Consumer != r.next {
		return fmt.Errorf("%w (message %d of the read came after %d)", ErrMessagesLost, md.Sequence.Consumer, r.next-1)
	}
	r.next++
	return nil
}

// Unanswered says whether a fetch that brought nothing (got messages,
// ending with err) found no consumer to answer it, and if so waits a
// little before the caller asks again: 1 ms, twice as long each time after,
// up to answerWait in all.
//
// The server of a consumer's leader answers its pulls. On a cluster, a
// fetch made right after the consumer was created may reach the client's
// server before that server has heard of the consumer (servers learn of
// each other's subscriptions asynchronously); JetStream answers "no
// responders" and delivers nothing. Read from a node on another server
// than the table's stream, 33 of 300 pages of changes failed so (7 of 300
// with the ordered consumer before, whose second creation left more time).
func (r *OnceReader) Unanswered(ctx context.Context, got int, err error) bool {
	if got > 0 || !errors.Is(err, nats.ErrNoResponders) || r.waited >= answerWait {
		return false
	}
	r.pause = max(2*r.pause, time.Millisecond)
	r.waited += r.pause
	t := time.NewTimer(r.pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Available fetches up to n of the messages there are now (none when
// nothing is), asking again while the fetch meets no one (Unanswered).
func (r *OnceReader) Available(ctx context.Context, n int) ([]jetstream.Msg, error) {
	for {
		batch, err := r.FetchNoWait(n)
		if err != nil {
			return nil, err
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			if r.Unanswered(ctx, len(msgs), err) {
				continue
			}
			return nil, err
		}
		return msgs, nil
	}
}

// ReadAll reads what stream holds under cfg's filter now, up to batch
// messages a fetch, through a OnceReader, calling fn for each message in
// order until fn returns false or the consumer says nothing is pending.
func ReadAll(ctx context.Context, stream jetstream.Stream, cfg jetstream.OrderedConsumerConfig, batch int, fn func(jetstream.Msg, *jetstream.MsgMetadata) bool) error {
	cons, done, err := ReadOnce(ctx, stream, cfg)
	if err != nil {
		return err
	}
	defer done()
	for {
		msgs, err := cons.Available(ctx, batch)
		if err != nil || len(msgs) == 0 {
			return err
		}
		for _, m := range msgs {
			md, err := m.Metadata()
			if err != nil {
				return err
			}
			if err := cons.InOrder(md); err != nil {
				return err
			}
			if !fn(m, md) || md.NumPending == 0 {
				return nil
			}
		}
	}
}

// ReadConsumerIdle is how long an idle read consumer stays on the server.
const ReadConsumerIdle = time.Minute

// DeleteDurable deletes the durable consumer cons is bound to, for a
// trigger that is gone, unless it is gone already or was made again since:
// every node retires a removed trigger, and one told late may find the
// consumer that another, told of the trigger's return, has just made
// under the same name, whose position is not its to delete.
func DeleteDurable(ctx context.Context, js jetstream.JetStream, cons jetstream.Consumer) error {
	was := cons.CachedInfo()
	gone := func(err error) bool {
		return errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound)
	}
	now, err := js.Consumer(ctx, was.Stream, was.Name)
	if gone(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if !now.CachedInfo().Created.Equal(was.Created) {
		return nil
	}
	if err := js.DeleteConsumer(ctx, was.Stream, was.Name); err != nil && !gone(err) {
		return err
	}
	return nil
}

// DeliverFrom is where a consumer starts for a start position
// (api.ParseStart's): the oldest message, a stream sequence, a time, or
// (none of them) the messages after its creation.
func DeliverFrom(oldest bool, seq uint64, at time.Time) (jetstream.DeliverPolicy, uint64, *time.Time) {
	switch {
	case oldest:
		return jetstream.DeliverAllPolicy, 0, nil
	case seq > 0:
		return jetstream.DeliverByStartSequencePolicy, seq, nil
	case !at.IsZero():
		return jetstream.DeliverByStartTimePolicy, 0, &at
	}
	return jetstream.DeliverNewPolicy, 0, nil
}
