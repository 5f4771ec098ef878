package asl

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Status is the state of an execution.
type Status string

const (
	StatusRunning   Status = "RUNNING"
	StatusSucceeded Status = "SUCCEEDED"
	StatusFailed    Status = "FAILED"
	StatusTimedOut  Status = "TIMED_OUT"
	StatusAborted   Status = "ABORTED"
)

// ExecContext describes the execution for the context object ($$ and
// $states.context) and seeds its randomness.
type ExecContext struct {
	ExecutionID      string    // execution ARN
	Name             string    // execution name
	StartTime        time.Time // also the execution's initial "now"
	StateMachineID   string    // state machine ARN
	StateMachineName string
	RoleArn          string
	RedriveCount     int
	// Seed seeds States.UUID, States.MathRandom, $random, $uuid, task tokens
	// and retry jitter. Zero derives a seed from ExecutionID and Name, so
	// replaying an execution reproduces its random values.
	Seed uint64
	// NoHistory turns off history events (event ids are still counted, as
	// causes cite them). Express workflows and benchmarks use it.
	NoHistory bool
}

// ActionKind says what an Action asks the executor to do.
type ActionKind string

const (
	// ActionTask: perform a Task state's work, then call Complete.
	ActionTask ActionKind = "task"
	// ActionTimer: call Fire at or after Until.
	ActionTimer ActionKind = "timer"
)

// Action is work the interpreter waits for. Actions are identified by ID,
// stable across Snapshot/Restore; Pending lists those outstanding.
type Action struct {
	ID    string     `json:"id"`
	Kind  ActionKind `json:"kind"`
	State string     `json:"state"` // name of the state that asked for it

	// Task actions.
	Resource string `json:"resource,omitempty"`
	// Input is the task's effective input (Parameters / Arguments).
	Input json.RawMessage `json:"input,omitempty"`
	// Function is set when the resource calls a Lambda-style function: the
	// executor invokes it and passes the function's response payload (or its
	// error, see FunctionError) to Complete; the interpreter shapes the
	// state's result.
	Function         *FunctionCall `json:"function,omitempty"`
	TimeoutSeconds   int64         `json:"timeoutSeconds,omitempty"`
	HeartbeatSeconds int64         `json:"heartbeatSeconds,omitempty"`
	// TaskToken is set for ".waitForTaskToken" resources: the executor starts
	// the work, then completes the action when SendTaskSuccess/Failure
	// arrives with this token.
	TaskToken string `json:"taskToken,omitempty"`

	// Timer actions.
	Until  time.Time `json:"until,omitzero"`
	Reason string    `json:"reason,omitempty"` // "wait", "retry" or "timeout"
}

// FunctionCall is an invocation of a function by name.
type FunctionCall struct {
	Name      string          `json:"name"`                // function name, as the last ARN part
	Qualifier string          `json:"qualifier,omitempty"` // version or alias
	ARN       string          `json:"arn,omitempty"`       // the reference as written
	Payload   json.RawMessage `json:"payload"`
	// Integration is true for arn:aws:states:::lambda:invoke, whose result
	// is the Invoke response envelope rather than the payload itself.
	Integration bool `json:"integration,omitempty"`
	// Async is true for InvocationType "Event".
	Async bool `json:"async,omitempty"`
}

// Result is what the executor reports for a finished task action.
type Result struct {
	Output json.RawMessage // the task result, or the function's response payload
	Error  *Error          // the task failed (function errors: see FunctionError)
	// ExecutedVersion is the function version that ran ("" means $LATEST).
	ExecutedVersion string
}

// ErrUnknownAction is returned by Complete and Fire for an action that is
// not outstanding (already completed, or abandoned because its branch ended).
var ErrUnknownAction = errors.New("asl: unknown or finished action")

// ErrNotRunning is returned when the execution has already ended.
var ErrNotRunning = errors.New("asl: execution is not running")

type phase uint8

const (
	phaseEnter   phase = iota // emit the StateEntered event, then execute
	phaseExecute              // execute the state's work (again, after a retry)
	phaseTask                 // waiting for a task action
	phaseRetry                // waiting for a retry backoff timer
	phaseWait                 // waiting for a Wait state timer
	phaseFanout               // waiting for Parallel branches / Map iterations
	phaseDone
)

// thread runs one graph: the machine, a Parallel branch or a Map iteration.
type thread struct {
	Graph      string         `json:"graph"`
	State      string         `json:"state"`
	Input      any            `json:"input"`
	Phase      phase          `json:"phase"`
	Entered    int64          `json:"entered,omitempty"`
	EnteredAt  time.Time      `json:"enteredAt"`
	LastEvent  int64          `json:"lastEvent,omitempty"`
	Action     *Action        `json:"action,omitempty"`
	Attempts   []int          `json:"attempts,omitempty"`
	RetryCount int            `json:"retryCount,omitempty"`
	Vars       map[string]any `json:"vars,omitempty"`
	Index      int            `json:"index"`
	Fanout     *fanout        `json:"fanout,omitempty"`
	Children   []*thread      `json:"children,omitempty"`
	Output     any            `json:"output,omitempty"`
	Err        *Error         `json:"err,omitempty"`
	Token      string         `json:"token,omitempty"`

	parent *thread
	// inText caches the encoding of Input when it was just encoded as the
	// previous state's output, so history events encode it once.
	inText string
	graph  *graph
}

// fanout tracks a Parallel or Map state's children.
type fanout struct {
	Items      []any   `json:"items,omitempty"`   // Map: iteration inputs not yet started
	Results    []any   `json:"results"`           // result per branch / iteration
	Total      int     `json:"total"`             // branches or iterations
	NextItem   int     `json:"nextItem"`          // next iteration index to start
	Finished   int     `json:"finished"`          // children that ended
	Failed     int     `json:"failed"`            // failed iterations
	MaxConc    int     `json:"maxConc,omitempty"` // 0: unlimited
	TolCount   int64   `json:"tolCount"`          // -1: not set
	TolPercent float64 `json:"tolPercent"`        // -1: not set
	FirstErr   *Error  `json:"firstErr,omitempty"`
}

// Execution is one run of a Machine. It is a pure state machine: it performs
// no I/O, starts no goroutines and reads no clock; it changes only when the
// executor calls Complete, Fire or Abort. It is not safe for concurrent use.
// json.Marshal of an Execution is a complete snapshot, restored with
// Machine.Restore.
type Execution struct {
	m          *Machine
	ctx        ExecContext
	input      any
	root       *thread
	status     Status
	output     any
	err        *Error
	now        time.Time
	eventID    int64
	events     []Event
	nextAction int64
	randN      uint64
	timeout    *Action
	index      map[string]*thread
}

