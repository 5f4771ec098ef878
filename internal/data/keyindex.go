package data

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// keyIndex is one node's in-memory, ordered copy of a table's live keys,
// so a query seeks into its partition instead of listing the partition
// through JetStream (which has no ordered range read): a 100-item page of
// a 10,000-item partition costs a binary search and the page's reads, not
// a pass over 10,000 messages.
//
// It is fed by an ordered, headers-only consumer on the table's stream:
// first the last message of every key (DeliverLastPerSubject, so a start
// reads each live key once, not the history), then every new write, from
// any node. Keys whose last message is a delete marker are dropped; expired
// items stay until the sweeper removes them (reads hide them anyway).
//
// Consistency: the index lags the stream by the time a message takes to
// reach this node. A query first reads the stream's last sequence (one
// round trip to the stream leader) and waits until the index has applied
// it, so it sees every write acknowledged before it began, on any node
// (see sync). Values are then read by direct get, like Get.
//
// Memory is the keys themselves (about their encoded length plus a string
// header each): a million items with short keys take some 60 MB per node.
// docs/data.md says so.
//
// Layout: partitions map a partition token to its sort tokens in order,
// and parts holds the partition tokens in order (for Scan). A table
// without a sort key has one empty sort token per partition. Both are
// sorted slices: an insert costs a copy of its partition, which is cheap
// next to the JetStream write that caused it.
type keyIndex struct {
	name string

	mu         sync.RWMutex
	partitions map[string][]string
	parts      []string
	applied    uint64        // stream sequence of the last message applied
	initial    uint64        // the stream's last sequence when the index started
	err        error         // the consumer failed or stopped: fall back to listing
	changed    chan struct{} // closed on the next change; nil: nobody waits

	cc     jetstream.ConsumeContext
	cancel context.CancelFunc
}

// startKeyIndex builds the index of h and keeps it current until stop.
func startKeyIndex(h *tableHandle) (*keyIndex, error) {
	x := &keyIndex{name: h.def.Name, partitions: map[string][]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	x.cancel = cancel
	info, err := h.stream.Info(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("table %s: key index: %w", h.def.Name, err)
	}
	x.initial = info.State.LastSeq
	cons, err := h.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy, HeadersOnly: true,
		FilterSubjects: []string{h.pre + ">"},
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("table %s: key index: %w", h.def.Name, err)
	}
	n := len(h.pre)
	x.cc, err = cons.Consume(func(m jetstream.Msg) {
		md, err := m.Metadata()
		if err != nil {
			return
		}
		hdr := m.Headers()
		del := hdr.Get(hKVOperation) == opDel || hdr.Get(hKVOperation) == opPurge || hdr.Get(jetstream.MarkerReasonHeader) != ""
		key := m.Subject()[n:]
		x.apply(key, del, md.Sequence.Stream)
		if h.cache != nil && md.Sequence.Stream > x.initial {
			h.cache.stamp(key, md.Sequence.Stream, md.Timestamp.UTC())
		}
	}, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// The ordered consumer recreates itself after gaps and
		// heartbeat misses; only a stream that is gone is final.
		if errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			x.fail(err)
		}
	}))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("table %s: key index: %w", h.def.Name, err)
	}
	return x, nil
}

func (x *keyIndex) stop() {
	if x.cc != nil {
		x.cc.Stop()
	}
	x.cancel()
	x.fail(errIndexStopped)
}

var errIndexStopped = errors.New("key index stopped")

func (x *keyIndex) fail(err error) {
	x.mu.Lock()
	x.err = err
	x.signal()
	x.mu.Unlock()
}

// signal wakes waiters of sync; x.mu is held. Only a sync makes the
// channel, so the writes nobody waits for cost no allocation.
func (x *keyIndex) signal() {
	if x.changed != nil {
		close(x.changed)
		x.changed = nil
	}
}

func (x *keyIndex) apply(key string, del bool, seq uint64) {
	ptok, stok, _ := strings.Cut(key, ".")
	x.mu.Lock()
	defer x.mu.Unlock()
	if seq > x.applied {
		x.applied = seq
	}
	ks := x.partitions[ptok]
	i, found := slices.BinarySearch(ks, stok)
	switch {
	case del && found:
		ks = slices.Delete(ks, i, i+1)
		if len(ks) == 0 {
			delete(x.partitions, ptok)
			if j, ok := slices.BinarySearch(x.parts, ptok); ok {
				x.parts = slices.Delete(x.parts, j, j+1)
			}
		} else {
			x.partitions[ptok] = ks
		}
	case !del && !found:
		if len(ks) == 0 {
			j, _ := slices.BinarySearch(x.parts, ptok)
			x.parts = slices.Insert(x.parts, j, ptok)
		}
		x.partitions[ptok] = slices.Insert(ks, i, stok)
	}
	x.signal()
}

