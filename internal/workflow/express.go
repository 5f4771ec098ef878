package workflow

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

// ExpressTimeout is the longest an Express execution may run (the service's
// five minutes).
const ExpressTimeout = 5 * time.Minute

// StartSyncExecution runs an Express execution to its end and returns it.
func (s *Service) StartSyncExecution(ctx context.Context, arn, name, input string) (*Execution, error) {
	sm, m, name, input, err := s.prepareStart(arn, name, input)
	if err != nil {
		return nil, err
	}
	if sm.Type != TypeExpress {
		return nil, apiErr(errStateMachineTypeNotSupport, "This operation is not supported by this type of state machine")
	}
	ctx, cancel := context.WithTimeout(ctx, ExpressTimeout)
	defer cancel()
	return s.runExpress(ctx, sm, m, name, input, expressARN(sm.Name, name)), nil
}

// startExpress runs an Express execution in the background.
func (s *Service) startExpress(sm *StateMachine, m *asl.Machine, name, input string) (*Execution, error) {
	arn := expressARN(sm.Name, name)
	now := time.Now().UTC()
	e := &Execution{ARN: arn, StateMachineARN: sm.ARN, Name: name, Status: StatusRunning, Start: now, Input: input, Express: true}
	ctx, cancel := context.WithTimeout(s.ctx, ExpressTimeout)
	s.express.add(e, cancel)
	if !s.goFunc(func() {
		defer cancel()
		done := s.runExpress(ctx, sm, m, name, input, arn)
		s.express.finish(done)
	}) {
		cancel()
		return nil, &Error{Type: errServiceUnavailable, Message: "the node is stopping", Status: 503}
	}
	return e, nil
}

// runExpress runs an execution in memory, without history, calling
// functions through the invoker. Waits hold this goroutine (Express
// executions last at most five minutes).
func (s *Service) runExpress(ctx context.Context, sm *StateMachine, m *asl.Machine, name, input, arn string) *Execution {
	start := time.Now().UTC()
	ex, err := asl.Run(ctx, m, json.RawMessage(input), asl.RunOptions{
		Context: asl.ExecContext{ExecutionID: arn, Name: name, StartTime: start, StateMachineID: sm.ARN,
			StateMachineName: sm.Name, RoleArn: sm.RoleArn, NoHistory: true},
		Function: func(ctx context.Context, call asl.FunctionCall) (json.RawMessage, *asl.Error) {
			r := s.callFunction(ctx, call, 0)
			return r.Output, r.Error
		},
		Invoke: func(ctx context.Context, resource string, in json.RawMessage) (json.RawMessage, *asl.Error) {
			r := s.performCtx(ctx, asl.Action{Kind: asl.ActionTask, Resource: resource, Input: in}, "")
			return r.Output, r.Error
		},
	})
	e := &Execution{ARN: arn, StateMachineARN: sm.ARN, Name: name, Start: start, Input: input, Express: true}
	switch {
	case ex == nil:
		e.Status, e.Error, e.Cause = StatusFailed, asl.ErrRuntime, errString(err)
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		e.Status, e.Error, e.Cause = StatusTimedOut, asl.ErrTimeout, "The execution exceeded the Express limit of five minutes."
	case err != nil:
		e.Status, e.Error, e.Cause = StatusAborted, "", ""
	default:
		e.Status = string(ex.Status())
		if e.Status == StatusSucceeded {
			out := string(ex.Output())
			e.Output = &out
		}
		if xe := ex.Error(); xe != nil {
			e.Error, e.Cause = xe.Error, xe.Cause
		}
	}
	e.Stop = time.Now().UTC()
	return e
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// expressLog remembers recent Express executions for DescribeExecution and
// ListExecutions; Step Functions keeps them only in logs, Nimbus in memory.
type expressLog struct {
	max int

	mu      sync.Mutex
	byARN   map[string]*Execution
	order   []string
	cancels map[string]context.CancelFunc
}

func newExpressLog(max int) *expressLog {
	return &expressLog{max: max, byARN: map[string]*Execution{}, cancels: map[string]context.CancelFunc{}}
}

func (l *expressLog) add(e *Execution, cancel context.CancelFunc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	cp := *e
	l.byARN[e.ARN] = &cp
	l.cancels[e.ARN] = cancel
	l.order = append(l.order, e.ARN)
	for len(l.order) > l.max {
		// Forget the oldest finished execution; running ones stay.
		i := 0
		for i < len(l.order) && l.byARN[l.order[i]].Status == StatusRunning {
			i++
		}
		if i == len(l.order) {
			break
		}
		delete(l.byARN, l.order[i])
		l.order = append(l.order[:i], l.order[i+1:]...)
	}
}

func (l *expressLog) finish(e *Execution) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.byARN[e.ARN]; old != nil && old.Status == StatusAborted {
		return // stopped: keep that outcome
	}
	cp := *e
	l.byARN[e.ARN] = &cp
	delete(l.cancels, e.ARN)
}

func (l *expressLog) cancel(arn string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.cancels[arn]; c != nil {
		c()
		delete(l.cancels, arn)
		if e := l.byARN[arn]; e != nil && e.Status == StatusRunning {
			e.Status, e.Stop = StatusAborted, time.Now().UTC()
		}
	}
}

func (l *expressLog) get(arn string) *Execution {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e := l.byARN[arn]; e != nil {
		cp := *e
		return &cp
	}
	return nil
}

func (l *expressLog) list(machineARN string) []*Execution {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Execution
	for _, e := range l.byARN {
		if e.StateMachineARN == machineARN {
			cp := *e
			out = append(out, &cp)
		}
	}
	return out
}
