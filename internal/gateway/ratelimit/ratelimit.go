// Package ratelimit owns per-key request limits for user routes: token
// buckets (a steady rate with a burst) and daily quotas that reset at UTC
// midnight. Keys are whatever the caller picks (client IP, API key ID,
// route), and there may be millions of them: state is sharded for
// concurrency and bounded in memory.
//
// Limits are per node. It does not know about HTTP, plans or clusters; a
// cluster-wide quota would need shared counters (JetStream KV), which this
// package deliberately does not do on the hot path.
package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"sync"
	"time"
)

const shardCount = 64

// DefaultMaxKeys bounds the keys one Limiter or Quota tracks.
const DefaultMaxKeys = 1 << 20

// minSweep is the shard size below which no sweep is attempted.
const minSweep = 64

// Option adjusts New and NewQuota.
type Option func(*config)

type config struct {
	now     func() time.Time
	maxKeys int
}

// WithClock replaces time.Now; for tests. The clock must not go backwards
// (time.Now's monotonic reading does not).
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithMaxKeys bounds the keys tracked (default 1<<20). Past the bound, idle
// state is dropped first; if every key is busy an arbitrary key is dropped,
// which forgives that key its debt: memory stays bounded at the price of
// briefly letting one key exceed its limit.
func WithMaxKeys(n int) Option { return func(c *config) { c.maxKeys = n } }

func buildConfig(opts []Option) config {
	c := config{now: time.Now, maxKeys: DefaultMaxKeys}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// Limiter is a set of token buckets, one per key, all with the same rate and
// burst. A key's bucket starts full. It is safe for concurrent use.
type Limiter struct {
	rate     float64 // tokens per nanosecond
	burst    float64
	now      func() time.Time
	start    time.Time
	perShard int
	seed     maphash.Seed
	shards   [shardCount]bucketShard
}

type bucket struct {
	tokens float64
	last   int64 // ns since Limiter.start
}

type bucketShard struct {
	mu        sync.Mutex
	buckets   map[string]bucket
	nextSweep int
	lastSweep int64
	_         [32]byte // keep neighbouring shard locks off one cache line
}

// New returns a limiter allowing rate requests per second per key with
// bursts of up to burst. rate must be positive and finite, burst at least 1.
func New(rate float64, burst int, opts ...Option) (*Limiter, error) {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return nil, fmt.Errorf("ratelimit: rate %v must be a positive number of requests per second", rate)
	}
	if burst < 1 {
		return nil, fmt.Errorf("ratelimit: burst %d must be at least 1", burst)
	}
	c := buildConfig(opts)
	if c.maxKeys < 1 {
		return nil, errors.New("ratelimit: max keys must be at least 1")
	}
	l := &Limiter{
		rate: rate / float64(time.Second), burst: float64(burst),
		now: c.now, seed: maphash.MakeSeed(),
		perShard: max(1, c.maxKeys/shardCount),
	}
	l.start = l.now()
	for i := range l.shards {
		l.shards[i].buckets = make(map[string]bucket)
		l.shards[i].nextSweep = minSweep
	}
	return l, nil
}

// Allow takes one token from key's bucket. When the bucket is empty it
// returns false and how long until a token is there (for Retry-After).
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	now := int64(l.now().Sub(l.start))
	s := &l.shards[maphash.String(l.seed, key)%shardCount]
	s.mu.Lock()
	defer s.mu.Unlock()
	b, found := s.buckets[key]
	if !found {
		b = bucket{tokens: l.burst, last: now}
		l.makeRoom(s, now)
	} else if now > b.last {
		b.tokens = math.Min(l.burst, b.tokens+float64(now-b.last)*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		s.buckets[key] = b
		return true, 0
	}
	s.buckets[key] = b
	wait := time.Duration(math.Ceil((1 - b.tokens) / l.rate))
	return false, wait
}

