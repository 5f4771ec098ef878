package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

// sigKind says what a signal asks of an execution.
type sigKind uint8

const (
	sigResume    sigKind = iota // (re)dispatch what is pending: after a restore
	sigComplete                 // a task finished (or its token was answered)
	sigFire                     // an interpreter timer is due
	sigAbort                    // StopExecution
	sigHeartbeat                // SendTaskHeartbeat
	sigDeadline                 // a token task's timeout or heartbeat may have passed
	sigInvoked                  // the function of a token task was invoked
)

// signal is one input to an execution. Signals are applied by the
// execution's driver in batches; reply (when set) is closed once the change
// is durable, with err telling the sender how it went.
type signal struct {
	kind    sigKind
	action  string
	result  asl.Result
	errName string
	cause   string

	err   error
	reply chan struct{}
}

var (
	errStale         = errors.New("stale signal")
	errExists        = errors.New("execution exists")
	errLostOwnership = errors.New("another node owns the execution now")
	errGone          = errors.New("the execution is no longer driven here")
)

// run is a Standard execution driven by this node. Signals queue in inbox;
// at most one driver goroutine at a time applies them, persists one step and
// dispatches the new actions, so the fields below "driver" need no lock.
// No goroutine exists while the execution only waits.
type run struct {
	s    *Service
	key  string
	m    *asl.Machine
	done chan struct{} // closed when the execution has ended and is stored

	mu      sync.Mutex
	inbox   []*signal
	driving bool
	gone    bool

	// driver
	meta      execMeta
	ex        *asl.Execution
	rev       uint64 // revision of the state key; 0 before the first write
	step      uint64
	unsaved   []asl.Event
	active    map[string]bool // pending action ids already dispatched
	deadlines map[string]*deadline
	object    string
}

func (s *Service) newRun(key string, m *asl.Machine, meta execMeta, ex *asl.Execution) *run {
	return &run{s: s, key: key, m: m, meta: meta, ex: ex, done: make(chan struct{}),
		active: map[string]bool{}, deadlines: map[string]*deadline{}}
}

// deliver queues sg and makes sure a driver runs. It reports false when the
// run is no longer driven here.
func (r *run) deliver(sg *signal) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gone {
		return false
	}
	r.inbox = append(r.inbox, sg)
	if !r.driving {
		if !r.s.goFunc(r.drive) {
			r.inbox = r.inbox[:len(r.inbox)-1]
			return false
		}
		r.driving = true
	}
	return true
}

func (r *run) drive() {
	for {
		r.mu.Lock()
		batch := r.inbox
		r.inbox = nil
		if len(batch) == 0 || r.gone {
			r.driving = false
			r.mu.Unlock()
			answer(batch, errGone)
			return
		}
		r.mu.Unlock()
		r.process(batch)
	}
}

func answer(batch []*signal, err error) {
	for _, sg := range batch {
		if err != nil && sg.err == nil {
			sg.err = err
		}
		if sg.reply != nil {
			close(sg.reply)
		}
	}
}

// process applies a batch of signals, persists the step, then acts on it.
func (r *run) process(batch []*signal) {
	now := time.Now().UTC()
	changed, resume := false, false
	for _, sg := range batch {
		if sg.kind == sigResume {
			resume = true
			continue
		}
		sg.err = r.apply(sg, now)
		if sg.err == nil {
			changed = true
		}
	}
	if !changed && !resume {
		answer(batch, nil)
		return
	}
	fresh, stale := r.plan(now)
	var indexed map[string]bool
	if changed {
		indexed = r.indexTokens(fresh)
		if err := r.persistRetry(); err != nil {
			r.s.drop(r, err)
			answer(batch, errGone)
			return
		}
	}
	answer(batch, nil)
	r.launch(fresh, stale, indexed)
	if r.ex.Done() {
		r.s.finished(r)
	}
}

