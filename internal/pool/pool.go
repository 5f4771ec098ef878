// Package pool keeps the instances of each function on one node: it reuses
// warm instances, starts new ones up to the function's max concurrency,
// queues briefly and then throttles beyond it, keeps min instances warm
// (provisioned concurrency), pre-starts run-once instances (WASI commands)
// so their start-up cost stays off the request path, and reclaims idle
// instances (scale to zero). It does not know how instances run (package
// runtime does) nor records invocations (package invoke does).
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// Config tunes every pool of a node.
type Config struct {
	// QueueTimeout is how long a call waits for a free slot when the
	// function is at its max concurrency before it is throttled.
	QueueTimeout time.Duration
	// Prestart is how many run-once instances are kept started ahead of
	// demand while a function is in use.
	Prestart int
	// ReapInterval is how often idle instances are looked for.
	ReapInterval time.Duration
	// Observer, when set, is told about instance counts.
	Observer Observer
	Logger   *slog.Logger
}

// Observer receives pool events for metrics.
type Observer interface {
	Instances(function string, n int)
}

// Lease is one acquired slot on an instance.
type Lease struct {
	Instance runtime.Instance
	// Cold is true when the instance was started for this call.
	Cold bool
	// Init is the cold-start work (zero when warm).
	Init time.Duration
	// Queued is the time spent waiting for a slot.
	Queued time.Duration

	p    *Pool
	inst *instance
}

type instance struct {
	runtime.Instance
	active   int
	used     bool
	lastUsed time.Time
}

// Pool holds the instances of one function version.
type Pool struct {
	spec  *function.Spec
	equal atomic.Pointer[function.Spec] // see runs
	rt    runtime.Runtime
	cfg   *Config

	mu       sync.Mutex
	idle     []*instance // free capacity; most recently used last
	all      map[*instance]struct{}
	starting int
	inflight int
	waiters  []chan struct{}
	// For instances serving several invocations at once: promised is the
	// spare capacity of instances being started for callers, not yet
	// claimed; riders are the callers that claimed it and wait for the
	// instance instead of starting one each (so a burst of N calls starts
	// N/capacity instances, not N).
	promised int
	riders   []chan *instance
	prestart int // run-once instances wanted ahead of demand
	// refillPending: a refill is scheduled (see refillSoon).
	refillPending bool
	lastCall      time.Time
	closed        bool
	drained       chan struct{} // closed when the last lease of a closed pool is released
	wg            sync.WaitGroup
}

func newPool(spec *function.Spec, rt runtime.Runtime, cfg *Config) *Pool {
	return &Pool{spec: spec, rt: rt, cfg: cfg, all: map[*instance]struct{}{}}
}

// Spec is the spec this pool runs.
func (p *Pool) Spec() *function.Spec { return p.spec }

// Acquire returns a slot on an instance, starting one when none is free. ctx
// carries the invocation's deadline; it bounds queueing and the cold start.
//
// # Errors
// function.ErrThrottled when the function stays at max concurrency for the
// queue timeout; function.ErrTimeout when the deadline passes while queued or
// starting; the runtime's start error otherwise.
func (p *Pool) Acquire(ctx context.Context) (*Lease, error) {
	t0 := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("%s: pool closed: %w", p.spec.Name, function.ErrUnavailable)
	}
	p.lastCall = t0
	if p.inflight >= p.spec.Max {
		if err := p.wait(ctx); err != nil { // unlocks and relocks
			p.mu.Unlock()
			return nil, err
		}
		if p.closed { // closed while we queued
			p.releaseSlot()
			p.mu.Unlock()
			return nil, fmt.Errorf("%s: pool closed: %w", p.spec.Name, function.ErrUnavailable)
		}
	} else {
		p.inflight++
	}
	queued := time.Since(t0)
	for {
		if inst := p.takeIdle(); inst != nil {
			p.mu.Unlock()
			// No refill here: starting a replacement now would compete for
			// the CPU with this very call; Release refills.
			return &Lease{Instance: inst.Instance, Queued: queued, p: p, inst: inst}, nil
		}
		if p.promised == 0 {
			break
		}
		if inst := p.ride(ctx); inst != nil { // unlocks
			return &Lease{Instance: inst.Instance, Queued: time.Since(t0), p: p, inst: inst}, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("timed out while waiting for a starting instance: %w", function.ErrTimeout)
		}
		p.mu.Lock() // the start failed: look again
	}
	p.starting++
	spare := p.spec.Concurrency - 1
	p.promised += spare
	p.mu.Unlock()

	t1 := time.Now()
	ri, err := p.rt.Start(ctx, p.spec)
	init := time.Since(t1)
	if ir, ok := ri.(runtime.InitReporter); ok && err == nil && ir.InitDuration() > 0 {
		init = ir.InitDuration()
	}
	p.mu.Lock()
	p.starting--
	if err != nil {
		p.breakPromise(spare)
		p.releaseSlot()
		p.mu.Unlock()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("timed out during cold start after %s: %w", init.Round(time.Millisecond), function.ErrTimeout)
		}
		return nil, fmt.Errorf("start instance: %w", err)
	}
	inst := &instance{Instance: ri, active: 1, used: true}
	p.all[inst] = struct{}{}
	// Riders first, up to what this start promised; then spare capacity is
	// usable by others.
	p.promised -= spare
	for len(p.riders) > 0 && inst.active < min(inst.Capacity(), spare+1) {
		ch := p.riders[0]
		p.riders = p.riders[1:]
		p.promised++
		inst.active++
		ch <- inst
	}
	p.breakPromise(0) // an instance with less capacity than the spec said
	if inst.active < inst.Capacity() {
		p.idle = append(p.idle, inst)
	}
	n := len(p.all)
	p.mu.Unlock()
	p.observe(n)
	p.refill()
	return &Lease{Instance: ri, Cold: true, Init: init, Queued: queued, p: p, inst: inst}, nil
}

