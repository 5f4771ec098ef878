package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

// DescribeExecution returns an execution.
func (s *Service) DescribeExecution(ctx context.Context, arn string) (*Execution, error) {
	ref, err := parseExecutionARN(arn)
	if err != nil {
		return nil, err
	}
	if ref.express {
		if e := s.express.get(arn); e != nil {
			return e, nil
		}
		return nil, apiErr(errExecutionDoesNotExist, "Execution Does Not Exist: '%s'", arn)
	}
	meta, _, err := s.getMeta(ctx, ref.key())
	if errors.Is(err, errNoExecution) {
		return nil, apiErr(errExecutionDoesNotExist, "Execution Does Not Exist: '%s'", arn)
	}
	if err != nil {
		return nil, err
	}
	return meta.toExecution(), nil
}

// ListExecutions returns the executions of a state machine, newest first,
// optionally only those with status.
func (s *Service) ListExecutions(ctx context.Context, machineARN, status string) ([]*Execution, error) {
	name, err := machineName(machineARN)
	if err != nil {
		return nil, err
	}
	sm, smErr := s.machines.get(name)
	var out []*Execution
	if smErr == nil && sm.Type == TypeExpress {
		out = s.express.list(sm.ARN)
	} else {
		lister, err := s.execKV.ListKeysFiltered(ctx, keyPart(name)+".>")
		if err != nil {
			return nil, fmt.Errorf("workflow: list executions: %w", err)
		}
		var keys []string
		for k := range lister.Keys() {
			keys = append(keys, k)
		}
		for _, k := range keys {
			m, _, err := s.getMeta(ctx, k)
			if errors.Is(err, errNoExecution) {
				continue
			}
			if err != nil {
				return nil, err
			}
			out = append(out, m.toExecution())
		}
		if len(out) == 0 && smErr != nil {
			return nil, smErr
		}
	}
	if status != "" {
		kept := out[:0]
		for _, e := range out {
			if e.Status == status {
				kept = append(kept, e)
			}
		}
		out = kept
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.After(out[j].Start) })
	return out, nil
}

// History returns the history events of a Standard execution, oldest first.
func (s *Service) History(ctx context.Context, arn string) ([]asl.Event, error) {
	ref, err := parseExecutionARN(arn)
	if err != nil {
		return nil, err
	}
	if ref.express {
		return nil, apiErr(errInvalidArn, "Invalid Arn: 'Resource type not valid in this context: express'")
	}
	meta, _, err := s.getMeta(ctx, ref.key())
	if errors.Is(err, errNoExecution) {
		return nil, apiErr(errExecutionDoesNotExist, "Execution Does Not Exist: '%s'", arn)
	}
	if err != nil {
		return nil, err
	}
	committed, err := s.committedStep(ctx, ref.key(), meta)
	if err != nil {
		return nil, err
	}
	return s.readHistory(ctx, ref.key(), meta.Gen, committed)
}

// StopExecution aborts a running execution. Stopping one that has already
// ended changes nothing.
func (s *Service) StopExecution(ctx context.Context, arn, errName, cause string) (time.Time, error) {
	ref, err := parseExecutionARN(arn)
	if err != nil {
		return time.Time{}, err
	}
	if ref.express {
		if e := s.express.get(arn); e != nil {
			s.express.cancel(arn)
			return time.Now().UTC(), nil
		}
		return time.Time{}, apiErr(errExecutionDoesNotExist, "Execution Does Not Exist: '%s'", arn)
	}
	err = s.signal(ctx, ref.key(), &signal{kind: sigAbort, errName: errName, cause: cause})
	if err != nil && !errors.Is(err, asl.ErrNotRunning) && !errors.Is(err, errNotRunning) {
		return time.Time{}, err
	}
	e, err := s.DescribeExecution(ctx, ref.arn)
	if err != nil {
		return time.Time{}, err
	}
	if e.Stop.IsZero() {
		return time.Now().UTC(), nil
	}
	return e.Stop, nil
}

// SendTaskSuccess answers a task token with the task's output.
func (s *Service) SendTaskSuccess(ctx context.Context, token, output string) error {
	if !json.Valid([]byte(output)) {
		return apiErr(errInvalidOutput, "Invalid Output: '%s'", truncate(output, 100))
	}
	return s.answerToken(ctx, token, &signal{kind: sigComplete, result: asl.Result{Output: json.RawMessage(output)}})
}

// SendTaskFailure answers a task token with an error.
func (s *Service) SendTaskFailure(ctx context.Context, token, errName, cause string) error {
	return s.answerToken(ctx, token, &signal{kind: sigComplete, result: asl.Result{Error: &asl.Error{Error: errName, Cause: cause}}})
}

