package data

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// keyIndex is one node's in-memory, ordered copy of a table's live keys,
// so a query seeks into its partition instead of listing the partition
// through JetStream (which has no ordered range read): a 100-item page of
// a 10,000-item partition costs a binary search and the page's reads, not
// a pass over 10,000 messages.
//
// Its feed is a headers-only consumer on the table's stream (see feed for
// how it starts and how readers see every write acknowledged before they
// began). Keys whose last message is a delete marker are dropped; expired
// items stay until the sweeper removes them (reads hide them anyway).
// Values are read by direct get, like Get.
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
	feed
	partitions map[string][]string
	parts      []string
}

// startKeyIndex builds the index of h and keeps it current until stop.
func startKeyIndex(h *tableHandle) (*keyIndex, error) {
	x := &keyIndex{feed: feed{what: "table " + h.def.Name}, partitions: map[string][]string{}}
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
	ptok, stok, _ := strings.Cut(key, ".")
	x.mu.Lock()
	defer x.mu.Unlock()
	defer x.advance(seq)
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
}

// has reports whether key is live as far as the index knows; ok is false
// while the index is not built. A put uses it only as a hint (the write
// is conditional on the revision either way).
func (x *keyIndex) has(key string) (present, ok bool) {
	ptok, stok, _ := strings.Cut(key, ".")
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.ready() {
		return false, false
	}
	_, present = slices.BinarySearch(x.partitions[ptok], stok)
	return present, true
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
// again after a failure, see lazyIndex), or nil when it cannot run.
func (h *tableHandle) index() *keyIndex {
	return h.idx.get(func() (*keyIndex, error) {
		x, err := startKeyIndex(h)
		if err != nil {
			h.log.Warn("data: key index not started; queries list keys through JetStream", "table", h.def.Name, "err", err)
		}
		return x, err
	})
}

// closeIndex stops the key index, if one runs.
func (h *tableHandle) closeIndex() { h.idx.close() }
