package workflow

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

// Types of state machines.
const (
	TypeStandard = "STANDARD"
	TypeExpress  = "EXPRESS"
)

// StateMachine is a stored state machine.
type StateMachine struct {
	Name        string    `json:"name"`
	ARN         string    `json:"arn"`
	Type        string    `json:"type"`
	Definition  string    `json:"definition"`
	DefHash     string    `json:"defHash"`
	RoleArn     string    `json:"roleArn,omitempty"`
	Description string    `json:"description,omitempty"`
	RevisionID  string    `json:"revisionId"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
}

// catalog is the in-memory view of the state machines, kept current by a
// watch of sm.> (the registry's pattern), plus a cache of parsed definitions
// by hash, shared by every execution of the same definition.
type catalog struct {
	s *Service

	mu       sync.RWMutex
	machines map[string]*StateMachine
	parsed   map[string]*asl.Machine // by DefHash

	watcher jetstream.KeyWatcher
	done    chan struct{}
}

func newCatalog(s *Service) *catalog {
	return &catalog{s: s, machines: map[string]*StateMachine{}, parsed: map[string]*asl.Machine{}, done: make(chan struct{})}
}

func (c *catalog) start(ctx context.Context) error {
	w, err := c.s.machinesKV.Watch(context.WithoutCancel(ctx), "sm.>")
	if err != nil {
		return fmt.Errorf("workflow: watch state machines: %w", err)
	}
	c.watcher = w
	for e := range w.Updates() {
		if e == nil {
			break
		}
		c.apply(e)
	}
	go func() {
		defer close(c.done)
		for e := range w.Updates() {
			if e != nil {
				c.apply(e)
			}
		}
	}()
	return nil
}

func (c *catalog) stop() {
	if c.watcher != nil {
		c.watcher.Stop() //nolint:errcheck // stopping
		<-c.done
	}
}

func (c *catalog) apply(e jetstream.KeyValueEntry) {
	key := strings.TrimPrefix(e.Key(), "sm.")
	if e.Operation() != jetstream.KeyValuePut {
		c.mu.Lock()
		for name := range c.machines {
			if keyPart(name) == key {
				delete(c.machines, name)
			}
		}
		c.mu.Unlock()
		return
	}
	sm := new(StateMachine)
	if err := json.Unmarshal(e.Value(), sm); err != nil {
		c.s.log.Error("workflow: skipping unreadable state machine", "key", e.Key(), "err", err)
		return
	}
	c.mu.Lock()
	if old := c.machines[sm.Name]; old == nil || !old.Updated.After(sm.Updated) {
		c.machines[sm.Name] = sm
	}
	c.mu.Unlock()
}

func (c *catalog) get(name string) (*StateMachine, error) {
	c.mu.RLock()
	sm := c.machines[name]
	c.mu.RUnlock()
	if sm == nil {
		return nil, apiErr(errStateMachineDoesNotExist, "State Machine Does Not Exist: '%s'", MachineARN(name))
	}
	return sm, nil
}

func (c *catalog) list() []*StateMachine {
	c.mu.RLock()
	out := make([]*StateMachine, 0, len(c.machines))
	for _, sm := range c.machines {
		out = append(out, sm)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func defHash(def []byte) string {
	sum := sha256.Sum256(def)
	return hex.EncodeToString(sum[:])
}

// machine returns the parsed definition with hash h, reading it from the
// bucket when this node has not parsed it yet (an execution started on
// another node, or before a restart).
func (c *catalog) machine(ctx context.Context, h string) (*asl.Machine, error) {
	c.mu.RLock()
	m := c.parsed[h]
	c.mu.RUnlock()
	if m != nil {
		return m, nil
	}
	e, err := c.s.machinesKV.Get(ctx, "def."+h)
	if err != nil {
		return nil, fmt.Errorf("workflow: definition %s: %w", h, err)
	}
	m, err = asl.Parse(e.Value())
	if err != nil {
		return nil, fmt.Errorf("workflow: definition %s: %w", h, err)
	}
	c.mu.Lock()
	c.parsed[h] = m
	c.mu.Unlock()
	return m, nil
}

// parse validates a definition and caches the result by hash.
func (c *catalog) parse(def string) (*asl.Machine, string, error) {
	h := defHash([]byte(def))
	c.mu.RLock()
	m := c.parsed[h]
	c.mu.RUnlock()
	if m != nil {
		return m, h, nil
	}
	m, err := asl.Parse([]byte(def))
	if err != nil {
		var de *asl.DefinitionError
		if errors.As(err, &de) {
			return nil, "", &Error{Type: errInvalidDefinition, Message: de.Error()}
		}
		return nil, "", apiErr(errInvalidDefinition, "Invalid State Machine Definition: %v", err)
	}
	c.mu.Lock()
	c.parsed[h] = m
	c.mu.Unlock()
	return m, h, nil
}

// storeDefinition keeps def under its hash (once).
func (c *catalog) storeDefinition(ctx context.Context, h, def string) error {
	_, err := c.s.machinesKV.Create(ctx, "def."+h, []byte(def))
	if err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("workflow: store definition: %w", err)
	}
	return nil
}

// CreateStateMachine validates and stores a state machine. Creating one that
// exists with the same definition, type and role returns it (the API is
// idempotent); a different one is StateMachineAlreadyExists.
func (s *Service) CreateStateMachine(ctx context.Context, name, definition, typ, roleArn string) (*StateMachine, error) {
	if !validName(name) {
		return nil, apiErr(errInvalidName, "Invalid Name: '%s'", name)
	}
	if typ == "" {
		typ = TypeStandard
	}
	if typ != TypeStandard && typ != TypeExpress {
		return nil, apiErr(errValidation, "1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [STANDARD, EXPRESS]", typ)
	}
	_, h, err := s.machines.parse(definition)
	if err != nil {
		return nil, err
	}
	if old, err := s.machines.get(name); err == nil {
		if old.DefHash == h && old.Type == typ && old.RoleArn == roleArn {
			return old, nil
		}
		return nil, apiErr(errStateMachineAlreadyExists, "State Machine Already Exists: '%s'", old.ARN)
	}
	if err := s.machines.storeDefinition(ctx, h, definition); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	sm := &StateMachine{
		Name: name, ARN: MachineARN(name), Type: typ, Definition: definition, DefHash: h,
		RoleArn: roleArn, RevisionID: newUUID(), Created: now, Updated: now,
	}
	b, _ := json.Marshal(sm)
	if _, err := s.machinesKV.Create(ctx, "sm."+keyPart(name), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return nil, apiErr(errStateMachineAlreadyExists, "State Machine Already Exists: '%s'", sm.ARN)
		}
		return nil, fmt.Errorf("workflow: create state machine %s: %w", name, err)
	}
	s.machines.mu.Lock()
	s.machines.machines[name] = sm
	s.machines.mu.Unlock()
	return sm, nil
}

// UpdateStateMachine changes the definition and/or the role. Running
// executions keep the definition they started with.
func (s *Service) UpdateStateMachine(ctx context.Context, arn string, definition, roleArn *string) (*StateMachine, error) {
	name, err := machineName(arn)
	if err != nil {
		return nil, err
	}
	if definition == nil && roleArn == nil {
		return nil, apiErr("MissingRequiredParameter", "Either the definition or the roleArn must be specified")
	}
	var h string
	if definition != nil {
		if _, h, err = s.machines.parse(*definition); err != nil {
			return nil, err
		}
	}
	key := "sm." + keyPart(name)
	e, err := s.machinesKV.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, apiErr(errStateMachineDoesNotExist, "State Machine Does Not Exist: '%s'", MachineARN(name))
	}
	if err != nil {
		return nil, fmt.Errorf("workflow: update state machine %s: %w", name, err)
	}
	sm := new(StateMachine)
	if err := json.Unmarshal(e.Value(), sm); err != nil {
		return nil, fmt.Errorf("workflow: update state machine %s: %w", name, err)
	}
	changed := false
	if definition != nil && h != sm.DefHash {
		if err := s.machines.storeDefinition(ctx, h, *definition); err != nil {
			return nil, err
		}
		sm.Definition, sm.DefHash, changed = *definition, h, true
	}
	if roleArn != nil && *roleArn != sm.RoleArn {
		sm.RoleArn, changed = *roleArn, true
	}
	if !changed {
		return sm, nil
	}
	sm.Updated = time.Now().UTC()
	sm.RevisionID = newUUID()
	b, _ := json.Marshal(sm)
	if _, err := s.machinesKV.Update(ctx, key, b, e.Revision()); err != nil {
		return nil, apiErr("ConflictException", "State machine %s was updated concurrently, try again", name)
	}
	s.machines.mu.Lock()
	s.machines.machines[name] = sm
	s.machines.mu.Unlock()
	return sm, nil
}

// DescribeStateMachine returns a state machine.
func (s *Service) DescribeStateMachine(arn string) (*StateMachine, error) {
	name, err := machineName(arn)
	if err != nil {
		return nil, err
	}
	return s.machines.get(name)
}

// ListStateMachines returns every state machine, by name.
func (s *Service) ListStateMachines() []*StateMachine { return s.machines.list() }

// DeleteStateMachine removes a state machine. As in Step Functions, its
// running executions go on to their end.
func (s *Service) DeleteStateMachine(ctx context.Context, arn string) error {
	name, err := machineName(arn)
	if err != nil {
		return err
	}
	if err := s.machinesKV.Delete(ctx, "sm."+keyPart(name)); err != nil {
		return fmt.Errorf("workflow: delete state machine %s: %w", name, err)
	}
	s.machines.mu.Lock()
	delete(s.machines.machines, name)
	s.machines.mu.Unlock()
	return nil
}
