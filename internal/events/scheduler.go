package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
	"github.com/nimbus-run/nimbus/internal/events/schedule"
	"github.com/nimbus-run/nimbus/internal/invoke"
)

// ScheduleType is the CloudEvents type of a schedule tick.
const ScheduleType = "run.nimbus.schedule"

// maxCatchUp bounds a schedule's catch-up window; the ticks bucket keeps
// claims a little longer, so a claim outlives any tick that may be caught up.
const maxCatchUp = 24 * time.Hour

// staleClaim is how long a claimed tick may stay unfired before another
// node (or this one, after a restart) takes it over.
const staleClaim = 30 * time.Second

// tickState is the value of a tick's key in the ticks bucket.
type tickState struct {
	State string    `json:"state"` // claimed, fired
	At    time.Time `json:"at"`
	ID    string    `json:"invocation_id,omitempty"`
}

// scheduleState is a schedule's entry in the state bucket.
type scheduleState struct {
	LastFired time.Time   `json:"last_fired"`
	Missed    int         `json:"missed,omitempty"`
	LastMiss  []time.Time `json:"last_missed,omitempty"`
}

type scheduleRunner struct {
	s       *Service
	fn      string
	t       api.Trigger
	sched   schedule.Schedule
	catchUp time.Duration
	key     string // state key and tick-id name

	quit chan struct{}
	done chan struct{}

	mu        sync.Mutex
	next      time.Time
	lastFired time.Time
	missed    int
	lastErr   string
}

func (s *Service) startSchedule(fn string, t api.Trigger) (runner, error) {
	loc := time.UTC
	if t.Timezone != "" {
		l, err := time.LoadLocation(t.Timezone)
		if err != nil {
			return nil, err
		}
		loc = l
	}
	sched, err := schedule.ParseInLocation(t.Schedule, loc)
	if err != nil {
		return nil, err
	}
	catchUp := s.cfg.DefaultCatchUp
	if t.CatchUp != "" {
		if catchUp, err = time.ParseDuration(t.CatchUp); err != nil {
			return nil, err
		}
	}
	catchUp = min(catchUp, maxCatchUp)
	r := &scheduleRunner{s: s, fn: fn, t: t, sched: sched, catchUp: max(catchUp, 0),
		key: stateKey(fn, t.Name), quit: make(chan struct{}), done: make(chan struct{})}
	s.wg.Add(1)
	go r.run()
	return r, nil
}

// stateKey names a schedule in the state bucket and in its tick ids:
// schedule.TickID escapes it to valid key characters.
func stateKey(fn, name string) string { return fn + "/" + name }

func (r *scheduleRunner) spec() api.Trigger { return r.t }

func (r *scheduleRunner) stop() {
	close(r.quit)
	<-r.done
}

func (r *scheduleRunner) status(context.Context) api.TriggerStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := api.TriggerStatus{Function: r.fn, Name: r.t.Name, Kind: api.KindSchedule, Trigger: r.t, State: "active",
		NextFire: r.next, LastFired: r.lastFired, Missed: r.missed}
	if r.next.IsZero() {
		st.State = "done"
	}
	if r.lastErr != "" {
		st.State = "error: " + r.lastErr
	}
	return st
}

func (r *scheduleRunner) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.s.ctx, 10*time.Second)
}