// Start begins an execution of m with the given input (any JSON value). The
// execution runs every state it can without outside work before returning.
func (m *Machine) Start(input json.RawMessage, ctx ExecContext) (*Execution, error) {
	var in any = map[string]any{}
	if len(strings.TrimSpace(string(input))) > 0 {
		v, err := decodeJSON(input)
		if err != nil {
			return nil, fmt.Errorf("asl: execution input is not valid JSON: %w", err)
		}
		in = v
	}
	if ctx.StartTime.IsZero() {
		return nil, errors.New("asl: ExecContext.StartTime is required")
	}
	if ctx.Seed == 0 {
		h := fnv.New64a()
		h.Write([]byte(ctx.ExecutionID))
		h.Write([]byte{0})
		h.Write([]byte(ctx.Name))
		ctx.Seed = h.Sum64() | 1
	}
	ex := &Execution{m: m, ctx: ctx, input: in, status: StatusRunning, now: ctx.StartTime, index: map[string]*thread{}}
	ex.root = &thread{Graph: "", State: m.root.startAt, Input: in, Phase: phaseEnter, graph: m.root, Vars: map[string]any{}}
	id := ex.emit(ex.root, Event{Type: "ExecutionStarted"}, func(e *Event) {
		e.ExecutionStartedEventDetails = &ExecutionStartedEventDetails{Input: encodeString(in), RoleArn: ctx.RoleArn}
	})
	ex.root.LastEvent = id
	if jsonSize(in) > MaxPayloadBytes {
		ex.finish(nil, &Error{Error: ErrDataLimitExceeded, Cause: "The execution input exceeds the maximum number of bytes service limit."})
		return ex, nil
	}
	if m.timeoutSeconds > 0 {
		ex.timeout = &Action{ID: ex.newActionID(), Kind: ActionTimer, Until: ctx.StartTime.Add(time.Duration(m.timeoutSeconds) * time.Second), Reason: "timeout"}
	}
	ex.drive(ex.root)
	return ex, nil
}

// Done reports whether the execution has ended.
func (ex *Execution) Done() bool { return ex.status != StatusRunning }

// Status returns the execution's status.
func (ex *Execution) Status() Status { return ex.status }

// Output returns the output of a succeeded execution.
func (ex *Execution) Output() json.RawMessage {
	if ex.status != StatusSucceeded {
		return nil
	}
	return encodeJSON(ex.output)
}

// Error returns the error a failed, timed-out or aborted execution ended with.
func (ex *Execution) Error() *Error { return ex.err }

// Context returns the execution's context.
func (ex *Execution) Context() ExecContext { return ex.ctx }

// Now is the time of the last call that changed the execution.
func (ex *Execution) Now() time.Time { return ex.now }

// Pending lists the outstanding actions in a deterministic order: the
// execution timeout timer (if any) first, then depth first through Parallel
// branches and Map iterations.
func (ex *Execution) Pending() []Action {
	if ex.Done() {
		return nil
	}
	var out []Action
	if ex.timeout != nil {
		out = append(out, *ex.timeout)
	}
	var walk func(t *thread)
	walk = func(t *thread) {
		if t.Action != nil {
			out = append(out, *t.Action)
		}
		for _, c := range t.Children {
			walk(c)
		}
	}
	walk(ex.root)
	return out
}

// Events returns the history events produced since the previous call.
func (ex *Execution) Events() []Event {
	ev := ex.events
	ex.events = nil
	return ev
}

// Complete delivers the outcome of a task action at time now, then runs the
// execution as far as it can go.
func (ex *Execution) Complete(actionID string, r Result, now time.Time) error {
	if ex.Done() {
		return ErrNotRunning
	}
	t := ex.findAction(actionID)
	if t == nil || t.Phase != phaseTask {
		return ErrUnknownAction
	}
	ex.advanceClock(now)
	a := t.Action
	t.Action = nil
	ex.completeTask(t, a, r)
	ex.drive(ex.root)
	return nil
}

// Fire signals that a timer action is due, then runs the execution as far as
// it can go. Firing before Until is allowed (the executor decides).
func (ex *Execution) Fire(actionID string, now time.Time) error {
	if ex.Done() {
		return ErrNotRunning
	}
	ex.advanceClock(now)
	if ex.timeout != nil && ex.timeout.ID == actionID {
		ex.timeout = nil
		ex.status = StatusTimedOut
		ex.err = &Error{Error: ErrTimeout, Cause: "The execution timed out."}
		ex.emit(ex.root, Event{Type: "ExecutionTimedOut"}, func(e *Event) {
			e.ExecutionTimedOutEventDetails = &FailureEventDetails{Error: ex.err.Error, Cause: ex.err.Cause}
		})
		return nil
	}
	t := ex.findAction(actionID)
	if t == nil || t.Action.Kind != ActionTimer {
		return ErrUnknownAction
	}
	t.Action = nil
	st := t.graph.states[t.State]
	switch t.Phase {
	case phaseWait:
		ex.exitState(t, st, t.Output, nil)
	case phaseRetry:
		t.Phase = phaseExecute
		t.Output = nil
	default:
		return ErrUnknownAction
	}
	ex.drive(ex.root)
	return nil
}

// Abort stops a running execution (StopExecution).
func (ex *Execution) Abort(errName, cause string, now time.Time) error {
	if ex.Done() {
		return ErrNotRunning
	}
	ex.advanceClock(now)
	ex.status = StatusAborted
	ex.err = &Error{Error: errName, Cause: cause}
	ex.emit(ex.root, Event{Type: "ExecutionAborted"}, func(e *Event) {
		e.ExecutionAbortedEventDetails = &FailureEventDetails{Error: errName, Cause: cause}
	})
	return nil
}

func (ex *Execution) advanceClock(now time.Time) {
	if now.After(ex.now) {
		ex.now = now
	}
}

func (ex *Execution) findAction(id string) *thread {
	if t, ok := ex.index[id]; ok && t.Action != nil && t.Action.ID == id {
		return t
	}
	return nil
}

func (ex *Execution) newActionID() string {
	ex.nextAction++
	return "a" + strconv.FormatInt(ex.nextAction, 10)
}

func (ex *Execution) setAction(t *thread, a *Action) {
	t.Action = a
	ex.index[a.ID] = t
}

