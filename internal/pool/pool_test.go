package pool

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// countingRuntime is a runtime whose instances hold for a while; the pool's
// bookkeeping is what is under test here (the real runtimes have their own
// tests, and the node's tests run the pool with them).
type countingRuntime struct {
	starts   atomic.Int64
	closes   atomic.Int64
	active   atomic.Int64
	peak     atomic.Int64
	hold     time.Duration
	runOnce  bool
	capacity int
	startDur time.Duration
	failNext atomic.Int64 // starts to fail
}

type countingInstance struct {
	rt   *countingRuntime
	used atomic.Bool
}

func (r *countingRuntime) Prepare(context.Context, *function.Spec, []byte) error { return nil }
func (r *countingRuntime) Forget(string)                                         {}
func (r *countingRuntime) Start(ctx context.Context, _ *function.Spec) (runtime.Instance, error) {
	r.starts.Add(1)
	time.Sleep(r.startDur)
	if r.failNext.Add(-1) >= 0 {
		return nil, errors.New("start failed")
	}
	return &countingInstance{rt: r}, nil
}

func (i *countingInstance) Invoke(ctx context.Context, _ *runtime.Request) (*runtime.Result, error) {
	i.used.Store(true)
	n := i.rt.active.Add(1)
	for {
		p := i.rt.peak.Load()
		if n <= p || i.rt.peak.CompareAndSwap(p, n) {
			break
		}
	}
	defer i.rt.active.Add(-1)
	select {
	case <-time.After(i.rt.hold):
		return &runtime.Result{Payload: []byte("ok")}, nil
	case <-ctx.Done():
		return nil, function.ErrTimeout
	}
}
func (i *countingInstance) Capacity() int {
	if i.rt.capacity > 0 {
		return i.rt.capacity
	}
	return 1
}
func (i *countingInstance) Reusable() bool { return !(i.rt.runOnce && i.used.Load()) }
func (i *countingInstance) RunOnce() bool  { return i.rt.runOnce }
func (i *countingInstance) Close(context.Context) error {
	i.rt.closes.Add(1)
	return nil
}

func spec(max, min int) *function.Spec {
	s := &function.Spec{Name: "f", Code: "sha256:x", Max: max, Min: min, Timeout: function.Duration(5 * time.Second), IdleTimeout: function.Duration(time.Hour)}
	s.Normalize()
	return s
}

func run(t *testing.T, p *Pool) error {
	t.Helper()
	l, err := p.Acquire(context.Background())
	if err != nil {
		return err
	}
	_, err = l.Instance.Invoke(context.Background(), &runtime.Request{})
	l.Release()
	return err
}

// TestMaxConcurrencyHammer: many goroutines against a pool with max 4 never
// run more than 4 at once; those that cannot get a slot within the queue
// timeout are throttled; the rest succeed.
func TestMaxConcurrencyHammer(t *testing.T) {
	rt := &countingRuntime{hold: 20 * time.Millisecond}
	cfg := Config{QueueTimeout: 10 * time.Millisecond, Prestart: 2}
	p := newPool(spec(4, 0), rt, &cfg)
	var ok, throttled atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := run(t, p)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, function.ErrThrottled):
				throttled.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		}()
	}
	wg.Wait()
	if got := rt.peak.Load(); got > 4 {
		t.Errorf("peak concurrency = %d, want <= 4", got)
	}
	if ok.Load() < 4 || throttled.Load() == 0 || ok.Load()+throttled.Load() != 64 {
		t.Errorf("ok = %d, throttled = %d; want at least 4 ok, some throttled, 64 in all", ok.Load(), throttled.Load())
	}
	if got := rt.starts.Load(); got > 4 {
		t.Errorf("started %d instances, want <= 4 (warm reuse)", got)
	}
	st := p.Stats()
	if st.Inflight != 0 || st.Queued != 0 {
		t.Errorf("after the storm: %+v, want nothing in flight or queued", st)
	}
	if err := p.close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestQueueHandsOverSlots: with a queue timeout longer than the work, every
// caller eventually runs (FIFO hand-over), and none exceeds max.
func TestQueueHandsOverSlots(t *testing.T) {
	rt := &countingRuntime{hold: 5 * time.Millisecond}
	cfg := Config{QueueTimeout: 5 * time.Second}
	p := newPool(spec(2, 0), rt, &cfg)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(t, p); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Errorf("%d calls failed, want 0", failed.Load())
	}
	if rt.peak.Load() > 2 {
		t.Errorf("peak = %d, want <= 2", rt.peak.Load())
	}
}

