package asl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// snapshotVersion changes whenever the snapshot layout does.
const snapshotVersion = 1

type snapshot struct {
	Version    int         `json:"version"`
	Context    ExecContext `json:"context"`
	Input      any         `json:"input"`
	Root       *thread     `json:"root"`
	Status     Status      `json:"status"`
	Output     any         `json:"output,omitempty"`
	Err        *Error      `json:"error,omitempty"`
	Now        time.Time   `json:"now"`
	EventID    int64       `json:"eventId"`
	Events     []Event     `json:"events,omitempty"`
	NextAction int64       `json:"nextAction"`
	RandN      uint64      `json:"randN"`
	Timeout    *Action     `json:"timeout,omitempty"`
}

// MarshalJSON writes a complete snapshot of the execution, including history
// events not yet taken with Events.
func (ex *Execution) MarshalJSON() ([]byte, error) {
	return json.Marshal(snapshot{
		Version: snapshotVersion, Context: ex.ctx, Input: ex.input, Root: ex.root,
		Status: ex.status, Output: ex.output, Err: ex.err, Now: ex.now, EventID: ex.eventID,
		Events: ex.events, NextAction: ex.nextAction, RandN: ex.randN, Timeout: ex.timeout,
	})
}

// Restore rebuilds an execution of m from a snapshot written by
// json.Marshal(execution). The machine must be the one the execution was
// started from (the same definition).
func (m *Machine) Restore(data []byte) (*Execution, error) {
	var s snapshot
	if err := unmarshalNumbers(data, &s); err != nil {
		return nil, fmt.Errorf("asl: restore: %w", err)
	}
	if s.Version != snapshotVersion {
		return nil, fmt.Errorf("asl: restore: unsupported snapshot version %d", s.Version)
	}
	if s.Root == nil {
		return nil, fmt.Errorf("asl: restore: snapshot has no root thread")
	}
	ex := &Execution{
		m: m, ctx: s.Context, input: s.Input, root: s.Root, status: s.Status, output: s.Output,
		err: s.Err, now: s.Now, eventID: s.EventID, events: s.Events, nextAction: s.NextAction,
		randN: s.RandN, timeout: s.Timeout, index: map[string]*thread{},
	}
	if err := ex.relink(ex.root, nil); err != nil {
		return nil, fmt.Errorf("asl: restore: %w", err)
	}
	return ex, nil
}

func (ex *Execution) relink(t *thread, parent *thread) error {
	g, ok := ex.m.graphs[t.Graph]
	if !ok {
		return fmt.Errorf("the snapshot refers to graph %q, which this machine does not have", t.Graph)
	}
	t.graph = g
	t.parent = parent
	if t.Phase != phaseDone {
		if _, ok := g.states[t.State]; !ok {
			return fmt.Errorf("the snapshot refers to state %q, which this machine does not have", t.State)
		}
	}
	if t.Action != nil {
		ex.index[t.Action.ID] = t
	}
	for _, c := range t.Children {
		if err := ex.relink(c, t); err != nil {
			return err
		}
	}
	return nil
}

// unmarshalNumbers decodes JSON keeping numbers as json.Number inside any.
func unmarshalNumbers(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return dec.Decode(v)
}
