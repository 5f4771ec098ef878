package workflow

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/klauspost/compress/s2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/store"
	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

// Statuses of executions, as the API reports them.
const (
	StatusRunning   = "RUNNING"
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"
	StatusTimedOut  = "TIMED_OUT"
	StatusAborted   = "ABORTED"
)

// execMeta is an execution's summary in nimbus_executions. It is written
// when the execution starts and again when it ends; in between, the durable
// state lives in nimbus_wf_state.
type execMeta struct {
	ARN             string    `json:"executionArn"`
	StateMachineARN string    `json:"stateMachineArn"`
	Machine         string    `json:"machine"`
	Name            string    `json:"name"`
	DefHash         string    `json:"defHash"`
	Status          string    `json:"status"`
	Start           time.Time `json:"startDate"`
	Stop            time.Time `json:"stopDate,omitzero"`
	Input           string    `json:"input"`
	Output          *string   `json:"output,omitempty"`
	Error           string    `json:"error,omitempty"`
	Cause           string    `json:"cause,omitempty"`
	// Gen identifies this execution's history messages among those of an
	// earlier execution that had the same name.
	Gen string `json:"gen"`
	// Steps is the number of committed steps once the execution has ended.
	Steps uint64 `json:"steps,omitempty"`
}

// deadline is the executor's own bookkeeping for a task that waits for a
// task token: the interpreter leaves timeouts and heartbeats of such tasks
// to the executor.
type deadline struct {
	Timeout          time.Time `json:"timeout,omitzero"`
	Heartbeat        time.Time `json:"heartbeat,omitzero"`
	HeartbeatSeconds int64     `json:"heartbeatSeconds,omitempty"`
	TimeoutSeconds   int64     `json:"timeoutSeconds,omitempty"`
	Token            string    `json:"token,omitempty"`
	// Invoked is set once the function that receives the token has been
	// invoked, so a restart does not invoke it again.
	Invoked bool `json:"invoked,omitempty"`
}

// stateValue is what nimbus_wf_state holds for a running execution, ahead
// of the interpreter's snapshot. It carries the whole meta, so a crash
// between creating the state and creating the meta loses nothing.
type stateValue struct {
	Meta      execMeta             `json:"meta"`
	Owner     string               `json:"owner"`
	Step      uint64               `json:"step"`
	Deadlines map[string]*deadline `json:"deadlines,omitempty"`
	// Object names the snapshot in the snapshots object store when it was
	// too large for a KV value.
	Object string `json:"object,omitempty"`
}

// Snapshot encodings after the stateValue.
const (
	snapPlain  byte = 0
	snapS2     byte = 1
	snapObject byte = 2
)

const stateMagic = 'W'

// encodeState lays out a state value: magic, uvarint length and JSON of the
// stateValue, an encoding byte, then the snapshot.
func encodeState(sv *stateValue, enc byte, snap []byte) []byte {
	meta, _ := json.Marshal(sv)
	buf := make([]byte, 0, 1+binary.MaxVarintLen64+len(meta)+1+len(snap))
	buf = append(buf, stateMagic)
	buf = binary.AppendUvarint(buf, uint64(len(meta)))
	buf = append(buf, meta...)
	buf = append(buf, enc)
	return append(buf, snap...)
}