// rand returns the next value of the execution's deterministic random stream
// (splitmix64 over seed and counter).
func (ex *Execution) rand() uint64 {
	ex.randN++
	z := ex.ctx.Seed + ex.randN*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// emit appends an event (or only counts it when history is off) and returns
// its id.
func (ex *Execution) emit(t *thread, e Event, fill func(*Event)) int64 {
	ex.eventID++
	if !ex.ctx.NoHistory {
		e.ID = ex.eventID
		e.PreviousEventID = t.LastEvent
		e.Timestamp = ex.now
		if fill != nil {
			fill(&e)
		}
		ex.events = append(ex.events, e)
	}
	t.LastEvent = ex.eventID
	return ex.eventID
}

// drive runs t (and its children) until every thread waits on an action or
// has ended.
func (ex *Execution) drive(t *thread) {
	for !ex.Done() {
		switch t.Phase {
		case phaseEnter:
			st := t.graph.states[t.State]
			t.EnteredAt = ex.now
			t.Attempts = nil
			t.RetryCount = 0
			t.Entered = ex.emit(t, Event{Type: st.typ + "StateEntered"}, func(e *Event) {
				in := t.inText
				if in == "" {
					in = encodeString(t.Input)
				}
				e.StateEnteredEventDetails = &StateEnteredEventDetails{Name: st.name, Input: in}
			})
			t.inText = ""
			t.Phase = phaseExecute
		case phaseExecute:
			ex.execute(t)
		case phaseFanout:
			for _, c := range t.Children {
				if c.Phase != phaseDone {
					ex.drive(c)
				}
			}
			if !ex.settleFanout(t) {
				return
			}
		default:
			if t.parent == nil && t.Phase == phaseDone {
				ex.finish(t.Output, t.Err)
			}
			return
		}
	}
}

func (ex *Execution) finish(output any, err *Error) {
	if ex.Done() {
		return
	}
	ex.timeout = nil
	if err != nil {
		ex.status = StatusFailed
		ex.err = err
		ex.emit(ex.root, Event{Type: "ExecutionFailed"}, func(e *Event) {
			e.ExecutionFailedEventDetails = &FailureEventDetails{Error: err.Error, Cause: err.Cause}
		})
		return
	}
	ex.status = StatusSucceeded
	ex.output = output
	ex.emit(ex.root, Event{Type: "ExecutionSucceeded"}, func(e *Event) {
		e.ExecutionSucceededEventDetails = &OutputEventDetails{Output: encodeString(output)}
	})
}

// ---- per-state evaluation environment ----

// lookupVar finds a variable in t's scope or an enclosing one.
func (t *thread) lookupVar(name string) (any, bool) {
	for s := t; s != nil; s = s.parent {
		if v, ok := s.Vars[name]; ok {
			return v, true
		}
	}
	return nil, false
}

// mapItem is the $$.Map.Item of an ItemSelector evaluation.
type mapItem struct {
	index int
	value any
}

func (ex *Execution) contextObject(t *thread, st *state, item *mapItem) any {
	c := map[string]any{
		"Execution": map[string]any{
			"Id":           ex.ctx.ExecutionID,
			"Input":        ex.input,
			"Name":         ex.ctx.Name,
			"RoleArn":      ex.ctx.RoleArn,
			"StartTime":    ex.ctx.StartTime.UTC().Format("2006-01-02T15:04:05.000Z"),
			"RedriveCount": intValue(int64(ex.ctx.RedriveCount)),
		},
		"State": map[string]any{
			"EnteredTime": t.EnteredAt.UTC().Format("2006-01-02T15:04:05.000Z"),
			"Name":        st.name,
			"RetryCount":  intValue(int64(t.RetryCount)),
		},
		"StateMachine": map[string]any{
			"Id":   ex.ctx.StateMachineID,
			"Name": ex.ctx.StateMachineName,
		},
	}
	if t.Token != "" {
		c["Task"] = map[string]any{"Token": t.Token}
	}
	if item != nil {
		c["Map"] = map[string]any{"Item": map[string]any{"Index": intValue(int64(item.index)), "Value": item.value}}
	}
	return c
}

// evaluator builds the environment for st's expressions with the given
// JSONPath input ($) and JSONata $states fields.
func (ex *Execution) evaluator(t *thread, st *state, input any, states map[string]any, item *mapItem) *evaluator {
	ev := &evaluator{}
	var ctxObj any
	getCtx := func() any {
		if ctxObj == nil {
			ctxObj = ex.contextObject(t, st, item)
		}
		return ctxObj
	}
	ev.roots = roots{input: input, context: getCtx, vars: t.lookupVar}
	ev.intrEnv = &intrinsicEnv{roots: &ev.roots, rand: ex.rand}
	if st.lang == JSONata {
		if states == nil {
			states = map[string]any{}
		}
		states["context"] = getCtx()
		ev.jenv = &jsonataEnv{states: states, vars: t.lookupVar, rand: ex.rand, now: ex.now}
	}
	return ev
}

// fail turns an evaluation error into the ASL error of state st.
func (ex *Execution) stateError(t *thread, st *state, err error) *Error {
	var sf *stateFailure
	if errors.As(err, &sf) {
		if sf.raw {
			return &Error{Error: sf.name, Cause: sf.msg}
		}
		return &Error{Error: sf.name, Cause: fmt.Sprintf("An error occurred while executing the state '%s' (entered at the event id #%d). %s", st.name, t.Entered, sf.msg)}
	}
	return &Error{Error: ErrRuntime, Cause: fmt.Sprintf("An error occurred while executing the state '%s' (entered at the event id #%d). %v", st.name, t.Entered, err)}
}

// ---- JSONPath data flow ----

func applyOptPath(p *optPath, r *roots, field string) (any, error) {
	if p == nil {
		return r.input, nil
	}
	if p.null {
		return map[string]any{}, nil
	}
	v, err := p.path.eval(r)
	if err != nil {
		return nil, runtimeFail("Invalid path '%s' : %s", p.path.src, err)
	}
	return v, nil
}

func applyResultPath(rp *resultPathSpec, input, result any) (any, error) {
	if rp == nil {
		return result, nil
	}
	if rp.null {
		return input, nil
	}
	out, ok := setPath(input, rp.path.segs, result)
	if !ok {
		return nil, &stateFailure{name: ErrResultPathMatchFailure, msg: fmt.Sprintf(
			"Unable to apply ReferencePath %s to input %s", rp.path.src, encodeString(input))}
	}
	return out, nil
}

// ---- state execution ----

func (ex *Execution) execute(t *thread) {
	st := t.graph.states[t.State]
	var err error
	switch st.typ {
	case typePass:
		err = ex.execPass(t, st)
	case typeTask:
		err = ex.execTask(t, st)
	case typeChoice:
		err = ex.execChoice(t, st)
	case typeWait:
		err = ex.execWait(t, st)
	case typeSucceed:
		err = ex.execSucceed(t, st)
	case typeFail:
		err = ex.execFail(t, st)
	case typeParallel:
		err = ex.execParallel(t, st)
	case typeMap:
		err = ex.execMap(t, st)
	default:
		err = fmt.Errorf("unsupported state type %q", st.typ)
	}
	if err != nil {
		ex.handleError(t, st, ex.stateError(t, st, err))
	}
}

func (ex *Execution) execPass(t *thread, st *state) error {
	if st.lang == JSONata {
		return ex.finishJSONata(t, st, map[string]any{"input": t.Input}, t.Input)
	}
	if st.inputPath == nil && st.parameters == nil {
		result := t.Input
		if st.hasResult {
			result = st.result
		}
		return ex.finishJSONPath(t, st, result)
	}
	ev := ex.evaluator(t, st, t.Input, nil, nil)
	eff, err := applyOptPath(st.inputPath, &ev.roots, "InputPath")
	if err != nil {
		return err
	}
	result := eff
	if st.hasResult {
		result = st.result
	} else if st.parameters != nil {
		ev.roots.input = eff
		if result, err = ev.eval(st.parameters); err != nil {
			return err
		}
	}
	return ex.finishJSONPath(t, st, result)
}

// finishJSONPath applies Assign, ResultPath and OutputPath to a state's
// result and leaves the state.
func (ex *Execution) finishJSONPath(t *thread, st *state, result any) error {
	if st.assign == nil && st.outputPath == nil {
		out, err := applyResultPath(st.resultPath, t.Input, result)
		if err != nil {
			return err
		}
		ex.exitState(t, st, out, nil)
		return nil
	}
	ev := ex.evaluator(t, st, result, nil, nil)
	var assigned map[string]any
	if st.assign != nil {
		v, err := ev.eval(st.assign)
		if err != nil {
			return err
		}
		assigned, _ = v.(map[string]any)
	}
	out, err := applyResultPath(st.resultPath, t.Input, result)
	if err != nil {
		return err
	}
	ev.roots.input = out
	if out, err = applyOptPath(st.outputPath, &ev.roots, "OutputPath"); err != nil {
		return err
	}
	ex.exitState(t, st, out, assigned)
	return nil
}

// finishJSONata evaluates Output (default: def) and Assign with the given
// $states fields, then leaves the state.
func (ex *Execution) finishJSONata(t *thread, st *state, states map[string]any, def any) error {
	return ex.finishJSONataWith(t, st, states, def, st.output, st.assign)
}

func (ex *Execution) finishJSONataWith(t *thread, st *state, states map[string]any, def any, output, assign *template) error {
	ev := ex.evaluator(t, st, nil, states, nil)
	var assigned map[string]any
	if assign != nil {
		v, err := ev.eval(assign)
		if err != nil {
			return err
		}
		assigned, _ = v.(map[string]any)
	}
	out := def
	if output != nil {
		v, err := ev.eval(output)
		if err != nil {
			return err
		}
		out = v
	}
	ex.exitState(t, st, out, assigned)
	return nil
}

// exitState records the state's output and variables and moves on (Next or
// End). The data limit applies to every state output.
func (ex *Execution) exitState(t *thread, st *state, out any, assigned map[string]any) {
	if jsonSize(out) > MaxPayloadBytes {
		ex.handleError(t, st, &Error{Error: ErrDataLimitExceeded, Cause: fmt.Sprintf(
			"The state/task '%s' returned a result with a size exceeding the maximum number of bytes service limit.", st.name)})
		return
	}
	for k, v := range assigned {
		if t.Vars == nil {
			t.Vars = map[string]any{}
		}
		t.Vars[k] = v
	}
	var outText string
	if st.typ != typeFail {
		ex.emit(t, Event{Type: st.typ + "StateExited"}, func(e *Event) {
			outText = encodeString(out)
			d := &StateExitedEventDetails{Name: st.name, Output: outText}
			if len(assigned) > 0 {
				d.AssignedVariables = map[string]string{}
				for k, v := range assigned {
					d.AssignedVariables[k] = encodeString(v)
				}
			}
			e.StateExitedEventDetails = d
		})
	}
	ex.transition(t, st, st.next, out)
	if t.Phase == phaseEnter {
		t.inText = outText
	}
}

func (ex *Execution) transition(t *thread, st *state, next string, out any) {
	t.Action = nil
	t.Children = nil
	t.Fanout = nil
	t.Token = ""
	if next == "" || (st.end && next == st.next) {
		t.Phase = phaseDone
		t.Output = out
		t.Err = nil
		return
	}
	t.State = next
	t.Input = out
	t.Output = nil
	t.Phase = phaseEnter
}

// failThread ends t with err (no catcher applied).
func (ex *Execution) failThread(t *thread, err *Error) {
	t.Action = nil
	t.Children = nil
	t.Fanout = nil
	t.Phase = phaseDone
	t.Output = nil
	t.Err = err
}

// handleError applies st's retriers and catchers to err.
func (ex *Execution) handleError(t *thread, st *state, err *Error) {
	t.Children = nil
	t.Fanout = nil
	if len(st.retry) > 0 {
		if len(t.Attempts) != len(st.retry) {
			t.Attempts = make([]int, len(st.retry))
		}
		for i, r := range st.retry {
			if !errorMatches(r.errorEquals, err.Error) {
				continue
			}
			if t.Attempts[i] >= r.maxAttempts {
				break
			}
			delay := r.interval * math.Pow(r.backoff, float64(t.Attempts[i]))
			if r.maxDelay > 0 && delay > r.maxDelay {
				delay = r.maxDelay
			}
			if r.jitterFull {
				delay = delay * float64(ex.rand()>>11) / (1 << 53)
			}
			t.Attempts[i]++
			t.RetryCount++
			d := time.Duration(delay * float64(time.Second))
			ex.setAction(t, &Action{ID: ex.newActionID(), Kind: ActionTimer, State: st.name, Until: ex.now.Add(d), Reason: "retry"})
			t.Phase = phaseRetry
			return
		}
	}
	for _, c := range st.catch {
		if !errorMatches(c.errorEquals, err.Error) {
			continue
		}
		if e := ex.applyCatch(t, st, c, err); e != nil {
			ex.failThread(t, ex.stateError(t, st, e))
		}
		return
	}
	if st.typ != typeFail {
		switch st.typ {
		case typeParallel, typeMap:
			ex.emit(t, Event{Type: st.typ + "StateFailed"}, nil)
		}
	}
	ex.failThread(t, err)
}

func (ex *Execution) applyCatch(t *thread, st *state, c catcher, err *Error) error {
	errOut := err.output()
	var out any
	var assigned map[string]any
	if st.lang == JSONata {
		states := map[string]any{"input": t.Input, "errorOutput": errOut}
		ev := ex.evaluator(t, st, nil, states, nil)
		if c.assign != nil {
			v, e := ev.eval(c.assign)
			if e != nil {
				return e
			}
			assigned, _ = v.(map[string]any)
		}
		out = errOut
		if c.output != nil {
			v, e := ev.eval(c.output)
			if e != nil {
				return e
			}
			out = v
		}
	} else {
		ev := ex.evaluator(t, st, errOut, nil, nil)
		if c.assign != nil {
			v, e := ev.eval(c.assign)
			if e != nil {
				return e
			}
			assigned, _ = v.(map[string]any)
		}
		v, e := applyResultPath(c.resultPath, t.Input, errOut)
		if e != nil {
			return e
		}
		out = v
	}
	for k, v := range assigned {
		if t.Vars == nil {
			t.Vars = map[string]any{}
		}
		t.Vars[k] = v
	}
	ex.emit(t, Event{Type: st.typ + "StateExited"}, func(e *Event) {
		e.StateExitedEventDetails = &StateExitedEventDetails{Name: st.name, Output: encodeString(out)}
	})
	ex.transition(t, st, c.next, out)
	return nil
}

// ---- Task ----

const lambdaInvokeARN = "arn:aws:states:::lambda:invoke"

func (ex *Execution) execTask(t *thread, st *state) error {
	waitToken := strings.HasSuffix(st.resource, ".waitForTaskToken")
	if waitToken && t.Token == "" {
		t.Token = newUUID(ex.rand)
	}
	var params any
	var ev *evaluator
	if st.lang == JSONata {
		ev = ex.evaluator(t, st, nil, map[string]any{"input": t.Input}, nil)
		params = t.Input
		if st.arguments != nil {
			v, err := ev.eval(st.arguments)
			if err != nil {
				return err
			}
			params = v
		}
	} else {
		ev = ex.evaluator(t, st, t.Input, nil, nil)
		eff, err := applyOptPath(st.inputPath, &ev.roots, "InputPath")
		if err != nil {
			return err
		}
		params = eff
		if st.parameters != nil {
			ev.roots.input = eff
			if params, err = ev.eval(st.parameters); err != nil {
				return err
			}
		}
	}
	if jsonSize(params) > MaxPayloadBytes {
		return &stateFailure{name: ErrDataLimitExceeded, msg: "The state input after Parameters processing exceeds the maximum number of bytes service limit."}
	}
	timeout, err := ex.resolveInt(ev, st.timeoutSeconds)
	if err != nil {
		return err
	}
	heartbeat, err := ex.resolveInt(ev, st.heartbeatSeconds)
	if err != nil {
		return err
	}
	a := &Action{ID: ex.newActionID(), Kind: ActionTask, State: st.name, Resource: st.resource,
		Input: encodeJSON(params), TimeoutSeconds: timeout, HeartbeatSeconds: heartbeat, TaskToken: t.Token}
	fn, err := functionCall(st.resource, params)
	if err != nil {
		return err
	}
	a.Function = fn
	ex.setAction(t, a)
	t.Phase = phaseTask
	if fn != nil && !fn.Integration {
		ex.emit(t, Event{Type: "LambdaFunctionScheduled"}, func(e *Event) {
			e.LambdaFunctionScheduledEventDetails = &LambdaFunctionScheduledEventDetails{Resource: st.resource, Input: string(a.Input), TimeoutInSeconds: timeout}
		})
		ex.emit(t, Event{Type: "LambdaFunctionStarted"}, nil)
		return nil
	}
	rt, res := resourceTypeOf(st.resource)
	ex.emit(t, Event{Type: "TaskScheduled"}, func(e *Event) {
		e.TaskScheduledEventDetails = &TaskScheduledEventDetails{ResourceType: rt, Resource: res, Parameters: string(a.Input), TimeoutInSeconds: timeout, HeartbeatInSeconds: heartbeat}
	})
	ex.emit(t, Event{Type: "TaskStarted"}, func(e *Event) {
		e.TaskStartedEventDetails = &TaskResourceEventDetails{ResourceType: rt, Resource: res}
	})
	return nil
}

// resourceTypeOf splits "arn:aws:states:::lambda:invoke" into ("lambda", "invoke").
func resourceTypeOf(resource string) (string, string) {
	if rest, ok := strings.CutPrefix(resource, "arn:aws:states:::"); ok {
		if i := strings.IndexByte(rest, ':'); i >= 0 {
			return rest[:i], rest[i+1:]
		}
		return rest, ""
	}
	return "", resource
}

// functionCall recognises resources that call a function: a function ARN
// or bare name, and the lambda:invoke integration.
func functionCall(resource string, params any) (*FunctionCall, error) {
	base := strings.TrimSuffix(resource, ".waitForTaskToken")
	if base == lambdaInvokeARN {
		m, ok := params.(map[string]any)
		if !ok {
			return nil, runtimeFail("The parameters of lambda:invoke must be an object")
		}
		name, ok := m["FunctionName"].(string)
		if !ok || name == "" {
			return nil, runtimeFail("The field 'FunctionName' is required by lambda:invoke")
		}
		fc := parseFunctionRef(name)
		fc.Integration = true
		if q, ok := m["Qualifier"].(string); ok && q != "" {
			fc.Qualifier = q
		}
		if it, ok := m["InvocationType"].(string); ok && it == "Event" {
			fc.Async = true
		}
		payload, ok := m["Payload"]
		if !ok || payload == nil {
			payload = map[string]any{}
		}
		fc.Payload = encodeJSON(payload)
		return fc, nil
	}
	// Nimbus's own resources ("nimbus:events:publish") are not functions.
	if strings.HasPrefix(resource, "arn:aws:lambda:") || !strings.HasPrefix(resource, "arn:") && !strings.HasPrefix(resource, "nimbus:") {
		fc := parseFunctionRef(resource)
		fc.Payload = encodeJSON(params)
		return fc, nil
	}
	return nil, nil
}

// parseFunctionRef accepts "name", "name:qualifier",
// "ACCOUNT:function:name[:qualifier]" and full function ARNs.
func parseFunctionRef(ref string) *FunctionCall {
	fc := &FunctionCall{ARN: ref}
	parts := strings.Split(ref, ":")
	for i, p := range parts {
		if p == "function" && i+1 < len(parts) {
			fc.Name = parts[i+1]
			if i+2 < len(parts) {
				fc.Qualifier = parts[i+2]
			}
			return fc
		}
	}
	fc.Name = parts[0]
	if len(parts) > 1 {
		fc.Qualifier = parts[1]
	}
	return fc
}

func (ex *Execution) resolveInt(ev *evaluator, spec valueSpec) (int64, error) {
	if !spec.set {
		return 0, nil
	}
	switch {
	case spec.expr != nil:
		v, err := ev.evalExpr(spec.expr, spec.field)
		if err != nil {
			return 0, err
		}
		n, ok := toInt(v)
		if !ok || n < 0 {
			return 0, queryFail("The JSONata expression '%s' specified for the field '%s' returned an unexpected result type. Expected 'integer', but was '%s' for value: %s", spec.expr.src, spec.field, typeName(v), encodeString(v))
		}
		return n, nil
	case spec.path != nil:
		v, err := spec.path.eval(&ev.roots)
		if err != nil {
			return 0, runtimeFail("Invalid path '%s' : %s", spec.src, err)
		}
		n, ok := intOf(v)
		if !ok {
			return 0, runtimeFail("The %s field references a value that is not a valid integer: %s == %s", spec.field, spec.src, encodeString(v))
		}
		return n, nil
	}
	n, _ := spec.lit.(int64)
	return n, nil
}

func (ex *Execution) completeTask(t *thread, a *Action, r Result) {
	st := t.graph.states[t.State]
	isLambda := a.Function != nil && !a.Function.Integration
	rt, res := resourceTypeOf(st.resource)
	if r.Error != nil {
		timedOut := r.Error.Error == ErrTimeout
		switch {
		case isLambda && timedOut:
			ex.emit(t, Event{Type: "LambdaFunctionTimedOut"}, func(e *Event) {
				e.LambdaFunctionTimedOutEventDetails = &FailureEventDetails{Error: r.Error.Error, Cause: r.Error.Cause}
			})
		case isLambda:
			ex.emit(t, Event{Type: "LambdaFunctionFailed"}, func(e *Event) {
				e.LambdaFunctionFailedEventDetails = &FailureEventDetails{Error: r.Error.Error, Cause: r.Error.Cause}
			})
		default:
			typ := "TaskFailed"
			if timedOut {
				typ = "TaskTimedOut"
			}
			ex.emit(t, Event{Type: typ}, func(e *Event) {
				d := &TaskFailedEventDetails{ResourceType: rt, Resource: res, Error: r.Error.Error, Cause: r.Error.Cause}
				if timedOut {
					e.TaskTimedOutEventDetails = d
				} else {
					e.TaskFailedEventDetails = d
				}
			})
		}
		ex.handleError(t, st, r.Error)
		return
	}
	var result any
	if len(strings.TrimSpace(string(r.Output))) == 0 {
		result = nil
	} else {
		v, err := decodeJSON(r.Output)
		if err != nil {
			ex.handleError(t, st, &Error{Error: ErrRuntime, Cause: fmt.Sprintf("The task result is not valid JSON: %v", err)})
			return
		}
		result = v
	}
	if a.Function != nil && a.Function.Integration && a.TaskToken == "" {
		version := r.ExecutedVersion
		if version == "" {
			version = "$LATEST"
		}
		payload := result
		if payload == nil {
			payload = map[string]any{}
		}
		if a.Function.Async {
			result = map[string]any{"Payload": "", "StatusCode": intValue(202)}
		} else {
			result = map[string]any{
				"ExecutedVersion": version,
				"Payload":         payload,
				"StatusCode":      intValue(200),
				"SdkHttpMetadata": map[string]any{"HttpStatusCode": intValue(200)},
				"SdkResponseMetadata": map[string]any{
					"RequestId": newUUID(ex.rand),
				},
			}
		}
	}
	if jsonSize(result) > MaxPayloadBytes {
		ex.handleError(t, st, &Error{Error: ErrDataLimitExceeded, Cause: fmt.Sprintf(
			"The state/task '%s' returned a result with a size exceeding the maximum number of bytes service limit.", st.resource)})
		return
	}
	if isLambda {
		ex.emit(t, Event{Type: "LambdaFunctionSucceeded"}, func(e *Event) {
			e.LambdaFunctionSucceededEventDetails = &OutputEventDetails{Output: encodeString(result)}
		})
	} else {
		ex.emit(t, Event{Type: "TaskSucceeded"}, func(e *Event) {
			e.TaskSucceededEventDetails = &TaskSucceededEventDetails{ResourceType: rt, Resource: res, Output: encodeString(result)}
		})
	}
	if err := ex.processResult(t, st, result); err != nil {
		ex.handleError(t, st, ex.stateError(t, st, err))
	}
}

// processResult applies ResultSelector/ResultPath/OutputPath (JSONPath) or
// Output/Assign (JSONata) to a Task, Parallel or Map result.
func (ex *Execution) processResult(t *thread, st *state, result any) error {
	if st.lang == JSONata {
		return ex.finishJSONata(t, st, map[string]any{"input": t.Input, "result": result}, result)
	}
	if st.resultSelector != nil {
		ev := ex.evaluator(t, st, result, nil, nil)
		v, err := ev.eval(st.resultSelector)
		if err != nil {
			return err
		}
		result = v
	}
	return ex.finishJSONPath(t, st, result)
}

// ---- Choice ----

func (ex *Execution) execChoice(t *thread, st *state) error {
	if st.lang == JSONata {
		ev := ex.evaluator(t, st, nil, map[string]any{"input": t.Input}, nil)
		for _, r := range st.choices {
			v, err := ev.eval(r.condition)
			if err != nil {
				return err
			}
			b, ok := v.(bool)
			if !ok {
				return queryFail("The JSONata expression '%s' specified for the field 'Condition' returned an unexpected result type. Expected 'boolean', but was '%s' for value: %s", r.condition.src, typeName(v), encodeString(v))
			}
			if b {
				return ex.leaveChoice(t, st, r.next, r.output, r.assign)
			}
		}
		if st.defaultNext == "" {
			return &stateFailure{name: ErrNoChoiceMatched, msg: "No Choice Rules matched and no Default was specified"}
		}
		return ex.leaveChoice(t, st, st.defaultNext, st.output, st.assign)
	}
	ev := ex.evaluator(t, st, t.Input, nil, nil)
	eff, err := applyOptPath(st.inputPath, &ev.roots, "InputPath")
	if err != nil {
		return err
	}
	ev.roots.input = eff
	for _, r := range st.choices {
		ok, err := evalRule(r, &ev.roots)
		if err != nil {
			return err
		}
		if ok {
			return ex.leaveChoiceJSONPath(t, st, ev, eff, r.next, r.assign)
		}
	}
	if st.defaultNext == "" {
		return &stateFailure{name: ErrNoChoiceMatched, msg: "No Choice Rules matched and no Default was specified"}
	}
	return ex.leaveChoiceJSONPath(t, st, ev, eff, st.defaultNext, st.assign)
}

func (ex *Execution) leaveChoiceJSONPath(t *thread, st *state, ev *evaluator, eff any, next string, assign *template) error {
	var assigned map[string]any
	if assign != nil {
		v, err := ev.eval(assign)
		if err != nil {
			return err
		}
		assigned, _ = v.(map[string]any)
	}
	ev.roots.input = eff
	out, err := applyOptPath(st.outputPath, &ev.roots, "OutputPath")
	if err != nil {
		return err
	}
	return ex.exitTo(t, st, next, out, assigned)
}

func (ex *Execution) leaveChoice(t *thread, st *state, next string, output, assign *template) error {
	ev := ex.evaluator(t, st, nil, map[string]any{"input": t.Input}, nil)
	var assigned map[string]any
	if assign != nil {
		v, err := ev.eval(assign)
		if err != nil {
			return err
		}
		assigned, _ = v.(map[string]any)
	}
	out := t.Input
	if output != nil {
		v, err := ev.eval(output)
		if err != nil {
			return err
		}
		out = v
	}
	return ex.exitTo(t, st, next, out, assigned)
}

// exitTo is exitState for states whose next state is chosen at run time.
func (ex *Execution) exitTo(t *thread, st *state, next string, out any, assigned map[string]any) error {
	cp := *st
	cp.next = next
	cp.end = false
	ex.exitState(t, &cp, out, assigned)
	return nil
}

// ---- Wait ----

func (ex *Execution) execWait(t *thread, st *state) error {
	var eff any = t.Input
	var ev *evaluator
	if st.lang == JSONata {
		ev = ex.evaluator(t, st, nil, map[string]any{"input": t.Input}, nil)
	} else {
		ev = ex.evaluator(t, st, t.Input, nil, nil)
		v, err := applyOptPath(st.inputPath, &ev.roots, "InputPath")
		if err != nil {
			return err
		}
		eff = v
		ev.roots.input = eff
	}
	var until time.Time
	switch {
	case st.seconds.set:
		var n int64
		switch {
		case st.seconds.expr != nil:
			v, err := ev.evalExpr(st.seconds.expr, "Seconds")
			if err != nil {
				return err
			}
			i, ok := toInt(v)
			if !ok || i < 0 {
				return queryFail("The JSONata expression '%s' specified for the field 'Seconds' returned an unexpected result type. Expected 'integer', but was '%s' for value: %s", st.seconds.expr.src, typeName(v), encodeString(v))
			}
			n = i
		case st.seconds.path != nil:
			v, err := st.seconds.path.eval(&ev.roots)
			if err != nil {
				return runtimeFail("Invalid path '%s' : %s", st.seconds.src, err)
			}
			i, ok := toInt(v)
			if !ok {
				return runtimeFail("The SecondsPath parameter does not reference a valid integer value: %s == %s", st.seconds.src, encodeString(v))
			}
			if i < 0 {
				return runtimeFail("The SecondsPath parameter references a negative value: %s == %d", st.seconds.src, i)
			}
			n = i
		default:
			n, _ = st.seconds.lit.(int64)
		}
		until = ex.now.Add(time.Duration(n) * time.Second)
	case st.timestamp.set:
		switch {
		case st.timestamp.expr != nil:
			v, err := ev.evalExpr(st.timestamp.expr, "Timestamp")
			if err != nil {
				return err
			}
			s, _ := v.(string)
			ts, perr := parseTimestamp(s)
			if perr != nil {
				text := s
				if _, ok := v.(string); !ok {
					text = encodeString(v)
				}
				return queryFail("The Timestamp field cannot be parsed as an ISO-8601 extended offset date-time format string: %s", text)
			}
			until = ts
		case st.timestamp.path != nil:
			v, err := st.timestamp.path.eval(&ev.roots)
			if err != nil {
				return runtimeFail("Invalid path '%s' : %s", st.timestamp.src, err)
			}
			s, _ := v.(string)
			ts, perr := parseTimestamp(s)
			if perr != nil {
				return runtimeFail("The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: %s == %s", st.timestamp.src, encodeString(v))
			}
			until = ts
		default:
			ts, _ := parseTimestamp(st.timestamp.lit.(string))
			until = ts
		}
	}
	// The output is known now; the timer only delays leaving the state.
	var out any
	var assigned map[string]any
	if st.lang == JSONata {
		if st.assign != nil {
			v, err := ev.eval(st.assign)
			if err != nil {
				return err
			}
			assigned, _ = v.(map[string]any)
		}
		out = t.Input
		if st.output != nil {
			v, err := ev.eval(st.output)
			if err != nil {
				return err
			}
			out = v
		}
	} else {
		if st.assign != nil {
			v, err := ev.eval(st.assign)
			if err != nil {
				return err
			}
			assigned, _ = v.(map[string]any)
		}
		ev.roots.input = eff
		v, err := applyOptPath(st.outputPath, &ev.roots, "OutputPath")
		if err != nil {
			return err
		}
		out = v
	}
	for k, v := range assigned {
		if t.Vars == nil {
			t.Vars = map[string]any{}
		}
		t.Vars[k] = v
	}
	if !until.After(ex.now) {
		ex.exitState(t, st, out, nil)
		return nil
	}
	t.Output = out
	ex.setAction(t, &Action{ID: ex.newActionID(), Kind: ActionTimer, State: st.name, Until: until, Reason: "wait"})
	t.Phase = phaseWait
	return nil
}

// ---- Succeed / Fail ----

func (ex *Execution) execSucceed(t *thread, st *state) error {
	if st.lang == JSONata {
		return ex.finishJSONata(t, st, map[string]any{"input": t.Input}, t.Input)
	}
	ev := ex.evaluator(t, st, t.Input, nil, nil)
	eff, err := applyOptPath(st.inputPath, &ev.roots, "InputPath")
	if err != nil {
		return err
	}
	ev.roots.input = eff
	out, err := applyOptPath(st.outputPath, &ev.roots, "OutputPath")
	if err != nil {
		return err
	}
	ex.exitState(t, st, out, nil)
	return nil
}

func (ex *Execution) execFail(t *thread, st *state) error {
	var ev *evaluator
	if st.lang == JSONata {
		ev = ex.evaluator(t, st, nil, map[string]any{"input": t.Input}, nil)
	} else {
		ev = ex.evaluator(t, st, t.Input, nil, nil)
	}
	resolve := func(spec valueSpec) (string, error) {
		if !spec.set {
			return "", nil
		}
		var v any
		var err error
		switch {
		case spec.expr != nil:
			v, err = ev.evalExpr(spec.expr, spec.field)
		default:
			if node, ok := spec.lit.(*template); ok {
				v, err = ev.eval(node)
			} else {
				v = spec.lit
			}
		}
		if err != nil {
			return "", err
		}
		s, ok := v.(string)
		if !ok {
			if spec.expr != nil {
				return "", queryFail("The JSONata expression '%s' specified for the field '%s' returned an unexpected result type. Expected 'string', but was '%s' for value: %s", spec.expr.src, spec.field, typeName(v), encodeString(v))
			}
			return "", runtimeFail("The value of the field '%s' must be a string, but was %s", spec.field, encodeString(v))
		}
		return s, nil
	}
	name, err := resolve(st.errorSpec)
	if err != nil {
		return err
	}
	cause, err := resolve(st.causeSpec)
	if err != nil {
		return err
	}
	ex.failThread(t, &Error{Error: name, Cause: cause})
	return nil
}

// ---- Parallel ----

func (ex *Execution) execParallel(t *thread, st *state) error {
	var in any
	if st.lang == JSONata {
		in = t.Input
		if st.arguments != nil {
			ev := ex.evaluator(t, st, nil, map[string]any{"input": t.Input}, nil)
			v, err := ev.eval(st.arguments)
			if err != nil {
				return err
			}
			in = v
		}
	} else {
		ev := ex.evaluator(t, st, t.Input, nil, nil)
		eff, err := applyOptPath(st.inputPath, &ev.roots, "InputPath")
		if err != nil {
			return err
		}
		in = eff
		if st.parameters != nil {
			ev.roots.input = eff
			if in, err = ev.eval(st.parameters); err != nil {
				return err
			}
		}
	}
	ex.emit(t, Event{Type: "ParallelStateStarted"}, nil)
	f := &fanout{Total: len(st.branches), Results: make([]any, len(st.branches)), TolCount: -1, TolPercent: -1}
	t.Fanout = f
	t.Children = nil
	for i, b := range st.branches {
		c := &thread{Graph: b.id, State: b.startAt, Input: in, Phase: phaseEnter, Index: i, parent: t, graph: b, LastEvent: t.LastEvent}
		t.Children = append(t.Children, c)
	}
	f.NextItem = len(st.branches)
	t.Phase = phaseFanout
	return nil
}

// settleFanout collects ended children of a Parallel or Map state, starts
// more Map iterations as concurrency allows, and finishes the state when all
// children have ended. It reports whether t's phase changed.
func (ex *Execution) settleFanout(t *thread) bool {
	st := t.graph.states[t.State]
	f := t.Fanout
	isMap := st.typ == typeMap
	kept := t.Children[:0]
	for _, c := range t.Children {
		if c.Phase != phaseDone {
			kept = append(kept, c)
			continue
		}
		f.Finished++
		if c.Err != nil {
			if isMap {
				ex.emit(t, Event{Type: "MapIterationFailed"}, func(e *Event) {
					e.MapIterationFailedEventDetails = &MapIterationEventDetails{Name: st.name, Index: c.Index}
				})
			}
			f.Failed++
			if f.FirstErr == nil {
				f.FirstErr = c.Err
			}
			f.Results[c.Index] = c.Err.output()
			continue
		}
		if isMap {
			ex.emit(t, Event{Type: "MapIterationSucceeded"}, func(e *Event) {
				e.MapIterationSucceededEventDetails = &MapIterationEventDetails{Name: st.name, Index: c.Index}
			})
		}
		f.Results[c.Index] = c.Output
	}
	t.Children = kept
	if f.Failed > 0 && !ex.tolerated(f) {
		err := f.FirstErr
		if isMap && (f.TolCount >= 0 || f.TolPercent >= 0) {
			err = &Error{Error: ErrExceedToleratedFailureThreshold, Cause: "The specified tolerated failure threshold was exceeded"}
		}
		for _, c := range t.Children {
			if isMap {
				ex.emit(t, Event{Type: "MapIterationAborted"}, func(e *Event) {
					e.MapIterationAbortedEventDetails = &MapIterationEventDetails{Name: st.name, Index: c.Index}
				})
			}
		}
		t.Children = nil
		ex.handleError(t, st, err)
		return true
	}
	if isMap {
		started := false
		for f.NextItem < f.Total && (f.MaxConc == 0 || len(t.Children) < f.MaxConc) {
			ex.startIteration(t, st, f)
			started = true
		}
		if started {
			return true
		}
	}
	if f.Finished < f.Total {
		return false
	}
	results := f.Results
	ex.emit(t, Event{Type: st.typ + "StateSucceeded"}, nil)
	t.Fanout = nil
	if err := ex.processResult(t, st, results); err != nil {
		ex.handleError(t, st, ex.stateError(t, st, err))
	}
	return true
}

func (ex *Execution) tolerated(f *fanout) bool {
	if f.TolCount < 0 && f.TolPercent < 0 {
		return false
	}
	if f.TolCount >= 0 && int64(f.Failed) > f.TolCount {
		if f.TolPercent < 0 || float64(f.Failed)*100/float64(f.Total) > f.TolPercent {
			return false
		}
	}
	if f.TolPercent >= 0 && float64(f.Failed)*100/float64(f.Total) > f.TolPercent {
		if f.TolCount < 0 || int64(f.Failed) > f.TolCount {
			return false
		}
	}
	return true
}

// ---- Map ----

func (ex *Execution) execMap(t *thread, st *state) error {
	if st.itemReader {
		return &stateFailure{name: ErrItemReaderFailed, msg: "ItemReader is not supported: Map states read their items from the state input"}
	}
	if st.resultWriter {
		return &stateFailure{name: ErrResultWriterFailed, msg: "ResultWriter is not supported"}
	}
	var eff any
	var items []any
	var ev *evaluator
	if st.lang == JSONata {
		ev = ex.evaluator(t, st, nil, map[string]any{"input": t.Input}, nil)
		eff = t.Input
		var v any = t.Input
		if st.items != nil {
			var err error
			if v, err = ev.eval(st.items); err != nil {
				return err
			}
		}
		a, ok := v.([]any)
		if !ok {
			if st.items != nil && st.items.kind == tmplExpr {
				return queryFail("The JSONata expression '%s' specified for the field 'Items' returned an unexpected result type. Expected 'array', but was '%s' for value: %s", st.items.src, typeName(v), encodeString(v))
			}
			return runtimeFail("Items must be an array, but was %s", typeName(v))
		}
		items = a
	} else {
		ev = ex.evaluator(t, st, t.Input, nil, nil)
		v, err := applyOptPath(st.inputPath, &ev.roots, "InputPath")
		if err != nil {
			return err
		}
		eff = v
		ev.roots.input = eff
		list := eff
		if st.itemsPath != nil {
			if list, err = st.itemsPath.eval(&ev.roots); err != nil {
				return runtimeFail("Invalid path '%s' : %s", st.itemsPath.src, err)
			}
		}
		a, ok := list.([]any)
		if !ok {
			src := "$"
			if st.itemsPath != nil {
				src = st.itemsPath.src
			}
			return runtimeFail("Invalid path '%s' : the value is not an array: %s", src, encodeString(list))
		}
		items = a
	}
	maxConc, err := ex.resolveInt(ev, st.maxConcurrency)
	if err != nil {
		return err
	}
	f := &fanout{TolCount: -1, TolPercent: -1, MaxConc: int(maxConc)}
	if st.toleratedCount.set {
		n, err := ex.resolveInt(ev, st.toleratedCount)
		if err != nil {
			return err
		}
		f.TolCount = n
	}
	if st.toleratedPercent.set {
		p, err := ex.resolvePercent(ev, st.toleratedPercent)
		if err != nil {
			return err
		}
		f.TolPercent = p
	}
	// Iteration inputs: ItemSelector applies per item, with $$.Map.Item.
	inputs := make([]any, len(items))
	for i, item := range items {
		in := item
		if st.itemSelector != nil {
			var sev *evaluator
			mi := &mapItem{index: i, value: item}
			if st.lang == JSONata {
				sev = ex.evaluator(t, st, nil, map[string]any{"input": t.Input}, mi)
			} else {
				sev = ex.evaluator(t, st, eff, nil, mi)
			}
			v, err := sev.eval(st.itemSelector)
			if err != nil {
				return err
			}
			in = v
		}
		inputs[i] = in
	}
	if st.itemBatcher != nil {
		if inputs, err = ex.batch(t, st, ev, inputs); err != nil {
			return err
		}
	}
	f.Items = inputs
	f.Total = len(inputs)
	f.Results = make([]any, len(inputs))
	ex.emit(t, Event{Type: "MapStateStarted"}, func(e *Event) {
		e.MapStateStartedEventDetails = &MapStateStartedEventDetails{Length: len(inputs)}
	})
	t.Fanout = f
	t.Children = nil
	t.Phase = phaseFanout
	return nil
}

func (ex *Execution) resolvePercent(ev *evaluator, spec valueSpec) (float64, error) {
	var v any
	switch {
	case spec.expr != nil:
		var err error
		if v, err = ev.evalExpr(spec.expr, spec.field); err != nil {
			return 0, err
		}
	case spec.path != nil:
		var err error
		if v, err = spec.path.eval(&ev.roots); err != nil {
			return 0, runtimeFail("Invalid path '%s' : %s", spec.src, err)
		}
	default:
		v = spec.lit
	}
	p, ok := toFloat(v)
	if !ok || p < 0 || p > 100 {
		return 0, runtimeFail("ToleratedFailurePercentage must be between 0 and 100.")
	}
	return p, nil
}

func (ex *Execution) batch(t *thread, st *state, ev *evaluator, items []any) ([]any, error) {
	b := st.itemBatcher
	maxItems, err := ex.resolveInt(ev, b.maxItems)
	if err != nil {
		return nil, err
	}
	maxBytes, err := ex.resolveInt(ev, b.maxBytes)
	if err != nil {
		return nil, err
	}
	var batchInput any
	if b.batchInput != nil {
		if batchInput, err = ev.eval(b.batchInput); err != nil {
			return nil, err
		}
	}
	var out []any
	var cur []any
	size := 0
	flush := func() {
		if len(cur) == 0 {
			return
		}
		m := map[string]any{"Items": cur}
		if batchInput != nil {
			m["BatchInput"] = batchInput
		}
		out = append(out, m)
		cur, size = nil, 0
	}
	for _, it := range items {
		n := jsonSize(it)
		if (maxItems > 0 && int64(len(cur)) >= maxItems) || (maxBytes > 0 && len(cur) > 0 && int64(size+n) > maxBytes) {
			flush()
		}
		cur = append(cur, it)
		size += n
	}
	flush()
	return out, nil
}

func (ex *Execution) startIteration(t *thread, st *state, f *fanout) {
	i := f.NextItem
	in := f.Items[i]
	f.Items[i] = nil
	f.NextItem++
	ex.emit(t, Event{Type: "MapIterationStarted"}, func(e *Event) {
		e.MapIterationStartedEventDetails = &MapIterationEventDetails{Name: st.name, Index: i}
	})
	g := st.processor
	c := &thread{Graph: g.id, State: g.startAt, Input: in, Phase: phaseEnter, Index: i, parent: t, graph: g, LastEvent: t.LastEvent}
	t.Children = append(t.Children, c)
	sort.SliceStable(t.Children, func(a, b int) bool { return t.Children[a].Index < t.Children[b].Index })
	if f.NextItem == f.Total {
		f.Items = nil
	}
}
