package ratelimit

import (
	"fmt"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeClock struct{ ns atomic.Int64 }

var epoch = time.Date(2026, 3, 1, 23, 59, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time          { return epoch.Add(time.Duration(c.ns.Load())) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
	}{{"zero rate", 0, 1}, {"negative rate", -1, 1}, {"nan", math.NaN(), 1}, {"inf", math.Inf(1), 1}, {"zero burst", 1, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.rate, tc.burst); err == nil {
				t.Fatal("New accepted bad input")
			}
		})
	}
	if _, err := NewQuota(0); err == nil {
		t.Fatal("NewQuota(0) accepted")
	}
	if _, err := New(1, 1, WithMaxKeys(0)); err == nil {
		t.Fatal("WithMaxKeys(0) accepted")
	}
}

func TestLimiterBucket(t *testing.T) {
	clk := &fakeClock{}
	l, err := New(2, 3, WithClock(clk.Now)) // 2/s, burst 3
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		advance time.Duration
		want    bool
		retry   time.Duration
	}{
		{"burst 1", 0, true, 0},
		{"burst 2", 0, true, 0},
		{"burst 3", 0, true, 0},
		{"empty", 0, false, 500 * time.Millisecond},
		{"half refilled", 250 * time.Millisecond, false, 250 * time.Millisecond},
		{"one token", 250 * time.Millisecond, true, 0},
		{"empty again", 0, false, 500 * time.Millisecond},
		{"capped at burst", time.Hour, true, 0},
		{"capped 2", 0, true, 0},
		{"capped 3", 0, true, 0},
		{"capped empty", 0, false, 500 * time.Millisecond},
	}
	for _, s := range steps {
		clk.Advance(s.advance)
		ok, retry := l.Allow("k")
		if ok != s.want || retry != s.retry {
			t.Fatalf("%s: Allow = %v, %v; want %v, %v", s.name, ok, retry, s.want, s.retry)
		}
	}
	if ok, _ := l.Allow("other"); !ok {
		t.Fatal("keys share a bucket")
	}
}

// TestLimiterHammerExact: with a clock that only moves between rounds, the
// number of allowed requests across many goroutines is exactly burst plus
// rate times elapsed: no lost or double-spent tokens under contention.
func TestLimiterHammerExact(t *testing.T) {
	clk := &fakeClock{}
	const rate, burst, rounds, workers = 100.0, 50, 20, 16
	l, err := New(rate, burst, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	for r := 0; r < rounds; r++ {
		if r > 0 {
			clk.Advance(100 * time.Millisecond) // 10 tokens
		}
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Go(func() {
				for i := 0; i < 20; i++ {
					if ok, _ := l.Allow("hot"); ok {
						allowed.Add(1)
					}
					l.Allow("cold-" + strconv.Itoa(w)) // other keys in the mix
				}
			})
		}
		wg.Wait()
	}
	want := int64(burst + rate*0.1*(rounds-1))
	if got := allowed.Load(); got != want {
		t.Fatalf("allowed %d, want exactly %d", got, want)
	}
}