func decodeState(b []byte) (*stateValue, byte, []byte, error) {
	if len(b) < 2 || b[0] != stateMagic {
		return nil, 0, nil, errors.New("workflow: unreadable execution state")
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || uint64(len(b)-1-k) < n+1 {
		return nil, 0, nil, errors.New("workflow: truncated execution state")
	}
	rest := b[1+k:]
	sv := new(stateValue)
	if err := json.Unmarshal(rest[:n], sv); err != nil {
		return nil, 0, nil, fmt.Errorf("workflow: execution state: %w", err)
	}
	return sv, rest[n], rest[n+1:], nil
}

// snapshotBytes reads the interpreter snapshot of a decoded state value.
func (s *Service) snapshotBytes(ctx context.Context, sv *stateValue, enc byte, data []byte) ([]byte, error) {
	switch enc {
	case snapPlain:
		return data, nil
	case snapS2:
		out, err := s2.Decode(nil, data)
		if err != nil {
			return nil, fmt.Errorf("workflow: snapshot: %w", err)
		}
		return out, nil
	case snapObject:
		b, err := s.snapshots.GetBytes(ctx, sv.Object)
		if err != nil {
			return nil, fmt.Errorf("workflow: snapshot %s: %w", sv.Object, err)
		}
		return s2.Decode(nil, b)
	}
	return nil, fmt.Errorf("workflow: unknown snapshot encoding %d", enc)
}

// historyMsg is one step's history events on the stream.
type historyMsg struct {
	Gen    string      `json:"gen"`
	Step   uint64      `json:"step"`
	Part   int         `json:"part"`
	Events []asl.Event `json:"events"`
}

func historySubject(key string) string { return HistorySubject + key }

// publishHistory writes one step's events, split into messages that fit the
// server's payload limit, and waits until JetStream has stored them all.
//
// A step with no events (a heartbeat) is still written, as an empty
// message: it replaces whatever a crashed attempt at the same step wrote.
func (s *Service) publishHistory(ctx context.Context, key, gen string, step uint64, events []asl.Event) error {
	subj := historySubject(key)
	var futures []jetstream.PubAckFuture
	part := 0
	flush := func(evs []asl.Event) error {
		b, err := json.Marshal(historyMsg{Gen: gen, Step: step, Part: part, Events: evs})
		if err != nil {
			return err
		}
		part++
		f, err := s.js.PublishAsync(subj, b)
		if err != nil {
			return fmt.Errorf("workflow: history: %w", err)
		}
		futures = append(futures, f)
		return nil
	}
	// Measure as we go; most steps are one message.
	start, size := 0, 0
	for i := range events {
		n := eventSize(&events[i])
		if i > start && size+n > s.maxPayload {
			if err := flush(events[start:i]); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += n
	}
	if err := flush(events[start:]); err != nil {
		return err
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("workflow: history: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("workflow: history: %w", ctx.Err())
		}
	}
	return nil
}

// eventSize estimates an event's encoded size from its payload strings.
func eventSize(e *asl.Event) int {
	n := 256
	add := func(s string) { n += len(s) + len(s)/8 }
	if d := e.ExecutionStartedEventDetails; d != nil {
		add(d.Input)
	}
	if d := e.ExecutionSucceededEventDetails; d != nil {
		add(d.Output)
	}
	if d := e.StateEnteredEventDetails; d != nil {
		add(d.Input)
	}
	if d := e.StateExitedEventDetails; d != nil {
		add(d.Output)
		for _, v := range d.AssignedVariables {
			add(v)
		}
	}
	if d := e.TaskScheduledEventDetails; d != nil {
		add(d.Parameters)
	}
	if d := e.TaskSucceededEventDetails; d != nil {
		add(d.Output)
	}
	if d := e.LambdaFunctionScheduledEventDetails; d != nil {
		add(d.Input)
	}
	if d := e.LambdaFunctionSucceededEventDetails; d != nil {
		add(d.Output)
	}
	for _, d := range []*asl.FailureEventDetails{e.ExecutionFailedEventDetails, e.ExecutionAbortedEventDetails,
		e.ExecutionTimedOutEventDetails, e.LambdaFunctionFailedEventDetails, e.LambdaFunctionTimedOutEventDetails} {
		if d != nil {
			add(d.Cause)
		}
	}
	for _, d := range []*asl.TaskFailedEventDetails{e.TaskFailedEventDetails, e.TaskTimedOutEventDetails} {
		if d != nil {
			add(d.Cause)
		}
	}
	return n
}

// readHistory returns the committed events of an execution: the messages of
// its generation, for steps up to committed, where a step written twice (a
// crash between writing history and committing the state, then a replay)
// counts as its last writing.
func (s *Service) readHistory(ctx context.Context, key, gen string, committed uint64) ([]asl.Event, error) {
	cons, done, err := store.ReadOnce(ctx, s.history, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{historySubject(key)},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("workflow: history: %w", err)
	}
	defer done()
	type stepMsgs struct{ parts []historyMsg }
	steps := map[uint64]*stepMsgs{}
	ci, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("workflow: history: %w", err)
	}
	if ci.NumPending == 0 {
		return nil, nil
	}
	for {
		msgs, err := cons.Available(ctx, 512)
		if err != nil {
			return nil, fmt.Errorf("workflow: history: %w", err)
		}
		done := false
		for _, m := range msgs {
			md, err := m.Metadata()
			if err == nil {
				err = cons.InOrder(md)
			}
			if err != nil {
				return nil, fmt.Errorf("workflow: history: %w", err)
			}
			if md.NumPending == 0 {
				done = true
			}
			var hm historyMsg
			if err := json.Unmarshal(m.Data(), &hm); err != nil || hm.Gen != gen || hm.Step > committed {
				continue
			}
			sm := steps[hm.Step]
			if sm == nil {
				sm = &stepMsgs{}
				steps[hm.Step] = sm
			}
			if hm.Part == 0 {
				sm.parts = sm.parts[:0] // a later writing of the step replaces an earlier one
			}
			sm.parts = append(sm.parts, hm)
		}
		if done {
			break
		}
		if len(msgs) == 0 {
			// The consumer may not have caught up yet: wait a little.
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("workflow: history: %w", ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	var out []asl.Event
	for i := uint64(1); i <= committed; i++ {
		if sm := steps[i]; sm != nil {
			for _, p := range sm.parts {
				out = append(out, p.Events...)
			}
		}
	}
	return out, nil
}

// getMeta reads an execution's summary.
func (s *Service) getMeta(ctx context.Context, key string) (*execMeta, uint64, error) {
	e, err := s.execKV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, errNoExecution
	}
	if err != nil {
		return nil, 0, fmt.Errorf("workflow: execution %s: %w", key, err)
	}
	m := new(execMeta)
	if err := json.Unmarshal(e.Value(), m); err != nil {
		return nil, 0, fmt.Errorf("workflow: execution %s: %w", key, err)
	}
	return m, e.Revision(), nil
}

var errNoExecution = errors.New("no such execution")

// committedStep is the number of steps of an execution whose history counts.
func (s *Service) committedStep(ctx context.Context, key string, meta *execMeta) (uint64, error) {
	if meta.Status != StatusRunning {
		return meta.Steps, nil
	}
	e, err := s.stateKV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		// Ended between the two reads: read the meta again.
		m, _, err := s.getMeta(ctx, key)
		if err != nil {
			return 0, err
		}
		return m.Steps, nil
	}
	if err != nil {
		return 0, fmt.Errorf("workflow: execution %s: %w", key, err)
	}
	sv, _, _, err := decodeState(e.Value())
	if err != nil {
		return 0, err
	}
	return sv.Step, nil
}

// tokenKey is the key of a task token in nimbus_wf_tokens. Tokens the
// interpreter makes are UUIDs, valid keys as they are.
func tokenKey(token string) string {
	if token == "" || len(token) > 200 {
		return ""
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return ""
		}
	}
	return "t." + token
}

type tokenRef struct {
	Key    string `json:"key"`
	Action string `json:"action"`
}

func (s *Service) putToken(ctx context.Context, token, key, action string) error {
	tk := tokenKey(token)
	if tk == "" {
		return fmt.Errorf("workflow: unusable task token")
	}
	b, _ := json.Marshal(tokenRef{Key: key, Action: action})
	if _, err := s.tokensKV.Put(ctx, tk, b); err != nil {
		return fmt.Errorf("workflow: task token: %w", err)
	}
	return nil
}

func (s *Service) lookupToken(ctx context.Context, token string) (*tokenRef, error) {
	tk := tokenKey(token)
	if tk == "" {
		return nil, apiErr(errInvalidToken, "Invalid Token: '%s'", truncate(token, 100))
	}
	e, err := s.tokensKV.Get(ctx, tk)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, apiErr(errTaskDoesNotExist, "Task Does Not Exist: '%s'", token)
	}
	if err != nil {
		return nil, fmt.Errorf("workflow: task token: %w", err)
	}
	var ref tokenRef
	if err := json.Unmarshal(e.Value(), &ref); err != nil {
		return nil, fmt.Errorf("workflow: task token: %w", err)
	}
	return &ref, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// announce tells other nodes this one is alive (a key with the bucket's TTL).
func (s *Service) announce(ctx context.Context) error {
	if _, err := s.nodesKV.Put(ctx, s.nodeID, []byte(strconv.FormatInt(time.Now().Unix(), 10))); err != nil {
		return fmt.Errorf("workflow: announce node: %w", err)
	}
	return nil
}

func (s *Service) nodeAlive(ctx context.Context, id string) bool {
	if id == s.nodeID {
		return true
	}
	_, err := s.nodesKV.Get(ctx, id)
	return err == nil
}