func (r *run) apply(sg *signal, now time.Time) error {
	switch sg.kind {
	case sigComplete:
		return r.ex.Complete(sg.action, sg.result, now)
	case sigFire:
		return r.ex.Fire(sg.action, now)
	case sigAbort:
		return r.ex.Abort(sg.errName, sg.cause, now)
	case sigHeartbeat:
		d := r.deadlines[sg.action]
		if d == nil || !r.active[sg.action] {
			return asl.ErrUnknownAction
		}
		if d.HeartbeatSeconds > 0 {
			d.Heartbeat = now.Add(time.Duration(d.HeartbeatSeconds) * time.Second)
			r.s.timers.add(timerEntry{at: d.Heartbeat, key: r.key, action: sg.action, kind: sigDeadline})
		}
		return nil
	case sigInvoked:
		if d := r.deadlines[sg.action]; d != nil && !d.Invoked {
			d.Invoked = true
			return nil
		}
		return errStale
	case sigDeadline:
		d := r.deadlines[sg.action]
		if d == nil {
			return errStale
		}
		switch {
		case !d.Timeout.IsZero() && !now.Before(d.Timeout):
			return r.ex.Complete(sg.action, asl.Result{Error: &asl.Error{Error: asl.ErrTimeout}}, now)
		case !d.Heartbeat.IsZero() && !now.Before(d.Heartbeat):
			return r.ex.Complete(sg.action, asl.Result{Error: &asl.Error{Error: asl.ErrHeartbeatTimeout}}, now)
		}
		return errStale
	}
	return errStale
}

// plan compares the interpreter's pending actions with those already
// dispatched: it returns the new ones (recording deadlines for token tasks,
// so they are persisted with the step) and the tokens of finished ones.
func (r *run) plan(now time.Time) (fresh []asl.Action, staleTokens []string) {
	pending := r.ex.Pending()
	keep := make(map[string]bool, len(pending))
	for _, a := range pending {
		keep[a.ID] = true
		if r.active[a.ID] {
			continue
		}
		r.active[a.ID] = true
		if a.Kind == asl.ActionTask && a.TaskToken != "" && r.deadlines[a.ID] == nil {
			d := &deadline{Token: a.TaskToken, HeartbeatSeconds: a.HeartbeatSeconds, TimeoutSeconds: a.TimeoutSeconds}
			if a.TimeoutSeconds > 0 {
				d.Timeout = now.Add(time.Duration(a.TimeoutSeconds) * time.Second)
			}
			if a.HeartbeatSeconds > 0 {
				d.Heartbeat = now.Add(time.Duration(a.HeartbeatSeconds) * time.Second)
			}
			r.deadlines[a.ID] = d
		}
		fresh = append(fresh, a)
	}
	for id := range r.active {
		if !keep[id] {
			delete(r.active, id)
			if d := r.deadlines[id]; d != nil {
				staleTokens = append(staleTokens, d.Token)
				delete(r.deadlines, id)
			}
		}
	}
	return fresh, staleTokens
}

