package data

import (
	"context"
	"strings"

	"github.com/google/btree"
	"github.com/nats-io/nats.go/jetstream"
)

// keyIndex is one node's in-memory, ordered copy of a table's live keys,
// so a query seeks into its partition instead of listing the partition
// through JetStream (which has no ordered range read): a 100-item page of
// a 10,000-item partition costs a seek and the page's reads, not a pass
// over 10,000 messages.
//
// Its feed is a headers-only consumer on the table's stream (see feed for
// how it starts and how readers see every write acknowledged before they
// began). Keys whose last message is a delete marker are dropped; expired
// items stay until the sweeper removes them (reads hide them anyway).
// Values are read by direct get, like Get.
//
// The keys are in a B-tree (github.com/google/btree) in their index form
// (indexKey): the KV key with its '.' between the tokens turned into a
// byte below every token character, so that plain string order is the
// order of partition token, then sort token. (The KV keys themselves do
// not sort so: '-', a token character, sorts before '.', so "a-.x" <
// "a.x" although partition "a" < "a-".) An insert or delete costs
// O(log n) whatever the table's shape: the sorted slices this replaced
// moved half a partition (or half the list of partitions) on every new
// key, so a table of 100,000 items took 3.4 s of CPU to index, 300,000
// took 86 s, and a growing table's index fell behind its writes.
//
// Memory is the keys themselves (their encoded length, a string header
// and the B-tree's share each): a million items with 23-byte keys take
// 67 MB per node, until the node has not used the index for
// indexIdle (dropIdleIndexes). docs/data.md says so.
type keyIndex struct {
	feed
	keys *btree.BTreeG[string] // index form
}

// Index form: sep replaces the first '.' of a KV key; partitionEnd sorts
// after every key of a partition and before the next partition's keys
// (which continue the token with a token character, '-' or above).
const (
	sep          = "\x00"
	partitionEnd = "\x01"
)

// indexKey is a KV key's index form; kvKeyOf is its inverse.
func indexKey(kv string) string {
	if i := strings.IndexByte(kv, '.'); i >= 0 {
		return kv[:i] + sep + kv[i+1:]
	}
	return kv
}

func kvKeyOf(ik string) string {
	if i := strings.IndexByte(ik, sep[0]); i >= 0 {
		return ik[:i] + "." + ik[i+1:]
	}
	return ik
}

func newKeyIndex(what string) *keyIndex {
	return &keyIndex{feed: feed{what: what}, keys: btree.NewOrderedG[string](32)}
}

// startKeyIndex builds the index of h and keeps it current until stop.
func startKeyIndex(h *tableHandle) (*keyIndex, error) {
	x := newKeyIndex("table " + h.def.Name)
	n := len(h.pre)
	err := x.start(h.stream, jetstream.OrderedConsumerConfig{HeadersOnly: true, FilterSubjects: []string{h.pre + ">"}},
		func(m jetstream.Msg, md *jetstream.MsgMetadata) {
			hdr := m.Headers()
			del := hdr.Get(hKVOperation) == opDel || hdr.Get(hKVOperation) == opPurge || hdr.Get(jetstream.MarkerReasonHeader) != ""
			key := m.Subject()[n:]
			x.apply(key, del, md.Sequence.Stream)
			if h.cache != nil && md.Sequence.Stream > x.initial {
				h.cache.stamp(key, md.Sequence.Stream, md.Timestamp.UTC())
			}
		})
	if err != nil {
		return nil, err
	}
	return x, nil
}

func (x *keyIndex) apply(key string, del bool, seq uint64) {
	ik := indexKey(key)
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.advance(seq)
	if del {
		x.keys.Delete(ik)
	} else {
		x.keys.ReplaceOrInsert(ik)
	}
}

// has reports whether key is live as far as the index knows; ok is false
// while the index is not built. A put uses it only as a hint (the write
// is conditional on the revision either way).
func (x *keyIndex) has(key string) (present, ok bool) {
	ik := indexKey(key)
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.ready() {
		return false, false
	}
	return x.keys.Has(ik), true
}

// partition returns up to n keys of partition ptok, in sort key order (or
// reversed), strictly after the KV key after when it is set, whose sort
// token meets cc (nil: every key). The keys are full KV keys.
//
// A condition's keys are one run in sort order (each operator selects an
// interval of one type's tokens, begins_with too), so the walk starts at
// the condition's seek point and ends at the first key past the run: a
// page costs O(log n) plus its keys, wherever the run lies in the
// partition, rather than a filter of every key before it.
func (x *keyIndex) partition(ptok, after string, reverse bool, cc *compiled, n int) []string {
	if n <= 0 {
		return nil
	}
	prefix := ptok + sep
	var cursor string // after, in index form
	inRun := false    // a cursor that meets cc lies in the run (a page's last key does)
	if after != "" {
		cursor = indexKey(after)
		inRun = cc != nil && cc.match(strings.TrimPrefix(cursor, prefix))
	}
	start := cursor // "": the partition's edge
	if cc != nil {
		// The later of the cursor and the seek point (in reverse, the
		// earlier).
		if from := prefix + cc.seek(reverse); start == "" || (start < from) != reverse {
			start = from
		}
	}
	switch {
	case start != "":
	case reverse:
		start = ptok + partitionEnd
	default:
		start = prefix
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	visit := func(k string) bool {
		stok, ok := strings.CutPrefix(k, prefix)
		if !ok {
			return false // another partition
		}
		if cursor != "" && k == cursor {
			return true
		}
		if cc != nil && !cc.match(stok) {
			return !inRun // before the run: go on; after it: done
		}
		inRun = true
		out = append(out, ptok+"."+stok)
		return len(out) < n
	}
	if reverse {
		x.keys.DescendLessOrEqual(start, visit)
	} else {
		x.keys.AscendGreaterOrEqual(start, visit)
	}
	return out
}

// scan returns up to n keys of the whole table in key order, after the KV
// key after when it is set.
func (x *keyIndex) scan(after string, n int) []string {
	if n <= 0 {
		return nil
	}
	ia := indexKey(after)
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, min(n, x.keys.Len()))
	x.keys.AscendGreaterOrEqual(ia, func(k string) bool {
		if after == "" || k != ia {
			out = append(out, kvKeyOf(k))
		}
		return len(out) < n
	})
	return out
}

// indexed returns the table's key index, synced with the stream (see
// feed), or nil when it is not usable (callers then list keys through
// JetStream).
func (h *tableHandle) indexed(ctx context.Context) *keyIndex {
	if x := h.index(); x != nil && x.synced(ctx, h.stream) {
		return x
	}
	return nil
}

// index returns the table's key index, starting it on first use (and
// again after a failure, see lazyIndex), or nil when it cannot run. It
// marks the index used: one unused for indexIdle is dropped.
func (h *tableHandle) index() *keyIndex {
	x := h.idx.get(func() (*keyIndex, error) {
		x, err := startKeyIndex(h)
		if err != nil {
			h.log.Warn("data: key index not started; queries list keys through JetStream", "table", h.def.Name, "err", err)
		}
		return x, err
	})
	if x != nil {
		x.touch()
	}
	return x
}

// closeIndex stops the key index, if one runs.
func (h *tableHandle) closeIndex() { h.idx.close() }