// run fires the schedule until stopped: first the ticks missed while no
// node ran (within the catch-up window), then each tick as it comes.
func (r *scheduleRunner) run() {
	defer r.s.wg.Done()
	defer close(r.done)
	now := r.s.cfg.Now()
	st, err := r.loadState(now)
	for err != nil {
		r.setErr(err)
		if !r.sleep(time.Second) {
			return
		}
		st, err = r.loadState(r.s.cfg.Now())
	}
	r.mu.Lock()
	r.lastFired, r.missed = st.LastFired, st.Missed
	r.mu.Unlock()

	last := st.LastFired
	fire, missed, count := schedule.Missed(r.sched, last, now, r.catchUp)
	if count > 0 {
		r.s.log.Warn("events: schedule ticks missed while no node ran", "function", r.fn, "trigger", r.t.Name, "missed", count, "first", missed[0])
		r.s.m.ticks.WithLabelValues(r.fn, "missed").Add(float64(count))
		r.recordMissed(count, missed)
	}
	for _, tick := range fire {
		if !r.fire(tick) {
			return
		}
	}
	// Every tick up to now is fired or recorded as missed.
	last = maxTime(last, now)
	for {
		next, ok := r.sched.Next(last)
		if !ok {
			r.setNext(time.Time{})
			<-r.quit
			return
		}
		r.setNext(next)
		if !r.sleep(time.Until(next)) {
			return
		}
		if !r.fire(next) {
			return
		}
		last = next
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (r *scheduleRunner) setNext(t time.Time) {
	r.mu.Lock()
	r.next = t
	r.mu.Unlock()
}

func (r *scheduleRunner) setErr(err error) {
	r.mu.Lock()
	if err == nil {
		r.lastErr = ""
	} else {
		r.lastErr = err.Error()
	}
	r.mu.Unlock()
}

// sleep waits d; false means the runner was stopped.
func (r *scheduleRunner) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-r.quit:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.quit:
		return false
	}
}

// loadState reads the schedule's state, creating it for a new schedule
// with "now" as its last fire time: a new schedule does not fire the past.
func (r *scheduleRunner) loadState(now time.Time) (*scheduleState, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	key := escapeKey(r.key)
	for {
		e, err := r.s.state.Get(ctx, key)
		if err == nil {
			var st scheduleState
			if err := json.Unmarshal(e.Value(), &st); err != nil {
				return nil, fmt.Errorf("schedule state: %w", err)
			}
			return &st, nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("schedule state: %w", err)
		}
		st := &scheduleState{LastFired: now.UTC()}
		b, _ := json.Marshal(st)
		if _, err := r.s.state.Create(ctx, key, b); err == nil {
			return st, nil
		} else if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("schedule state: %w", err)
		}
		// Another node created it first: read theirs.
	}
}

// fire fires one tick, once across the cluster, retrying on JetStream
// errors until it succeeds or the runner stops (false).
func (r *scheduleRunner) fire(tick time.Time) bool {
	for {
		err := r.fireOnce(tick)
		r.setErr(err)
		if err == nil {
			return true
		}
		r.s.log.Warn("events: schedule tick failed, retrying", "function", r.fn, "trigger", r.t.Name, "tick", tick, "err", err)
		if !r.sleep(time.Second) {
			return false
		}
	}
}

// fireOnce claims the tick (a create-if-absent key named by its TickID),
// queues the invocation with the TickID as JetStream message id, and marks
// the tick fired. A node that loses the claim does nothing; a claim left
// unfired by a node that died is taken over after staleClaim, and the
// message id keeps the takeover from queueing the tick twice.
func (r *scheduleRunner) fireOnce(tick time.Time) error {
	ctx, cancel := r.ctx()
	defer cancel()
	id := schedule.TickID(r.key, tick)
	if len(id) > 128 {
		// Too long for an invocation id: a digest names the tick as well.
		sum := sha256.Sum256([]byte(id))
		id = "tick." + hex.EncodeToString(sum[:20])
	}
	claim, _ := json.Marshal(tickState{State: "claimed", At: time.Now().UTC()})
	if _, err := r.s.ticks.Create(ctx, id, claim); err != nil {
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("claim tick: %w", err)
		}
		e, err := r.s.ticks.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("read tick: %w", err)
		}
		var ts tickState
		_ = json.Unmarshal(e.Value(), &ts)
		if ts.State == "fired" || time.Since(ts.At) < staleClaim {
			r.markFired(ctx, tick)
			return nil
		}
		// Take over the stale claim.
		claim, _ = json.Marshal(tickState{State: "claimed", At: time.Now().UTC()})
		if _, err := r.s.ticks.Update(ctx, id, claim, e.Revision()); err != nil {
			return nil // someone else took it over
		}
	}
	payload, err := r.event(tick, id)
	if err != nil {
		return err
	}
	invID, err := r.s.queue.EnqueueWith(ctx, &invoke.Request{Function: r.fn, Payload: payload, Source: "schedule", ID: id},
		async.EnqueueOptions{DedupeID: id, ContentType: "application/cloudevents+json"})
	if err != nil {
		return fmt.Errorf("queue tick: %w", err)
	}
	fired, _ := json.Marshal(tickState{State: "fired", At: time.Now().UTC(), ID: invID})
	if _, err := r.s.ticks.Put(ctx, id, fired); err != nil {
		return fmt.Errorf("mark tick fired: %w", err)
	}
	r.s.m.ticks.WithLabelValues(r.fn, "fired").Inc()
	r.markFired(ctx, tick)
	return nil
}