// persistRetry persists the step, retrying transient failures (a NATS
// hiccup) for a while. Losing ownership is not retried.
func (r *run) persistRetry() error {
	backoff := 50 * time.Millisecond
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(r.s.ctx, 10*time.Second)
		err := r.persist(ctx)
		cancel()
		if err == nil || errors.Is(err, errLostOwnership) || errors.Is(err, errExists) || r.s.ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		r.s.log.Warn("workflow: persisting a step failed, retrying", "execution", r.meta.ARN, "err", err)
		select {
		case <-r.s.ctx.Done():
			return r.s.ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
}

// persist writes one step: its history events first, then the state that
// counts them as committed (or, when the execution has ended, its final
// summary). A crash between the two leaves history that a replay of the
// step overwrites (readHistory keeps the last writing of each step).
func (r *run) persist(ctx context.Context) error {
	s := r.s
	r.unsaved = append(r.unsaved, r.ex.Events()...)
	step := r.step + 1
	if err := s.publishHistory(ctx, r.key, r.meta.Gen, step, r.unsaved); err != nil {
		return err
	}
	if r.ex.Done() {
		m := r.meta
		m.Status = string(r.ex.Status())
		m.Stop = r.ex.Now().UTC()
		if m.Status == StatusSucceeded {
			out := string(r.ex.Output())
			m.Output = &out
		}
		if e := r.ex.Error(); e != nil {
			m.Error, m.Cause = e.Error, e.Cause
		}
		m.Steps = step
		b, _ := json.Marshal(&m)
		if r.rev == 0 {
			if _, err := s.execKV.Create(ctx, r.key, b); err != nil {
				if errors.Is(err, jetstream.ErrKeyExists) {
					return errExists
				}
				return fmt.Errorf("workflow: store execution: %w", err)
			}
		} else {
			if _, err := s.execKV.Put(ctx, r.key, b); err != nil {
				return fmt.Errorf("workflow: store execution: %w", err)
			}
			if err := s.stateKV.Delete(ctx, r.key, jetstream.LastRevision(r.rev)); err != nil {
				s.log.Warn("workflow: state of a finished execution not removed", "execution", m.ARN, "err", err)
			}
			if r.object != "" {
				s.snapshots.Delete(ctx, r.object) //nolint:errcheck // an orphan is harmless
				r.object = ""
			}
		}
		r.meta, r.step, r.unsaved = m, step, nil
		return nil
	}
	snap, err := json.Marshal(r.ex)
	if err != nil {
		return fmt.Errorf("workflow: snapshot: %w", err)
	}
	enc, data, obj := snapS2, s2.Encode(nil, snap), ""
	if len(data) > s.maxPayload-(64<<10) {
		obj = fmt.Sprintf("%s/%d", r.key, step)
		if _, err := s.snapshots.PutBytes(ctx, obj, data); err != nil {
			return fmt.Errorf("workflow: snapshot: %w", err)
		}
		enc, data = snapObject, nil
	}
	sv := &stateValue{Meta: r.meta, Owner: s.nodeID, Step: step, Deadlines: r.deadlines, Object: obj}
	val := encodeState(sv, enc, data)
	if r.rev == 0 {
		rev, err := s.stateKV.Create(ctx, r.key, val)
		if err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				return errExists
			}
			return fmt.Errorf("workflow: store execution state: %w", err)
		}
		mb, _ := json.Marshal(&r.meta)
		if _, err := s.execKV.Create(ctx, r.key, mb); err != nil {
			s.stateKV.Delete(ctx, r.key, jetstream.LastRevision(rev)) //nolint:errcheck // best effort undo
			if errors.Is(err, jetstream.ErrKeyExists) {
				return errExists
			}
			return fmt.Errorf("workflow: store execution: %w", err)
		}
		r.rev = rev
	} else {
		rev, err := s.stateKV.Update(ctx, r.key, val, r.rev)
		if err != nil {
			var apiErr *jetstream.APIError
			if errors.As(err, &apiErr) || errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyExists) {
				return fmt.Errorf("%w: %v", errLostOwnership, err)
			}
			return fmt.Errorf("workflow: store execution state: %w", err)
		}
		r.rev = rev
	}
	if r.object != "" && r.object != obj {
		s.snapshots.Delete(ctx, r.object) //nolint:errcheck // an orphan is harmless
	}
	r.object, r.step, r.unsaved = obj, step, nil
	return nil
}

// launch acts on a persisted step: timers go to the heap, tasks to
// goroutines bounded by the task semaphore. indexed holds the actions whose
// task token indexTokens stored.
func (r *run) launch(fresh []asl.Action, staleTokens []string, indexed map[string]bool) {
	s := r.s
	if len(staleTokens) > 0 {
		s.goFunc(func() {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			defer cancel()
			for _, t := range staleTokens {
				if tk := tokenKey(t); tk != "" {
					s.tokensKV.Delete(ctx, tk) //nolint:errcheck // a stale token only answers TaskDoesNotExist later
				}
			}
		})
	}
	for _, a := range fresh {
		switch a.Kind {
		case asl.ActionTimer:
			s.timers.add(timerEntry{at: a.Until, key: r.key, action: a.ID, kind: sigFire})
		case asl.ActionTask:
			if d := r.deadlines[a.ID]; d != nil {
				if !d.Timeout.IsZero() {
					s.timers.add(timerEntry{at: d.Timeout, key: r.key, action: a.ID, kind: sigDeadline})
				}
				if !d.Heartbeat.IsZero() {
					s.timers.add(timerEntry{at: d.Heartbeat, key: r.key, action: a.ID, kind: sigDeadline})
				}
				invoked, idx := d.Invoked, indexed[a.ID]
				s.goFunc(func() { r.startTokenTask(a, invoked, idx) })
				continue
			}
			s.goFunc(func() {
				res, ok := s.perform(r.key, a)
				if ok {
					r.deliver(&signal{kind: sigComplete, action: a.ID, result: res})
				}
			})
		}
	}
}

