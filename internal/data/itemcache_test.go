package data

import (
	"strconv"
	"testing"
	"time"
)

// TestItemCacheRules checks the rules that keep the cache from serving
// anything older than the last acknowledged write (itemcache.go), one race
// at a time, in the order that would break each rule.
func TestItemCacheRules(t *testing.T) {
	at := time.Unix(1700000000, 5).UTC()
	newCache := func(max int64) *itemCache { return newItemCache(newCacheBudget(max, nil)) }
	entry := func(rev uint64, item string) cacheEntry {
		return cacheEntry{rev: rev, item: []byte(item), time: at}
	}
	has := func(t *testing.T, c *itemCache, key string, rev uint64) {
		t.Helper()
		e, ok := c.get(key, false)
		if rev == 0 {
			if ok {
				t.Fatalf("%s cached at revision %d, want nothing", key, e.rev)
			}
			return
		}
		if !ok || e.rev != rev {
			t.Fatalf("%s: cached %v (revision %d), want revision %d", key, ok, e.rev, rev)
		}
	}

	t.Run("a read during a write stores nothing", func(t *testing.T) {
		c := newCache(1 << 20)
		ev := c.beginWrite()
		tok := c.beginRead() // the write is in flight: its result may be unread
		c.fill("k", tok, entry(1, `{"v":1}`))
		has(t, c, "k", 0)
		c.wrote("k", ev, entry(2, `{"v":2}`), true)
		has(t, c, "k", 2)
	})
	t.Run("a read overtaken by a write stores nothing", func(t *testing.T) {
		c := newCache(1 << 20)
		tok := c.beginRead()
		ev := c.beginWrite()
		c.wrote("k", ev, cacheEntry{}, false) // lost: may have been stored
		c.fill("k", tok, entry(1, `{"v":1}`))
		has(t, c, "k", 0)
	})
	t.Run("a read with no write stores", func(t *testing.T) {
		c := newCache(1 << 20)
		ev := c.beginWrite()
		c.wrote("k", ev, cacheEntry{}, false)
		tok := c.beginRead()
		c.fill("k", tok, entry(3, `{"v":3}`))
		has(t, c, "k", 3)
	})
	t.Run("an older revision never replaces a newer one", func(t *testing.T) {
		c := newCache(1 << 20)
		evA := c.beginWrite()
		evB := c.beginWrite()
		c.wrote("k", evB, entry(5, `{"v":5}`), true)
		c.wrote("k", evA, entry(4, `{"v":4}`), true) // acknowledged first, stored last
		has(t, c, "k", 5)
	})
	t.Run("a write that spans an eviction stores nothing", func(t *testing.T) {
		c := newCache(1 << 20)
		evA := c.beginWrite()
		evB := c.beginWrite()
		c.wrote("k", evB, entry(5, `{"v":5}`), true)
		c.clear() // revision 5 is evicted: nothing remembers it is newer
		c.wrote("k", evA, entry(4, `{"v":4}`), true)
		has(t, c, "k", 0)
	})
	t.Run("a read ahead of the cache moves it on", func(t *testing.T) {
		c := newCache(1 << 20)
		c.fill("k", c.beginRead(), cacheEntry{rev: 3, item: []byte(`{}`)}) // no time yet
		// Revision 4 is acknowledged but not yet stored in the cache when
		// a get, which needs the time, reads it from the stream.
		ev := c.beginWrite()
		c.fill("k", c.beginRead(), entry(4, `{"v":4}`))
		has(t, c, "k", 4)
		c.wrote("k", ev, cacheEntry{rev: 4, item: []byte(`{"v":4}`)}, true)
		if e, ok := c.get("k", true); !ok || !e.time.Equal(at) {
			t.Fatalf("the write's store lost the time the read found: %v %v", e, ok)
		}
		// After an eviction it may not store, but it must not leave the
		// older revision behind.
		ev = c.beginWrite()
		tok := c.beginRead()
		c.evictions.Add(1) // some other key was evicted
		c.fill("k", tok, entry(5, `{"v":5}`))
		has(t, c, "k", 0)
		c.wrote("k", ev, entry(5, `{"v":5}`), true)
		has(t, c, "k", 0)
	})
	t.Run("a failed write forgets the key", func(t *testing.T) {
		c := newCache(1 << 20)
		tok := c.beginRead()
		c.fill("k", tok, entry(1, `{"v":1}`))
		ev := c.beginWrite()
		c.wrote("k", ev, cacheEntry{}, false)
		has(t, c, "k", 0)
	})
	t.Run("a late acknowledgement after a forget stores nothing", func(t *testing.T) {
		c := newCache(1 << 20)
		evA := c.beginWrite() // stored at revision 4; its writer is slow to hear
		evB := c.beginWrite()
		c.wrote("k", evB, entry(5, `{"v":5}`), true)
		evC := c.beginWrite()
		c.wrote("k", evC, cacheEntry{}, false) // refused: it expected 4
		has(t, c, "k", 0)
		c.wrote("k", evA, entry(4, `{"v":4}`), true)
		has(t, c, "k", 0)
	})
	t.Run("a write in flight when a read forgets the key stores nothing", func(t *testing.T) {
		c := newCache(1 << 20)
		c.fill("k", c.beginRead(), entry(3, `{"v":3}`))
		tok := c.beginRead()
		c.evictions.Add(1)    // some other key was evicted
		evC := c.beginWrite() // stored at revision 4, acknowledged late
		evD := c.beginWrite() // stored at revision 5, acknowledged late
		c.fill("k", tok, entry(5, `{"v":5}`))
		has(t, c, "k", 0)
		c.wrote("k", evC, entry(4, `{"v":4}`), true)
		has(t, c, "k", 0)
		c.wrote("k", evD, entry(5, `{"v":5}`), true)
		has(t, c, "k", 0)
	})
	t.Run("a get waits for the time", func(t *testing.T) {
		c := newCache(1 << 20)
		ev := c.beginWrite()
		c.wrote("k", ev, cacheEntry{rev: 7, item: []byte(`{}`)}, true)
		if _, ok := c.get("k", true); ok {
			t.Fatal("a timed get was served an entry without its time")
		}
		c.stamp("k", 7, at)
		if e, ok := c.get("k", true); !ok || !e.time.Equal(at) {
			t.Fatalf("after the stamp: %v %v", e.time, ok)
		}
		// The consumer may deliver the stamp before the write stores.
		ev = c.beginWrite()
		c.stamp("k", 8, at.Add(time.Second))
		c.wrote("k", ev, cacheEntry{rev: 8, item: []byte(`{}`)}, true)
		if e, ok := c.get("k", true); !ok || !e.time.Equal(at.Add(time.Second)) {
			t.Fatalf("stamped early: %v %v", e.time, ok)
		}
		// A deletion needs no time.
		ev = c.beginWrite()
		c.wrote("k", ev, cacheEntry{rev: 9}, true)
		if e, ok := c.get("k", true); !ok || e.item != nil {
			t.Fatalf("deleted: %v %v", e, ok)
		}
	})
	t.Run("the budget holds", func(t *testing.T) {
		b := newCacheBudget(64<<10, nil)
		c1, c2 := newItemCache(b), newItemCache(b)
		item := string(make([]byte, 1000))
		for i := range 1000 {
			for _, c := range []*itemCache{c1, c2} {
				tok := c.beginRead()
				c.fill(strconv.Itoa(i), tok, entry(uint64(i+1), item))
			}
		}
		if used := b.used.Load(); used > b.max || used != c1.bytes+c2.bytes {
			t.Fatalf("used %d bytes (tables %d + %d), budget %d", used, c1.bytes, c2.bytes, b.max)
		}
		if len(c1.m) == 0 || len(c2.m) == 0 {
			t.Fatalf("entries: %d and %d, want some in each", len(c1.m), len(c2.m))
		}
		c1.clear()
		if used := b.used.Load(); used != c2.bytes {
			t.Fatalf("after a clear: used %d, want %d", used, c2.bytes)
		}
	})
}