// TestLimiterHammerRealClock checks the same with real time: allowed is
// burst + rate*elapsed within a small tolerance.
func TestLimiterHammerRealClock(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	const rate, burst = 2000.0, 1000 // burst covers scheduling hiccups of up to 0.5s
	l, err := New(rate, burst)
	if err != nil {
		t.Fatal(err)
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(400 * time.Millisecond)
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if ok, _ := l.Allow("k"); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	upper := burst + rate*elapsed
	lower := burst + rate*0.4
	got := float64(allowed.Load())
	if got > upper+1 || got < lower*0.95 {
		t.Fatalf("allowed %v in %.3fs, want between %.0f and %.0f", got, elapsed, lower*0.95, upper)
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	clk := &fakeClock{}
	const maxKeys = shardCount * 100
	l, err := New(10, 5, WithClock(clk.Now), WithMaxKeys(maxKeys))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("bound holds when all keys are busy", func(t *testing.T) {
		for i := 0; i < 20*maxKeys; i++ {
			l.Allow("k" + strconv.Itoa(i))
		}
		if n := l.Len(); n > maxKeys {
			t.Fatalf("Len = %d, want <= %d", n, maxKeys)
		}
	})
	t.Run("idle full buckets are evicted", func(t *testing.T) {
		clk.Advance(time.Second) // every bucket refills (5 tokens at 10/s)
		for i := 0; i < shardCount*minSweep*2; i++ {
			l.Allow("fresh" + strconv.Itoa(i))
		}
		fresh := shardCount * minSweep * 2
		if n := l.Len(); n > fresh {
			t.Fatalf("Len = %d after refill; idle buckets not evicted (want <= %d)", n, fresh)
		}
	})
	t.Run("evicting full buckets changes nothing", func(t *testing.T) {
		l2, _ := New(1, 2, WithClock(clk.Now), WithMaxKeys(shardCount))
		l2.Allow("a")
		clk.Advance(10 * time.Second)
		for i := 0; i < 1000; i++ {
			l2.Allow(strconv.Itoa(i))
		}
		if ok, _ := l2.Allow("a"); !ok {
			t.Fatal("a was refused")
		}
		if ok, _ := l2.Allow("a"); !ok {
			t.Fatal("a lost its burst")
		}
	})
}

func TestQuota(t *testing.T) {
	clk := &fakeClock{} // 23:59:00 UTC
	q, err := NewQuota(3, WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if ok, _ := q.Allow("k"); !ok {
			t.Fatalf("request %d refused", i+1)
		}
	}
	if got := q.Remaining("k"); got != 0 {
		t.Fatalf("Remaining = %d", got)
	}
	ok, retry := q.Allow("k")
	if ok || retry != time.Minute {
		t.Fatalf("over quota: %v %v, want false 1m", ok, retry)
	}
	if q.Remaining("other") != 3 {
		t.Fatal("keys share a quota")
	}
	clk.Advance(time.Minute) // midnight UTC
	if got := q.Remaining("k"); got != 3 {
		t.Fatalf("Remaining after midnight = %d", got)
	}
	if ok, _ := q.Allow("k"); !ok {
		t.Fatal("not reset at midnight")
	}
	ok, retry = func() (bool, time.Duration) {
		q.Allow("k")
		q.Allow("k")
		return q.Allow("k")
	}()
	if ok || retry != 24*time.Hour {
		t.Fatalf("next day over quota: %v %v, want false 24h", ok, retry)
	}
}

func TestQuotaHammer(t *testing.T) {
	q, _ := NewQuota(1000, WithClock((&fakeClock{}).Now))
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Go(func() {
			for i := 0; i < 200; i++ {
				if ok, _ := q.Allow("k"); ok {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 1000 {
		t.Fatalf("allowed %d, want 1000", got)
	}
}

func TestQuotaBoundedMemory(t *testing.T) {
	clk := &fakeClock{}
	q, _ := NewQuota(5, WithClock(clk.Now), WithMaxKeys(shardCount*10))
	for i := 0; i < 10000; i++ {
		q.Allow(strconv.Itoa(i))
	}
	if n := q.Len(); n > shardCount*10 {
		t.Fatalf("Len = %d", n)
	}
	clk.Advance(24 * time.Hour)
	for i := 0; i < shardCount*minSweep; i++ {
		q.Allow("new" + strconv.Itoa(i))
	}
	if n := q.Len(); n > shardCount*10 {
		t.Fatalf("Len = %d after a day", n)
	}
}

func BenchmarkAllow(b *testing.B) {
	for _, keys := range []int{1, 10000} {
		b.Run(fmt.Sprintf("keys=%d", keys), func(b *testing.B) {
			l, _ := New(1e9, 1000)
			names := make([]string, keys)
			for i := range names {
				names[i] = "client-" + strconv.Itoa(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					l.Allow(names[i%keys])
					i++
				}
			})
		})
	}
}