// indexTokens indexes the task tokens of a step about to be persisted, and
// returns the ids of the actions it indexed. A token is in the history from
// the moment its step is stored, and a worker may read it there and answer
// at once, so its index must exist first. A token it could not index (or
// one of a step resumed rather than stored) is indexed by startTokenTask.
func (r *run) indexTokens(fresh []asl.Action) map[string]bool {
	var indexed map[string]bool
	for _, a := range fresh {
		if a.Kind != asl.ActionTask || a.TaskToken == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(r.s.ctx, 10*time.Second)
		if r.s.putToken(ctx, a.TaskToken, r.key, a.ID) == nil {
			if indexed == nil {
				indexed = map[string]bool{}
			}
			indexed[a.ID] = true
		}
		cancel()
	}
	return indexed
}

// startTokenTask indexes the task token unless indexTokens did, then
// starts the work that will answer it (the function, for
// lambda:invoke.waitForTaskToken). The answer comes through
// SendTaskSuccess/Failure.
func (r *run) startTokenTask(a asl.Action, invoked, indexed bool) {
	s := r.s
	var err error
	if !indexed {
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		err = s.putToken(ctx, a.TaskToken, r.key, a.ID)
		cancel()
	}
	if err != nil {
		if s.ctx.Err() == nil {
			r.deliver(&signal{kind: sigComplete, action: a.ID, result: asl.Result{Error: &asl.Error{Error: asl.ErrTaskFailed, Cause: err.Error()}}})
		}
		return
	}
	if invoked || (a.Function == nil && !isEventsPublish(a.Resource)) {
		// Nothing to start: an outside worker reads the token (from the
		// history or the task input) and answers it.
		return
	}
	res, ok := s.perform(r.key, a)
	if !ok {
		return
	}
	if res.Error != nil {
		r.deliver(&signal{kind: sigComplete, action: a.ID, result: res})
		return
	}
	r.deliver(&signal{kind: sigInvoked, action: a.ID})
}

// ---- the service's view of runs ----

func (s *Service) lookupRun(key string) *run {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.runs[key]
}

// drop forgets a run whose state could not be persisted; its last durable
// step stays in the bucket and is resumed by the maintenance loop (or by
// whichever node owns it now).
func (s *Service) drop(r *run, err error) {
	if s.ctx.Err() == nil && !errors.Is(err, errExists) {
		s.log.Warn("workflow: execution dropped from this node", "execution", r.meta.ARN, "err", err)
	}
	r.mu.Lock()
	r.gone = true
	r.mu.Unlock()
	s.mu.Lock()
	if s.runs[r.key] == r {
		delete(s.runs, r.key)
	}
	s.mu.Unlock()
}

func (s *Service) finished(r *run) {
	r.mu.Lock()
	r.gone = true
	r.mu.Unlock()
	s.mu.Lock()
	if s.runs[r.key] == r {
		delete(s.runs, r.key)
	}
	s.mu.Unlock()
	close(r.done)
}

func (s *Service) fireTimer(e timerEntry) {
	if r := s.lookupRun(e.key); r != nil {
		r.deliver(&signal{kind: e.kind, action: e.action})
	}
}

// ---- starting ----

// Execution is an execution as the API shows it.
type Execution struct {
	ARN             string
	StateMachineARN string
	Name            string
	Status          string
	Start, Stop     time.Time
	Input           string
	Output          *string
	Error, Cause    string
	Express         bool
}

func (m *execMeta) toExecution() *Execution {
	return &Execution{ARN: m.ARN, StateMachineARN: m.StateMachineARN, Name: m.Name, Status: m.Status,
		Start: m.Start, Stop: m.Stop, Input: m.Input, Output: m.Output, Error: m.Error, Cause: m.Cause}
}

