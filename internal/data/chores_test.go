package data

import (
	"context"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// TestChoresClaimed: two services on one JetStream, as the nodes of a
// cluster, with one clock. A chore's round goes to the first to claim it;
// the other gets none until 90% of the interval has passed, and then takes
// the chore over; two claiming at once get one round between them; each
// chore is claimed apart.
func TestChoresClaimed(t *testing.T) {
	ctx := context.Background()
	open := storetest.Shared(t)
	var mu sync.Mutex
	clock := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	a, b := New(Config{Now: now}, open()), New(Config{Now: now}, open())
	for _, s := range []*Service{a, b} {
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop(context.Background()) })
	}
	const every = time.Minute
	if !a.claim(ctx, choreTTL, every) {
		t.Fatal("the first claim of a chore lost")
	}
	if b.claim(ctx, choreTTL, every) || a.claim(ctx, choreTTL, every) {
		t.Fatal("a round claimed a moment ago was claimed again")
	}
	if !b.claim(ctx, choreOrphans, every) {
		t.Fatal("another chore's first claim lost")
	}
	advance(50 * time.Second)
	if b.claim(ctx, choreTTL, every) {
		t.Fatal("a round claimed 50s ago (of 1m) was claimed again")
	}
	advance(5 * time.Second)
	if !b.claim(ctx, choreTTL, every) {
		t.Fatal("a round claimed 55s ago (of 1m) could not be claimed")
	}
	if a.claim(ctx, choreTTL, every) {
		t.Fatal("the round the other service just claimed was claimed again")
	}
	for range 5 {
		advance(every)
		var wins [2]bool
		var wg sync.WaitGroup
		for i, s := range []*Service{a, b} {
			wg.Go(func() { wins[i] = s.claim(ctx, choreTTL, every) })
		}
		wg.Wait()
		if wins[0] == wins[1] {
			t.Fatalf("two services claiming a round at once: %v, want one win", wins)
		}
	}
}

// TestChoresRunOnce: the upkeep loops of two services sharing a JetStream
// run the TTL sweep once a round between them, where each ran it every
// round before.
func TestChoresRunOnce(t *testing.T) {
	ctx := context.Background()
	open := storetest.Shared(t)
	const every = 100 * time.Millisecond
	var services []*Service
	for range 2 {
		s := New(Config{TTLInterval: every}, open())
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop(context.Background()) })
		services = append(services, s)
	}
	start := time.Now()
	time.Sleep(20 * every)
	rounds := float64(time.Since(start) / every)
	total := 0.0
	for _, s := range services {
		var m dto.Metric
		if err := s.ops.chores.WithLabelValues(choreTTL).Write(&m); err != nil {
			t.Fatal(err)
		}
		total += m.GetCounter().GetValue()
	}
	// Each service alone would run about rounds sweeps.
	if total < rounds/4 || total > rounds*1.3 {
		t.Fatalf("the two services ran %v TTL sweeps in %v rounds, want about one a round", total, rounds)
	}
}
