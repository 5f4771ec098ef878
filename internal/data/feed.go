package data

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/store"
)

// feed keeps an in-memory index of a stream's subjects current: an
// ordered consumer delivers the last message of every subject it filters
// (DeliverLastPerSubject, so a start reads each live key once, not the
// history), then every new one, written by any node. The indexes on top
// of it (keyIndex for tables, objIndex for buckets) apply each message
// under mu.
//
// Consistency: the index lags the stream by the time a message takes to
// reach this node. A reader first reads the stream's last sequence (one
// round trip to the stream leader) and waits until the feed has applied
// it (sync), so it sees every write acknowledged before it began, on any
// node. An index that stops catching up (a stalled consumer) costs
// latency (syncTimeout), never correctness: readers then fall back to
// listing through JetStream.
type feed struct {
	what string // for errors: "table orders", "bucket avatars"
	// partOf, when set, is the subject filter (a wildcard) of a feed that
	// follows part of its stream: how far the feed must get is then the
	// last message it follows, not the stream's last (lastSeq).
	partOf string

	mu      sync.RWMutex
	applied uint64        // stream sequence of the last message applied
	initial uint64        // the stream's last sequence when the feed started
	err     error         // the consumer failed or stopped: fall back to listing
	broken  atomic.Bool   // err is set; read without mu on every write (lazyIndex)
	changed chan struct{} // closed on the next change; nil: nobody waits

	cc     jetstream.ConsumeContext
	done   func() // deletes the consumer
	cancel context.CancelFunc

	// touched: the index served a reader or writer since the last idle
	// check (touch); idleSince: when the checks began to find it
	// untouched (idleFor, the sweeper's alone).
	touched   atomic.Bool
	idleSince time.Time
}

// touch marks the index used. It only reads a shared flag when it is
// set already, so the writes of a busy table do not contend on it.
func (f *feed) touch() {
	if !f.touched.Load() {
		f.touched.Store(true)
	}
}

// idleFor reports whether successive checks have found the index
// untouched for d. Called from one goroutine (the sweeper, under the
// lazyIndex's lock), every TTLInterval: an index is dropped between d and
// d plus one interval after its last use.
func (f *feed) idleFor(now time.Time, d time.Duration) bool {
	if f.touched.Swap(false) {
		f.idleSince = time.Time{}
		return false
	}
	if f.idleSince.IsZero() {
		f.idleSince = now
	}
	return now.Sub(f.idleSince) >= d
}

// start follows the subjects of stream that cfg filters, calling apply
// for each message in stream order; apply takes f.mu to change the index
// and calls advance before it lets go.
func (f *feed) start(stream jetstream.Stream, cfg jetstream.OrderedConsumerConfig, apply func(m jetstream.Msg, md *jetstream.MsgMetadata)) error {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	var err error
	if f.initial, err = f.lastSeq(ctx, stream); err != nil {
		cancel()
		return fmt.Errorf("%s: index: %w", f.what, err)
	}
	cfg.DeliverPolicy = jetstream.DeliverLastPerSubjectPolicy
	// Deleted when the feed stops (and gone after a minute without a
	// pull if it could not be): nats.go would leave it for 5 minutes.
	cons, done, err := store.ReadConsumer(ctx, stream, cfg)
	if err != nil {
		cancel()
		return fmt.Errorf("%s: index: %w", f.what, err)
	}
	f.done = done
	f.cc, err = cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		apply(m, md)
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// The ordered consumer recreates itself after gaps and
		// heartbeat misses; only a stream that is gone is final.
		if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			f.fail(err)
		}
	}))
	if err != nil {
		cancel()
		done()
		return fmt.Errorf("%s: index: %w", f.what, err)
	}
	return nil
}

// advance records that the message of stream sequence seq is applied;
// f.mu is held.
func (f *feed) advance(seq uint64) {
	f.applied = max(f.applied, seq)
	f.signal()
}

func (f *feed) stop() {
	if f.cc != nil {
		f.cc.Stop()
	}
	if f.cancel != nil {
		f.cancel()
	}
	if f.done != nil {
		f.done()
	}
	f.fail(errIndexStopped)
}

var errIndexStopped = errors.New("index stopped")

func (f *feed) fail(err error) {
	f.mu.Lock()
	f.err = err
	f.broken.Store(true)
	f.signal()
	f.mu.Unlock()
}

// signal wakes waiters of sync; f.mu is held. Only a sync makes the
// channel, so the writes nobody waits for cost no allocation.
func (f *feed) signal() {
	if f.changed != nil {
		close(f.changed)
		f.changed = nil
	}
}