// StartExecution starts an execution of the state machine arn. An empty
// name gets a UUID, an empty input is {}. Starting a running Standard
// execution again with the same name and input returns it (idempotent);
// any other reuse of a name is ExecutionAlreadyExists.
func (s *Service) StartExecution(ctx context.Context, arn, name, input string) (*Execution, error) {
	sm, m, name, input, err := s.prepareStart(arn, name, input)
	if err != nil {
		return nil, err
	}
	if sm.Type == TypeExpress {
		return s.startExpress(sm, m, name, input)
	}
	execARN := ExecutionARN(sm.Name, name)
	key := execKey(sm.Name, name)
	now := time.Now().UTC()
	ex, err := m.Start(json.RawMessage(input), asl.ExecContext{
		ExecutionID: execARN, Name: name, StartTime: now, StateMachineID: sm.ARN,
		StateMachineName: sm.Name, RoleArn: sm.RoleArn, Seed: mrand.Uint64() | 1,
	})
	if err != nil {
		return nil, apiErr(errInvalidExecutionInput, "Invalid execution input: %v", err)
	}
	meta := execMeta{ARN: execARN, StateMachineARN: sm.ARN, Machine: sm.Name, Name: name, DefHash: sm.DefHash,
		Status: StatusRunning, Start: now, Input: input, Gen: randomID()}
	r := s.newRun(key, m, meta, ex)
	s.mu.Lock()
	if s.runs[key] != nil {
		s.mu.Unlock()
		return s.alreadyExists(ctx, key, execARN, input)
	}
	s.runs[key] = r
	r.driving = true // the first step runs in this goroutine
	s.mu.Unlock()

	fresh, stale := r.plan(now)
	indexed := r.indexTokens(fresh)
	if err := r.persistRetry(); err != nil {
		s.drop(r, err)
		if errors.Is(err, errExists) {
			return s.alreadyExists(ctx, key, execARN, input)
		}
		return nil, fmt.Errorf("workflow: start %s: %w", execARN, err)
	}
	r.launch(fresh, stale, indexed)
	if r.ex.Done() {
		s.finished(r)
	}
	// Hand over to a driver if signals arrived meanwhile.
	r.mu.Lock()
	r.driving = false
	var orphans []*signal
	if len(r.inbox) > 0 {
		if !r.gone && s.goFunc(r.drive) {
			r.driving = true
		} else {
			orphans, r.inbox = r.inbox, nil
		}
	}
	r.mu.Unlock()
	answer(orphans, errGone)
	return &Execution{ARN: execARN, StateMachineARN: sm.ARN, Name: name, Status: StatusRunning, Start: now, Input: input}, nil
}

func (s *Service) prepareStart(arn, name, input string) (*StateMachine, *asl.Machine, string, string, error) {
	smName, err := machineName(arn)
	if err != nil {
		return nil, nil, "", "", err
	}
	sm, err := s.machines.get(smName)
	if err != nil {
		return nil, nil, "", "", err
	}
	if name == "" {
		name = newUUID()
	} else if !validName(name) {
		return nil, nil, "", "", apiErr(errInvalidName, "Invalid Name: '%s'", name)
	}
	if input == "" {
		input = "{}"
	}
	if !json.Valid([]byte(input)) {
		return nil, nil, "", "", apiErr(errInvalidExecutionInput, "Invalid State Machine Execution Input: 'Unexpected input'")
	}
	if len(input) > asl.MaxPayloadBytes {
		return nil, nil, "", "", apiErr(errInvalidExecutionInput, "The input is %d bytes, more than the limit of %d", len(input), asl.MaxPayloadBytes)
	}
	m, _, err := s.machines.parse(sm.Definition)
	if err != nil {
		return nil, nil, "", "", err
	}
	return sm, m, name, input, nil
}

func (s *Service) alreadyExists(ctx context.Context, key, arn, input string) (*Execution, error) {
	meta, _, err := s.getMeta(ctx, key)
	if err == nil && meta.Status == StatusRunning && meta.Input == input {
		return meta.toExecution(), nil
	}
	return nil, apiErr(errExecutionAlreadyExists, "Execution Already Exists: '%s'", arn)
}

// Wait blocks until the Standard execution arn has ended (or ctx ends) and
// returns it. It is for tests and the CLI's --wait; it polls the store,
// so it works for executions driven by any node.
func (s *Service) Wait(ctx context.Context, arn string) (*Execution, error) {
	ref, err := parseExecutionARN(arn)
	if err != nil {
		return nil, err
	}
	delay := 5 * time.Millisecond
	for {
		if r := s.lookupRun(ref.key()); r != nil {
			select {
			case <-r.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Second):
			}
		}
		e, err := s.DescribeExecution(ctx, arn)
		if err != nil {
			return nil, err
		}
		if e.Status != StatusRunning {
			return e, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}