func TestMinAndReap(t *testing.T) {
	rt := &countingRuntime{}
	cfg := Config{QueueTimeout: time.Second}
	s := spec(10, 2)
	s.IdleTimeout = function.Duration(10 * time.Millisecond)
	p := newPool(s, rt, &cfg)
	p.refill()
	waitFor(t, func() bool { return p.Stats().Instances == 2 })
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l.Cold {
		t.Error("first call with min=2 was a cold start")
	}
	l.Release()
	// Three concurrent calls need a third instance; it is reaped, min stays.
	var leases []*Lease
	for range 3 {
		l, err := p.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	for _, l := range leases {
		l.Release()
	}
	if got := p.Stats().Instances; got != 3 {
		t.Fatalf("instances = %d, want 3", got)
	}
	time.Sleep(20 * time.Millisecond)
	p.reap(time.Now())
	if got := p.Stats().Instances; got != 2 {
		t.Errorf("after reap: instances = %d, want min 2", got)
	}
	p.close(context.Background())
	waitFor(t, func() bool { return rt.closes.Load() == 3 })
}

func TestRunOnceInstancesArePrestarted(t *testing.T) {
	rt := &countingRuntime{runOnce: true}
	cfg := Config{QueueTimeout: time.Second, Prestart: 2}
	p := newPool(spec(10, 0), rt, &cfg)
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !l.Cold {
		t.Error("first call should be cold")
	}
	l.Instance.Invoke(context.Background(), &runtime.Request{})
	l.Release()
	waitFor(t, func() bool { return p.Stats().Idle == 2 })
	l, err = p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l.Cold {
		t.Error("call after pre-start was cold")
	}
	l.Instance.Invoke(context.Background(), &runtime.Request{})
	l.Release()
	waitFor(t, func() bool { return p.Stats().Idle == 2 })
	if got := rt.closes.Load(); got != 2 {
		t.Errorf("closed %d run-once instances, want 2", got)
	}
	// Scale to zero: after the idle timeout nothing stays pre-started.
	p.spec.IdleTimeout = function.Duration(time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	p.reap(time.Now())
	waitFor(t, func() bool { return p.Stats().Instances == 0 })
	p.close(context.Background())
}

func TestInstanceCapacity(t *testing.T) {
	rt := &countingRuntime{capacity: 4, hold: 20 * time.Millisecond}
	cfg := Config{QueueTimeout: time.Second}
	p := newPool(spec(8, 0), rt, &cfg)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() { defer wg.Done(); run(t, p) }()
	}
	wg.Wait()
	if got := rt.starts.Load(); got < 2 || got > 8 {
		t.Errorf("starts = %d", got)
	}
	if got := p.Stats().Instances; got > 8 {
		t.Errorf("instances = %d", got)
	}
	p.close(context.Background())
}

func TestDeadlineWhileQueued(t *testing.T) {
	rt := &countingRuntime{hold: 200 * time.Millisecond}
	cfg := Config{QueueTimeout: 5 * time.Second}
	p := newPool(spec(1, 0), rt, &cfg)
	go run(t, p)
	waitFor(t, func() bool { return p.Stats().Inflight == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := p.Acquire(ctx)
	if !errors.Is(err, function.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	p.close(context.Background())
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}

func BenchmarkAcquireRelease(b *testing.B) {
	rt := &countingRuntime{}
	cfg := Config{QueueTimeout: time.Second}
	p := newPool(spec(1000, 0), rt, &cfg)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l, err := p.Acquire(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			l.Release()
		}
	})
}

// A burst against instances that serve several invocations at once starts
// only as many instances as the burst needs, and a failed start sends the
// calls that waited for it to start their own.
func TestBurstCoalescesMultiConcurrencyStarts(t *testing.T) {
	for _, fail := range []int64{0, 1} {
		rt := &countingRuntime{hold: 20 * time.Millisecond, capacity: 4, startDur: 30 * time.Millisecond}
		rt.failNext.Store(fail)
		s := spec(100, 0)
		s.Concurrency = 4
		p := newPool(s, rt, &Config{QueueTimeout: time.Second})
		var wg sync.WaitGroup
		var errs atomic.Int64
		for range 16 {
			wg.Go(func() {
				if err := run(t, p); err != nil {
					errs.Add(1)
				}
			})
		}
		wg.Wait()
		// A failed start fails its own caller (as any cold start error does)
		// and nobody else's.
		if errs.Load() != fail {
			t.Errorf("fail=%d: %d calls failed", fail, errs.Load())
		}
		if got, want := rt.starts.Load(), 4+fail; got != want {
			t.Errorf("fail=%d: %d starts for a burst of 16 on capacity 4, want %d", fail, got, want)
		}
		if got := p.Stats().Instances; got != 4 {
			t.Errorf("fail=%d: %d instances, want 4", fail, got)
		}
		p.close(context.Background())
	}
}

// close waits for the leases still out, and closes their instances as they
// come back.
func TestCloseWaitsForLeases(t *testing.T) {
	rt := &countingRuntime{}
	p := newPool(spec(4, 0), rt, &Config{QueueTimeout: time.Second})
	l, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- p.close(context.Background()) }()
	select {
	case <-closed:
		t.Fatal("close returned with a lease out")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, function.ErrUnavailable) {
		t.Errorf("Acquire on a closing pool: %v, want ErrUnavailable", err)
	}
	l.Release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if rt.closes.Load() != rt.starts.Load() {
		t.Errorf("%d instances closed of %d started", rt.closes.Load(), rt.starts.Load())
	}
}