// has reports whether key is live as far as the index knows; ok is false
// while the index is not built. A put uses it only as a hint (the write
// is conditional on the revision either way).
func (x *keyIndex) has(key string) (present, ok bool) {
	ptok, stok, _ := strings.Cut(key, ".")
	x.mu.RLock()
	defer x.mu.RUnlock()
	if x.applied < x.initial || x.err != nil {
		return false, false
	}
	_, present = slices.BinarySearch(x.partitions[ptok], stok)
	return present, true
}

// sync waits until the index has applied stream sequence last (the
// stream's last sequence when the caller began), so what it lists
// includes every write acknowledged before then.
//
// # Errors
//
// The consumer's failure, or ctx's error; callers fall back to listing.
func (x *keyIndex) sync(ctx context.Context, last uint64) error {
	for {
		x.mu.RLock()
		done, err := x.applied >= last, x.err
		x.mu.RUnlock()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		x.mu.Lock()
		done, err = x.applied >= last, x.err
		if x.changed == nil && !done && err == nil {
			x.changed = make(chan struct{})
		}
		ch := x.changed
		x.mu.Unlock()
		if done || err != nil {
			continue
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// partition returns up to n keys of partition ptok, in sort key order (or
// reversed), strictly after the KV key after when it is set, whose sort
// token passes keep. The keys are full KV keys.
func (x *keyIndex) partition(ptok, after string, reverse bool, keep func(stok string) bool, n int) []string {
	if n <= 0 {
		return nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	ks := x.partitions[ptok]
	var afterS string
	if after != "" {
		afterS = after[len(ptok)+1:]
	}
	out := make([]string, 0, min(n, len(ks)))
	add := func(s string) bool {
		if keep == nil || keep(s) {
			out = append(out, ptok+"."+s)
		}
		return len(out) < n
	}
	if !reverse {
		i := 0
		if after != "" {
			i = sort.SearchStrings(ks, afterS)
			if i < len(ks) && ks[i] == afterS {
				i++
			}
		}
		for ; i < len(ks) && add(ks[i]); i++ {
		}
		return out
	}
	i := len(ks) - 1
	if after != "" {
		i = sort.SearchStrings(ks, afterS) - 1
	}
	for ; i >= 0 && add(ks[i]); i-- {
	}
	return out
}

// scan returns up to n keys of the whole table in key order, after the KV
// key after when it is set.
func (x *keyIndex) scan(after string, n int) []string {
	if n <= 0 {
		return nil
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, n)
	aptok, astok, _ := strings.Cut(after, ".")
	j := 0
	if after != "" {
		j = sort.SearchStrings(x.parts, aptok)
	}
	for ; j < len(x.parts) && len(out) < n; j++ {
		ptok := x.parts[j]
		ks := x.partitions[ptok]
		i := 0
		if after != "" && ptok == aptok {
			i = sort.SearchStrings(ks, astok)
			if i < len(ks) && ks[i] == astok {
				i++
			}
		}
		for ; i < len(ks) && len(out) < n; i++ {
			if ks[i] == "" {
				out = append(out, ptok) // a table without a sort key
			} else {
				out = append(out, ptok+"."+ks[i])
			}
		}
	}
	return out
}

// count returns the number of live keys.
func (x *keyIndex) count() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n := 0
	for _, ks := range x.partitions {
		n += len(ks)
	}
	return n
}

// syncTimeout bounds how long a query waits for the index before it lists
// keys the slow way: an index that cannot catch up (a stalled consumer)
// must cost latency, never correctness.
const syncTimeout = 5 * time.Second

// indexed returns the table's key index, synced with the stream's current
// last sequence, or nil when it is not usable (callers then list keys
// through JetStream).
func (h *tableHandle) indexed(ctx context.Context) *keyIndex {
	x := h.index()
	if x == nil {
		return nil
	}
	info, err := h.stream.Info(ctx)
	if err != nil {
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if x.sync(sctx, info.State.LastSeq) != nil {
		return nil
	}
	return x
}

// index returns the table's key index, starting it on first use (so a
// node indexes only the tables it serves), or nil when it cannot run.
func (h *tableHandle) index() *keyIndex {
	h.idxOnce.Do(func() {
		x, err := startKeyIndex(h)
		if err != nil {
			h.log.Warn("data: key index not started; queries list keys through JetStream", "table", h.def.Name, "err", err)
			return
		}
		h.idx = x
	})
	return h.idx
}

// closeIndex stops the key index, if one runs.
func (h *tableHandle) closeIndex() {
	h.idxOnce.Do(func() {}) // no index may start after this
	if h.idx != nil {
		h.idx.stop()
	}
}