// SendTaskHeartbeat tells a waiting task that its worker is still at it.
func (s *Service) SendTaskHeartbeat(ctx context.Context, token string) error {
	return s.answerToken(ctx, token, &signal{kind: sigHeartbeat})
}

func (s *Service) answerToken(ctx context.Context, token string, sg *signal) error {
	ref, err := s.lookupToken(ctx, token)
	if err != nil {
		return err
	}
	sg.action = ref.Action
	err = s.signal(ctx, ref.Key, sg)
	if errors.Is(err, asl.ErrUnknownAction) || errors.Is(err, asl.ErrNotRunning) || errors.Is(err, errNotRunning) || errors.Is(err, errStale) {
		return apiErr(errTaskDoesNotExist, "Task Does Not Exist: '%s'", token)
	}
	return err
}

var errNotRunning = errors.New("the execution is not running")

// signal delivers sg to the execution key wherever it is driven: here,
// on the owning node (over NATS request-reply), or here after claiming it
// from a dead owner. It returns once the change is durable.
func (s *Service) signal(ctx context.Context, key string, sg *signal) error {
	for attempt := 0; attempt < 5; attempt++ {
		if r := s.lookupRun(key); r != nil {
			sg.reply, sg.err = make(chan struct{}), nil
			if r.deliver(sg) {
				select {
				case <-sg.reply:
				case <-ctx.Done():
					return ctx.Err()
				}
				if errors.Is(sg.err, errGone) {
					continue
				}
				return sg.err
			}
			continue
		}
		e, err := s.stateKV.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return errNotRunning
		}
		if err != nil {
			return fmt.Errorf("workflow: execution state: %w", err)
		}
		sv, _, _, err := decodeState(e.Value())
		if err != nil {
			return err
		}
		if sv.Owner != s.nodeID && s.nodeAlive(ctx, sv.Owner) {
			return s.forward(ctx, sv.Owner, key, sg)
		}
		if _, err := s.claim(ctx, key, e); err != nil && !errors.Is(err, errLostOwnership) {
			return err
		}
	}
	return &Error{Type: errServiceUnavailable, Message: "the execution is moving between nodes, try again", Status: 503}
}

// controlMsg carries a signal to the node that drives an execution.
type controlMsg struct {
	Key     string      `json:"key"`
	Kind    sigKind     `json:"kind"`
	Action  string      `json:"action,omitempty"`
	Output  []byte      `json:"output,omitempty"`
	Err     *asl.Error  `json:"err,omitempty"`
	ErrName string      `json:"errName,omitempty"`
	Cause   string      `json:"cause,omitempty"`
	Reply   *controlErr `json:"reply,omitempty"`
}

type controlErr struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func (s *Service) forward(ctx context.Context, owner, key string, sg *signal) error {
	b, _ := json.Marshal(controlMsg{Key: key, Kind: sg.kind, Action: sg.action, Output: sg.result.Output,
		Err: sg.result.Error, ErrName: sg.errName, Cause: sg.cause})
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	msg, err := s.st.NC.RequestWithContext(rctx, controlSubject+owner, b)
	if err != nil {
		return &Error{Type: errServiceUnavailable, Message: fmt.Sprintf("the node driving the execution did not answer: %v", err), Status: 503}
	}
	var reply controlMsg
	if err := json.Unmarshal(msg.Data, &reply); err != nil {
		return fmt.Errorf("workflow: control reply: %w", err)
	}
	if reply.Reply == nil {
		return nil
	}
	switch reply.Reply.Type {
	case "unknown":
		return asl.ErrUnknownAction
	case "notRunning":
		return errNotRunning
	}
	return &Error{Type: reply.Reply.Type, Message: reply.Reply.Message}
}

// serveControl applies a signal forwarded by another node.
func (s *Service) serveControl(m *nats.Msg) {
	var cm controlMsg
	if err := json.Unmarshal(m.Data, &cm); err != nil {
		return
	}
	s.goFunc(func() {
		ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
		defer cancel()
		sg := &signal{kind: cm.Kind, action: cm.Action, result: asl.Result{Output: cm.Output, Error: cm.Err}, errName: cm.ErrName, cause: cm.Cause}
		var err error
		if s.lookupRun(cm.Key) == nil {
			err = errNotRunning // not (or no longer) ours: the sender retries
		} else {
			err = s.signal(ctx, cm.Key, sg)
		}
		var reply controlMsg
		switch {
		case err == nil:
		case errors.Is(err, asl.ErrUnknownAction) || errors.Is(err, errStale):
			reply.Reply = &controlErr{Type: "unknown"}
		case errors.Is(err, asl.ErrNotRunning) || errors.Is(err, errNotRunning):
			reply.Reply = &controlErr{Type: "notRunning"}
		default:
			ae := toAPIError(err)
			reply.Reply = &controlErr{Type: ae.Type, Message: ae.Message}
		}
		b, _ := json.Marshal(reply)
		m.Respond(b) //nolint:errcheck // the requester times out
	})
}