// event is the CloudEvent a schedule's function receives.
func (r *scheduleRunner) event(tick time.Time, id string) ([]byte, error) {
	data, err := schedule.Invocation{Name: r.key, Fire: tick, Attempt: 1}.Render(plainJSON(r.t.Input))
	if err != nil {
		return nil, err
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("schedule input does not render to JSON: %s", truncate(string(data), 200))
	}
	e, err := cloudevent.New("/nimbus/schedules/"+r.fn+"/"+r.t.Name, ScheduleType, r.t.Name, data, "application/json")
	if err != nil {
		return nil, err
	}
	e.SetID(id)
	e.SetTime(tick.UTC())
	return cloudevent.ToJSON(e)
}

// markFired moves the schedule's last fire time forward (never back).
func (r *scheduleRunner) markFired(ctx context.Context, tick time.Time) {
	r.mu.Lock()
	if tick.After(r.lastFired) {
		r.lastFired = tick
	}
	r.mu.Unlock()
	r.updateState(ctx, func(st *scheduleState) bool {
		if !tick.After(st.LastFired) {
			return false
		}
		st.LastFired = tick.UTC()
		return true
	})
}

func (r *scheduleRunner) recordMissed(count int, missed []time.Time) {
	ctx, cancel := r.ctx()
	defer cancel()
	r.mu.Lock()
	r.missed += count
	r.mu.Unlock()
	r.updateState(ctx, func(st *scheduleState) bool {
		st.Missed += count
		st.LastMiss = missed
		if len(missed) > 0 && missed[len(missed)-1].After(st.LastFired) {
			st.LastFired = missed[len(missed)-1]
		}
		return true
	})
}

// updateState applies change with compare-and-set, so nodes firing the
// same schedule never move its state backwards.
func (r *scheduleRunner) updateState(ctx context.Context, change func(*scheduleState) bool) {
	key := escapeKey(r.key)
	for range 5 {
		e, err := r.s.state.Get(ctx, key)
		if err != nil {
			return
		}
		var st scheduleState
		_ = json.Unmarshal(e.Value(), &st)
		if !change(&st) {
			return
		}
		b, _ := json.Marshal(st)
		if _, err := r.s.state.Update(ctx, key, b, e.Revision()); err == nil {
			return
		}
	}
}

// escapeKey makes "fn/name" a valid KV key ([-/_=.a-zA-Z0-9]).
// The escaping is TickID's (every byte but letters, digits and '-' as _XX),
// so the key is injective in s.
func escapeKey(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02X", c)
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// plainJSON re-encodes b without HTML escaping: encoding/json stores "<" as
// "\u003c", which would hide the <aws.scheduler.*> placeholders.
func plainJSON(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // keep numbers exactly as written
	if err := dec.Decode(&v); err != nil {
		return b
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return b
	}
	return bytes.TrimSpace(buf.Bytes())
}
