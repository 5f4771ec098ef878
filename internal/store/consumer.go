package store

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// ReadConsumer makes an ordered consumer that reads stream for a while
// (an object's download, a page of changes, records or dead letters, a
// workflow's history, or an index's feed for as long as it runs); done
// deletes it as soon as the reading ends.
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

// ReadAll reads what stream holds under cfg's filter now, a batch at a
// time through a read consumer (ReadConsumer), calling fn for each message
// in order, until the consumer says nothing is pending. A message whose
// metadata cannot be read is skipped.
func ReadAll(ctx context.Context, stream jetstream.Stream, cfg jetstream.OrderedConsumerConfig, fn func(jetstream.Msg, *jetstream.MsgMetadata)) error {
	cons, done, err := ReadConsumer(ctx, stream, cfg)
	if err != nil {
		return err
	}
	defer done()
	for {
		batch, err := cons.FetchNoWait(1024)
		if err != nil {
			return err
		}
		got, last := 0, false
		for m := range batch.Messages() {
			got++
			md, err := m.Metadata()
			if err != nil {
				continue
			}
			fn(m, md)
			last = last || md.NumPending == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return err
		}
		if got == 0 || last {
			return nil
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