// ---- recovery ----

// recover claims every execution in the state bucket owned by this node or
// by a node that is gone.
func (s *Service) recover(ctx context.Context) error {
	lister, err := s.stateKV.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("workflow: list running executions: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	resumed := 0
	for _, k := range keys {
		if s.lookupRun(k) != nil {
			continue
		}
		e, err := s.stateKV.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("workflow: read execution state %s: %w", k, err)
		}
		sv, _, _, err := decodeState(e.Value())
		if err != nil {
			s.log.Error("workflow: skipping unreadable execution state", "key", k, "err", err)
			continue
		}
		if sv.Owner != s.nodeID && s.nodeAlive(ctx, sv.Owner) {
			continue
		}
		if _, err := s.claim(ctx, k, e); err != nil {
			if !errors.Is(err, errLostOwnership) {
				s.log.Error("workflow: cannot resume execution", "execution", sv.Meta.ARN, "err", err)
			}
			continue
		}
		resumed++
	}
	if resumed > 0 {
		s.log.Info("workflow: resumed executions", "count", resumed)
	}
	return nil
}

// claim makes this node the driver of the execution in state entry e,
// restores it and dispatches what it was waiting for.
func (s *Service) claim(ctx context.Context, key string, e jetstream.KeyValueEntry) (*run, error) {
	s.mu.Lock()
	if r := s.runs[key]; r != nil {
		s.mu.Unlock()
		return r, nil
	}
	if ch, ok := s.loading[key]; ok {
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if r := s.lookupRun(key); r != nil {
			return r, nil
		}
		return nil, errLostOwnership
	}
	ch := make(chan struct{})
	s.loading[key] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.loading, key)
		s.mu.Unlock()
		close(ch)
	}()

	sv, enc, data, err := decodeState(e.Value())
	if err != nil {
		return nil, err
	}
	snap, err := s.snapshotBytes(ctx, sv, enc, data)
	if err != nil {
		return nil, err
	}
	m, err := s.machines.machine(ctx, sv.Meta.DefHash)
	if err != nil {
		return nil, err
	}
	ex, err := m.Restore(snap)
	if err != nil {
		return nil, fmt.Errorf("workflow: restore %s: %w", sv.Meta.ARN, err)
	}
	rev := e.Revision()
	if sv.Owner != s.nodeID {
		prev := sv.Owner
		sv.Owner = s.nodeID
		rev, err = s.stateKV.Update(ctx, key, encodeState(sv, enc, data), e.Revision())
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errLostOwnership, err)
		}
		s.log.Info("workflow: took over execution", "execution", sv.Meta.ARN, "from", prev)
	}
	// A crash between creating the state and the summary leaves no summary.
	if _, _, err := s.getMeta(ctx, key); errors.Is(err, errNoExecution) {
		b, _ := json.Marshal(&sv.Meta)
		s.execKV.Create(ctx, key, b) //nolint:errcheck // a concurrent create wrote the same
	}
	r := s.newRun(key, m, sv.Meta, ex)
	r.rev, r.step, r.object = rev, sv.Step, sv.Object
	if sv.Deadlines != nil {
		r.deadlines = sv.Deadlines
	}
	s.mu.Lock()
	s.runs[key] = r
	s.mu.Unlock()
	r.deliver(&signal{kind: sigResume})
	return r, nil
}

// maintain keeps the node's lease fresh and adopts executions whose owner
// has gone (or that this node dropped after a persistence failure).
func (s *Service) maintain() {
	t := time.NewTicker(s.cfg.LeaseInterval)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.LeaseInterval)
		if err := s.announce(ctx); err != nil {
			s.log.Warn("workflow: lease not renewed", "err", err)
		}
		n++
		if n%3 == 0 {
			if err := s.recover(ctx); err != nil && s.ctx.Err() == nil {
				s.log.Warn("workflow: looking for orphaned executions failed", "err", err)
			}
		}
		cancel()
	}
}

// Running is the number of Standard executions this node drives.
func (s *Service) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

var _ = strings.Cut
