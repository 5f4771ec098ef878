package data

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// itemCache is a node's copy of the recently written and read items of one
// table, so that a get, and the read before a replace, costs a map lookup
// instead of a JetStream direct get. The direct get was most of an
// in-process get's CPU (61 µs) and a third of a get from a function
// (go run ./bench/data).
//
// Only a node that is its tables' sole writer keeps one (Config.SoleWriter:
// the node embeds its NATS server and that server listens to no one else),
// because only there does every change to a table's stream pass through
// this node's tableHandle.write, which keeps the cache current. Elsewhere a
// write from another node would go unseen, so reads go to the stream.
//
// The rules that keep a read from returning anything older than the last
// acknowledged write, or than what an earlier read returned:
//
//   - A write that succeeds stores its item under its revision. A write
//     that fails forgets the key: its outcome may be unknown (a timeout, a
//     lost connection), or the stream was ahead of the revision it
//     expected, which the cache may have served.
//   - Nothing replaces a newer revision, and nothing is stored when
//     anything was evicted or forgotten since the write or read began,
//     because the newer revision it must not replace may have been the one
//     dropped. A forgotten key counts as an eviction for this: a write
//     whose acknowledgement comes late (its writer was descheduled) would
//     otherwise store its revision after a failed write had dropped a
//     newer one (TestCacheLinearizable found it on a loaded machine).
//   - A read that missed stores what the stream returned when no write was
//     in flight from its start to its store, or when the cache holds an
//     older revision of the key: the acknowledgement of a write may reach
//     its writer after the stream has served the write to a read, and no
//     later read may go back to the revision before it. When it may not
//     store, a read that found a newer revision than the cache's removes
//     the cache's.
//   - An entry's time is the stream's stamp on the message, which the
//     publish ack does not carry: the key index's consumer delivers it
//     (stamp). Until then the entry serves the reads of writes, which need
//     the revision and the item, while a get reads the stream.
//
// The cache of a table name outlives its handles: a request still running
// on the handle of a deleted table writes through the same cache as the
// handle of the table recreated under that name, and deleting a table
// clears it (an eviction, so that in-flight writes of the old table store
// nothing).
type itemCache struct {
	budget *cacheBudget

	// Writes begun and ended. A read that missed may store what it read
	// when both were equal at its start and begun has not moved since
	// (or when it moves an older entry on: fill).
	begun, ended atomic.Uint64

	mu        sync.RWMutex
	m         map[string]cacheEntry
	bytes     int64
	evictions atomic.Uint64 // and forgotten keys

	// early are times the key index delivered before the write of their
	// revision stored its entry (the ack and the consumer race).
	early map[string]earlyStamp
}

// cacheEntry is the last message of an item's subject, as stored: item is
// the item even when it has expired (the read decides), nil when the
// subject holds a delete marker or nothing (rev 0).
type cacheEntry struct {
	rev     uint64
	item    []byte
	expires int64     // epoch seconds; 0: no TTL
	time    time.Time // the stream's stamp; zero: not known yet
}

type earlyStamp struct {
	rev  uint64
	time time.Time
}

// cacheBudget bounds the bytes of all the tables' caches of a Service,
// and counts their lookups.
type cacheBudget struct {
	max  int64
	used atomic.Int64

	hits, misses prometheus.Counter
}

func newCacheBudget(max int64, reg prometheus.Registerer) *cacheBudget {
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nimbus_table_cache_lookups_total",
		Help: "Reads of table items by whether the node's item cache answered (hit) or the stream did (miss).",
	}, []string{"result"})
	b := &cacheBudget{max: max, hits: lookups.WithLabelValues("hit"), misses: lookups.WithLabelValues("miss")}
	if reg != nil {
		// An error means a collector of this name is registered already
		// (tests run several nodes on one registry): this one still counts.
		_ = reg.Register(lookups)
		_ = reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nimbus_table_cache_bytes",
			Help: "Bytes of table items the node keeps in memory (see --table-cache).",
		}, func() float64 { return float64(b.used.Load()) }))
	}
	return b
}

// Per-entry bookkeeping counted against the budget (map slot, key and
// slice headers), and the bound on early stamps.
const (
	entryOverhead  = 96
	maxEarlyStamps = 4096
)

func newItemCache(b *cacheBudget) *itemCache {
	return &itemCache{budget: b, m: map[string]cacheEntry{}, early: map[string]earlyStamp{}}
}