// ride claims a slot promised by an instance being started and waits for
// it. Called with p.mu held; returns with it released. A nil result means
// the start failed or ctx ended (the caller's slot of max concurrency is
// still held when the start failed, and released when ctx ended).
func (p *Pool) ride(ctx context.Context) *instance {
	ch := make(chan *instance, 1)
	p.riders = append(p.riders, ch)
	p.promised--
	p.mu.Unlock()
	select {
	case inst := <-ch:
		return inst
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, r := range p.riders {
		if r == ch {
			p.riders = append(p.riders[:i], p.riders[i+1:]...)
			p.promised++
			p.releaseSlot()
			return nil
		}
	}
	// Handed an instance (or nil, for a failed start) as ctx ended.
	if inst := <-ch; inst != nil {
		return inst
	}
	p.releaseSlot()
	return nil
}

// breakPromise withdraws the spare capacity a failed start promised: riders
// beyond what other starts still promise go and start their own. Called
// with p.mu held.
func (p *Pool) breakPromise(spare int) {
	p.promised -= spare
	for p.promised < 0 && len(p.riders) > 0 {
		ch := p.riders[len(p.riders)-1]
		p.riders = p.riders[:len(p.riders)-1]
		p.promised++
		ch <- nil
	}
}

// wait queues for a slot. Called and returns with p.mu held.
func (p *Pool) wait(ctx context.Context) error {
	ch := make(chan struct{}, 1)
	p.waiters = append(p.waiters, ch)
	p.mu.Unlock()
	timer := time.NewTimer(p.cfg.QueueTimeout)
	defer timer.Stop()
	var err error
	select {
	case <-ch:
	case <-timer.C:
		err = fmt.Errorf("%s is at its max concurrency (%d): %w", p.spec.Name, p.spec.Max, function.ErrThrottled)
	case <-ctx.Done():
		err = fmt.Errorf("timed out while queued for an instance: %w", function.ErrTimeout)
	}
	p.mu.Lock()
	if err != nil {
		for i, w := range p.waiters {
			if w == ch {
				p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
				return err
			}
		}
		// The slot was handed over as we gave up: pass it on.
		p.releaseSlot()
	}
	return err
}

// releaseSlot gives an invocation slot back, to a waiter when there is one.
// Called with p.mu held.
func (p *Pool) releaseSlot() {
	if len(p.waiters) > 0 {
		ch := p.waiters[0]
		p.waiters = p.waiters[1:]
		ch <- struct{}{}
		return
	}
	p.inflight--
	if p.inflight == 0 && p.drained != nil {
		close(p.drained)
		p.drained = nil
	}
}

// takeIdle picks the most recently used instance with free capacity. Called
// with p.mu held.
func (p *Pool) takeIdle() *instance {
	for i := len(p.idle) - 1; i >= 0; i-- {
		inst := p.idle[i]
		inst.active++
		inst.used = true
		if inst.active >= inst.Capacity() {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
		}
		return inst
	}
	return nil
}

// Release returns the lease's slot. An instance that cannot serve again is
// closed.
func (l *Lease) Release() {
	p, inst := l.p, l.inst
	reusable := inst.Reusable()
	p.mu.Lock()
	inst.active--
	inst.lastUsed = time.Now()
	drop := !reusable || p.closed
	p.removeIdle(inst)
	if drop {
		if inst.active == 0 {
			delete(p.all, inst)
		}
	} else {
		p.idle = append(p.idle, inst) // the warm end
	}
	if ro, ok := inst.Instance.(runtime.RunOnce); ok && ro.RunOnce() && p.prestart < p.cfg.Prestart {
		p.prestart = p.cfg.Prestart
	}
	n := len(p.all)
	p.refillSoon()
	closing := drop && inst.active == 0
	if closing {
		p.closeAsync(inst)
	}
	p.releaseSlot() // last: it may let close go on to wait for wg
	p.mu.Unlock()
	if closing {
		p.observe(n)
	}
}

// refillDelay is how long after a release its refill starts: starting a
// run-once instance is milliseconds of CPU that, begun at once, would
// compete with the response its caller is about to write.
const refillDelay = time.Millisecond

// refillSoon schedules a refill after refillDelay when the pool keeps
// instances warm, one at a time. Called with p.mu held.
func (p *Pool) refillSoon() {
	if p.refillPending || p.closed || (p.prestart == 0 && len(p.all) >= p.spec.Min) {
		return
	}
	p.refillPending = true
	time.AfterFunc(refillDelay, func() {
		p.mu.Lock()
		p.refillPending = false
		p.mu.Unlock()
		p.refill()
	})
}

func (p *Pool) removeIdle(inst *instance) {
	for i, x := range p.idle {
		if x == inst {
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			return
		}
	}
}

// refill starts instances in the background up to what should be warm: min
// instances always, and pre-started run-once instances while in use.
func (p *Pool) refill() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	want := max(p.spec.Min-len(p.all), 0)
	if p.prestart > 0 {
		free := 0
		for _, inst := range p.idle {
			if !inst.used {
				free++
			}
		}
		want = max(want, p.prestart-free-p.starting)
	} else {
		want -= p.starting
	}
	// Never start beyond what max concurrency could use.
	want = min(want, p.spec.Max-len(p.all)-p.starting)
	if want <= 0 {
		p.mu.Unlock()
		return
	}
	p.starting += want
	p.wg.Add(want)
	p.mu.Unlock()
	for range want {
		go p.startBackground()
	}
}