// ready says whether the feed has applied what the stream held when it
// started and not failed; f.mu is held.
func (f *feed) ready() bool { return f.applied >= f.initial && f.err == nil }

// sync waits until the feed has applied stream sequence last (the
// stream's last sequence when the caller began), so what the index lists
// includes every write acknowledged before then.
//
// # Errors
//
// The consumer's failure, or ctx's error; callers fall back to listing.
func (f *feed) sync(ctx context.Context, last uint64) error {
	for {
		f.mu.Lock()
		done, err := f.applied >= last, f.err
		if f.changed == nil && !done && err == nil {
			f.changed = make(chan struct{})
		}
		ch := f.changed
		f.mu.Unlock()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// syncTimeout is how long a reader waits for an index that applies
// nothing before it lists the slow way.
const syncTimeout = 5 * time.Second

// synced waits until f has applied everything stream holds now; false
// when it cannot (callers then list through JetStream).
func (f *feed) synced(ctx context.Context, stream jetstream.Stream) bool {
	last, err := f.lastSeq(ctx, stream)
	if err != nil {
		return false
	}
	return f.catchUp(ctx, last, syncTimeout) == nil
}

// lastSeq is the sequence the feed must have applied to hold what the
// stream holds now: the stream's last, or the last message of the part
// it follows. A bucket's name index follows its objects' infos, and the
// last message of a bucket whose last put failed is a chunk of that put
// (purged, yet its sequence stays the stream's last): waiting for the
// index to apply it held every listing for syncTimeout, and then listed
// the slow way, until the next write.
func (f *feed) lastSeq(ctx context.Context, stream jetstream.Stream) (uint64, error) {
	if f.partOf == "" {
		info, err := stream.Info(ctx)
		if err != nil {
			return 0, err
		}
		return info.State.LastSeq, nil
	}
	m, err := stream.GetLastMsgForSubject(ctx, f.partOf)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return m.Sequence, nil
}

// catchUp waits until f has applied stream sequence last, for as long as
// it applies something every stall: an index still being built over a
// large bucket or table keeps its readers waiting (listing the slow way
// would read everything too, and slow the build down), one that has
// stopped lets them go after stall.
func (f *feed) catchUp(ctx context.Context, last uint64, stall time.Duration) error {
	for {
		f.mu.RLock()
		before := f.applied
		f.mu.RUnlock()
		sctx, cancel := context.WithTimeout(ctx, stall)
		err := f.sync(sctx, last)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		f.mu.RLock()
		progressed := f.applied > before && f.err == nil
		f.mu.RUnlock()
		if !progressed {
			return err
		}
	}
}

// usable says whether the feed still follows its stream.
func (f *feed) usable() bool { return !f.broken.Load() }

// lazyIndex holds the index of one table or bucket on this node, started
// on first use (so a node indexes only what it serves) and started again,
// at most every indexRetry, when its start failed (a stream's leader
// being elected, say) or its feed stopped following the stream. Without
// the retry one failure left the table or bucket listed the slow way
// until the node restarted.
type lazyIndex[T any, P interface {
	*T
	usable() bool
	stop()
}] struct {
	cur    atomic.Pointer[T] // read on every write of a table
	mu     sync.Mutex        // serializes starts
	closed bool
	tried  time.Time
}

// indexRetry is how often a failed index is started again.
var indexRetry = 30 * time.Second

// get returns the index, starting it if it is not running and the last
// attempt was at least indexRetry ago; nil when there is none. An index
// that stopped following its stream is returned until it is replaced: its
// readers see that it failed and list the slow way.
func (l *lazyIndex[T, P]) get(start func() (P, error)) P {
	if x := P(l.cur.Load()); x != nil && x.usable() {
		return x
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	x := P(l.cur.Load())
	if l.closed || (x != nil && x.usable()) || (!l.tried.IsZero() && time.Since(l.tried) < indexRetry) {
		return x
	}
	l.tried = time.Now()
	if x != nil {
		x.stop()
	}
	x, err := start()
	if err != nil {
		x = nil
	}
	l.cur.Store((*T)(x))
	return x
}

// dropIf stops the index and forgets it if idle says so, so that the
// next get starts a new one.
func (l *lazyIndex[T, P]) dropIf(idle func(P) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if x := P(l.cur.Load()); x != nil && !l.closed && idle(x) {
		x.stop()
		l.cur.Store(nil)
		l.tried = time.Time{}
	}
}

// close stops the index; none starts after it.
func (l *lazyIndex[T, P]) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if x := P(l.cur.Load()); x != nil {
		x.stop()
	}
}