// makeRoom keeps a shard bounded before a new key is added. A full bucket
// is the same as no bucket, so sweeping drops refilled ones; a sweep runs
// when the shard has doubled since the last one (amortised O(1) per new
// key), or when the shard is at its bound and a whole refill period has
// passed (so a saturated shard is not scanned on every new key). At the
// bound, a random key makes room.
func (l *Limiter) makeRoom(s *bucketShard, now int64) {
	n := len(s.buckets)
	refill := int64(l.burst / l.rate)
	if n >= s.nextSweep || n >= l.perShard && now-s.lastSweep >= refill {
		for k, b := range s.buckets {
			if b.tokens+float64(now-b.last)*l.rate >= l.burst {
				delete(s.buckets, k)
			}
		}
		s.lastSweep = now
		s.nextSweep = max(minSweep, 2*len(s.buckets))
	}
	for k := range s.buckets { // map iteration starts at a random entry
		if len(s.buckets) < l.perShard {
			break
		}
		delete(s.buckets, k)
	}
}

// Len returns the number of keys tracked.
func (l *Limiter) Len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.buckets)
		s.mu.Unlock()
	}
	return n
}

// Quota counts requests per key per UTC day. It is safe for concurrent use.
type Quota struct {
	limit    int
	now      func() time.Time
	perShard int
	seed     maphash.Seed
	shards   [shardCount]quotaShard
}

type counter struct {
	day   int64 // days since the Unix epoch, UTC
	count int
}

type quotaShard struct {
	mu        sync.Mutex
	counts    map[string]counter
	nextSweep int
	sweptDay  int64
	_         [32]byte
}

// NewQuota returns a quota of limit requests per key per UTC day.
func NewQuota(limit int, opts ...Option) (*Quota, error) {
	if limit < 1 {
		return nil, fmt.Errorf("ratelimit: quota %d must be at least 1", limit)
	}
	c := buildConfig(opts)
	if c.maxKeys < 1 {
		return nil, errors.New("ratelimit: max keys must be at least 1")
	}
	q := &Quota{limit: limit, now: c.now, seed: maphash.MakeSeed(), perShard: max(1, c.maxKeys/shardCount)}
	for i := range q.shards {
		q.shards[i].counts = make(map[string]counter)
		q.shards[i].nextSweep = minSweep
	}
	return q, nil
}

func dayOf(t time.Time) (day int64, untilMidnight time.Duration) {
	u := t.UTC()
	day = int64(math.Floor(float64(u.Unix()) / 86400))
	next := time.Unix((day+1)*86400, 0).UTC()
	return day, next.Sub(u)
}

// Allow counts one request for key. Past the limit it returns false and the
// time until the next UTC midnight.
func (q *Quota) Allow(key string) (ok bool, retryAfter time.Duration) {
	day, untilMidnight := dayOf(q.now())
	s := &q.shards[maphash.String(q.seed, key)%shardCount]
	s.mu.Lock()
	defer s.mu.Unlock()
	c, found := s.counts[key]
	if !found {
		q.makeRoom(s, day)
	}
	if c.day != day {
		c = counter{day: day}
	}
	if c.count >= q.limit {
		return false, untilMidnight
	}
	c.count++
	s.counts[key] = c
	return true, 0
}

// Remaining returns how many requests key has left today.
func (q *Quota) Remaining(key string) int {
	day, _ := dayOf(q.now())
	s := &q.shards[maphash.String(q.seed, key)%shardCount]
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts[key]
	if c.day != day {
		return q.limit
	}
	return q.limit - c.count
}

// makeRoom is Limiter.makeRoom for counters: counters of past days are
// dead, and a saturated shard is rescanned at most once per day.
func (q *Quota) makeRoom(s *quotaShard, day int64) {
	n := len(s.counts)
	if n >= s.nextSweep || n >= q.perShard && s.sweptDay != day {
		for k, c := range s.counts {
			if c.day != day {
				delete(s.counts, k)
			}
		}
		s.sweptDay = day
		s.nextSweep = max(minSweep, 2*len(s.counts))
	}
	for k := range s.counts {
		if len(s.counts) < q.perShard {
			break
		}
		delete(s.counts, k)
	}
}

// Len returns the number of keys tracked.
func (q *Quota) Len() int {
	n := 0
	for i := range q.shards {
		s := &q.shards[i]
		s.mu.Lock()
		n += len(s.counts)
		s.mu.Unlock()
	}
	return n
}