// get returns the entry of key; with timed, only one whose time is known
// when it holds an item.
func (c *itemCache) get(key string, timed bool) (cacheEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[key]
	c.mu.RUnlock()
	if !ok || (timed && e.item != nil && e.time.IsZero()) {
		return cacheEntry{}, false
	}
	return e, true
}

// readToken is what a read that missed needs to store what it read.
type readToken struct {
	begun, evictions uint64
	ok               bool
}

func (c *itemCache) beginRead() readToken {
	ev := c.evictions.Load()
	b := c.begun.Load()
	return readToken{begun: b, evictions: ev, ok: c.ended.Load() == b}
}

// fill stores what a read found in the stream, by the rules above.
func (c *itemCache) fill(key string, t readToken, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.m[key]
	switch {
	case had && old.rev > e.rev:
	case had && old.rev == e.rev:
		if old.time.IsZero() { // the same message: its time is known now
			old.time = e.time
			c.m[key] = old
		}
	case c.evictions.Load() == t.evictions && (had || t.ok && c.begun.Load() == t.begun):
		c.putLocked(key, e)
	case had:
		c.forgetLocked(key) // behind what this read returns
	}
}

// beginWrite is called before a write is published; its result goes to
// wrote.
func (c *itemCache) beginWrite() uint64 {
	c.begun.Add(1)
	return c.evictions.Load()
}

// wrote ends a write begun with evictions ev: ok says that it stored e.
// A write that failed forgets the key: its outcome may be unknown, or it
// was refused because the stream holds a newer revision than the one it
// expected (which the cache may have served).
func (c *itemCache) wrote(key string, ev uint64, e cacheEntry, ok bool) {
	defer c.ended.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	old, had := c.m[key]
	switch {
	case !ok:
		c.forgetLocked(key)
		return
	case had && old.rev >= e.rev:
		return
	case c.evictions.Load() != ev:
		if had { // older than this write, which may not store
			c.forgetLocked(key)
		}
		return
	}
	if s, ok := c.early[key]; ok && s.rev == e.rev {
		e.time = s.time
		delete(c.early, key)
	}
	c.putLocked(key, e)
}

// stamp records the stream's time of the message at rev, which the key
// index's consumer delivered.
func (c *itemCache) stamp(key string, rev uint64, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		if e.rev == rev && e.time.IsZero() {
			e.time = t
			c.m[key] = e
		}
		if e.rev >= rev {
			return
		}
	}
	if len(c.early) >= maxEarlyStamps {
		clear(c.early) // stamps of writes that stored nothing
	}
	c.early[key] = earlyStamp{rev, t}
}

// clear empties the cache (its table was deleted or recreated).
func (c *itemCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evictions.Add(1)
	c.budget.used.Add(-c.bytes)
	c.bytes = 0
	clear(c.m)
	clear(c.early)
}

func entrySize(key string, e cacheEntry) int64 {
	return int64(len(key) + len(e.item) + entryOverhead)
}

// forgetLocked drops what the cache knows of key, as an eviction does:
// the writes and reads in flight store nothing, as one of them may carry a
// revision older than the one forgotten.
func (c *itemCache) forgetLocked(key string) {
	c.evictions.Add(1)
	if e, ok := c.m[key]; ok {
		c.removeLocked(key, e)
	}
}

func (c *itemCache) removeLocked(key string, e cacheEntry) {
	n := entrySize(key, e)
	c.bytes -= n
	c.budget.used.Add(-n)
	delete(c.m, key)
}

// putLocked stores e, then evicts entries of this table while the
// Service's caches are over budget: random ones (map order), down to 7/8
// of the budget, so that evictions, which refuse the stores of writes in
// flight, come in rare batches.
func (c *itemCache) putLocked(key string, e cacheEntry) {
	if old, ok := c.m[key]; ok {
		c.removeLocked(key, old)
	}
	if e.item != nil {
		e.item = e.item[:len(e.item):len(e.item)] // an append by a reader copies
	}
	n := entrySize(key, e)
	c.m[key] = e
	c.bytes += n
	if c.budget.used.Add(n) <= c.budget.max {
		return
	}
	c.evictions.Add(1)
	for k, old := range c.m {
		if c.budget.used.Load() <= c.budget.max/8*7 {
			break
		}
		c.removeLocked(k, old)
	}
}