func (p *Pool) startBackground() {
	defer p.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), max(time.Duration(p.spec.Timeout), 30*time.Second))
	ri, err := p.rt.Start(ctx, p.spec)
	cancel()
	p.mu.Lock()
	p.starting--
	if err != nil {
		p.mu.Unlock()
		if p.cfg.Logger != nil {
			p.cfg.Logger.Warn("pool: background start failed", "function", p.spec.Name, "err", err)
		}
		return
	}
	if p.closed {
		p.mu.Unlock()
		ri.Close(context.Background())
		return
	}
	inst := &instance{Instance: ri, lastUsed: time.Now()}
	p.all[inst] = struct{}{}
	// Pre-started instances go to the cold end so warm ones are used first.
	p.idle = append([]*instance{inst}, p.idle...)
	n := len(p.all)
	p.mu.Unlock()
	p.observe(n)
}

// closeAsync closes inst in the background. Called with p.mu held, so that
// close, once it saw no lease out, never sees wg grow.
func (p *Pool) closeAsync(inst *instance) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		inst.Close(ctx)
	}()
}

func (p *Pool) observe(n int) {
	if p.cfg.Observer != nil {
		p.cfg.Observer.Instances(p.spec.Name, n)
	}
}

// reap closes instances idle longer than the idle timeout, keeping min.
func (p *Pool) reap(now time.Time) {
	idleTimeout := time.Duration(p.spec.IdleTimeout)
	p.mu.Lock()
	if now.Sub(p.lastCall) > idleTimeout {
		p.prestart = 0
	}
	var victims []*instance
	keep := p.idle[:0]
	for _, inst := range p.idle {
		if inst.active == 0 && now.Sub(inst.lastUsed) > idleTimeout && len(p.all)-len(victims) > p.spec.Min {
			victims = append(victims, inst)
			continue
		}
		keep = append(keep, inst)
	}
	p.idle = keep
	for _, inst := range victims {
		delete(p.all, inst)
		p.closeAsync(inst)
	}
	n := len(p.all)
	p.mu.Unlock()
	if len(victims) > 0 {
		p.observe(n)
	}
	p.refill()
}

// Stats is a snapshot of a pool.
type Stats struct {
	Instances int `json:"instances"`
	Idle      int `json:"idle"`
	Inflight  int `json:"inflight"`
	Starting  int `json:"starting"`
	Queued    int `json:"queued"`
}

// Stats returns a snapshot.
func (p *Pool) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	idle := 0
	for _, inst := range p.idle {
		if inst.active == 0 {
			idle++
		}
	}
	return Stats{Instances: len(p.all), Idle: idle, Inflight: p.inflight, Starting: p.starting, Queued: len(p.waiters)}
}

// close stops new work, closes idle instances now and busy ones as their
// leases are released, and waits for background work.
func (p *Pool) close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for _, inst := range p.idle {
		if inst.active == 0 {
			delete(p.all, inst)
			p.closeAsync(inst)
		}
	}
	p.idle = nil
	var drained chan struct{}
	if p.inflight > 0 {
		drained = make(chan struct{})
		p.drained = drained
	}
	p.mu.Unlock()
	p.observe(0)
	// Leases still out close their instances as they are released (adding
	// to wg), so wait for them before waiting on wg: nothing adds to it once
	// the pool is closed and has no lease out.
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
			return errors.New("pool: close: waiting for invocations: " + ctx.Err().Error())
		}
	}
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("pool: close: " + ctx.Err().Error())
	}
}
