// Package workflow runs Amazon States Language state machines on Nimbus: the
// catalogue of state machines, the durable executor of Standard workflows,
// the in-memory runner of Express workflows, and the Step Functions API
// (JSON 1.0, X-Amz-Target: AWSStepFunctions.*) the gateway serves.
//
// The language itself (parsing, validation, every state type, JSONPath,
// JSONata, retries and catchers) belongs to the pure interpreter in package
// asl; this package owns only I/O around it:
//
//   - State machines live in the KV bucket nimbus_workflows (sm.<name>), with
//     every definition they ever had under def.<sha256>, so an execution keeps
//     running the definition it started with after an UpdateStateMachine.
//   - A Standard execution is a summary in nimbus_executions (status, input,
//     output, error) and, while it runs, its durable state in nimbus_wf_state:
//     the interpreter's snapshot after the last step, the owning node and the
//     executor's own deadlines. History events go to the NIMBUS_WF_HISTORY
//     stream, one message per step. A step is every transition the
//     interpreter can make before it waits for outside work (a task, a
//     timer, a task token), so a 100-state Pass chain is one write, yet the
//     state after each externally visible step is stored before acting on it.
//   - Waits, retry backoffs and deadlines are entries in one timer heap served
//     by one goroutine; nothing holds a goroutine while an execution waits.
//   - After a restart (or when another node dies) the node claims the
//     executions in nimbus_wf_state whose owner is itself or gone, restores
//     them, and carries on: timers are re-armed, and tasks that were in flight
//     are invoked again (at least once, as Step Functions documents).
//   - Express executions run in memory (asl.Run) and are never persisted.
//
// It does not own function execution (package invoke does), nor HTTP routing
// beyond its own handler (package gateway registers it).
package workflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/events/cloudevent"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/store"
)

// Region and Account appear in every ARN Nimbus hands out; they are the
// values AWS SDKs and local tools conventionally use for emulators.
const (
	Region  = "us-east-1"
	Account = "000000000000"
)

// Bucket, stream and subject names.
const (
	MachinesBucket  = "nimbus_workflows"
	ExecBucket      = "nimbus_executions"
	StateBucket     = "nimbus_wf_state"
	TokensBucket    = "nimbus_wf_tokens"
	NodesBucket     = "nimbus_wf_nodes"
	SnapshotsBucket = "nimbus_wf_snapshots"
	HistoryStream   = "NIMBUS_WF_HISTORY"
	HistorySubject  = "nimbus.wf.history."
	controlSubject  = "nimbus.wf.ctl."
)

// Invoker runs functions for Task states (the invoke package's Invoker).
type Invoker interface {
	Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error)
}

// EventPublisher stores an event on the event bus (or on a subject a
// trigger reads), for the nimbus:events:publish resource: the events
// service. It is optional: without one that resource fails with
// States.TaskFailed.
type EventPublisher interface {
	Publish(ctx context.Context, subject string, e cloudevent.Event) (*api.Published, error)
}

// Credentials looks up the secret of an access key id (keys.Keyring).
type Credentials interface {
	Lookup(accessKeyID string) (secret string, ok bool)
}

// Config configures the Service.
type Config struct {
	Store   *store.Store
	Invoker Invoker
	Events  EventPublisher
	// DataDir keeps this node's stable id (workflow-node.id), so a node
	// restarted on the same directory resumes its executions at once.
	DataDir string
	// NodeID overrides the id kept in DataDir (tests).
	NodeID string
	// Token and Dev decide who may call the Step Functions API: in dev mode
	// anyone; otherwise the admin bearer token.
	Token string
	Dev   bool
	// Credentials, when set, looks up the secrets of access keys, so AWS
	// SDKs can sign requests with SigV4; without it only the bearer token
	// is accepted outside dev mode.
	Credentials Credentials
	// MaxTasks bounds the task invocations in flight on this node (default 512).
	MaxTasks int
	// Retention bounds how long finished executions and history are kept
	// (default 90 days, as Step Functions keeps them).
	Retention time.Duration
	// ExpressKeep is how many finished Express executions are remembered for
	// DescribeExecution and ListExecutions (default 1000).
	ExpressKeep int
	// LeaseInterval is how often the node announces itself and looks for
	// executions orphaned by dead nodes (default 5s; dead after 3 intervals).
	LeaseInterval time.Duration
	Logger        *slog.Logger
}

func (c *Config) defaults() error {
	if c.Store == nil || c.Invoker == nil {
		return errors.New("workflow: a store and an invoker are required")
	}
	if c.MaxTasks <= 0 {
		c.MaxTasks = 512
	}
	if c.Retention <= 0 {
		c.Retention = 90 * 24 * time.Hour
	}
	if c.ExpressKeep <= 0 {
		c.ExpressKeep = 1000
	}
	if c.LeaseInterval <= 0 {
		c.LeaseInterval = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Service is the workflow engine of one node.
type Service struct {
	cfg    Config
	log    *slog.Logger
	st     *store.Store
	js     jetstream.JetStream
	nodeID string

	machinesKV jetstream.KeyValue
	execKV     jetstream.KeyValue
	stateKV    jetstream.KeyValue
	tokensKV   jetstream.KeyValue
	nodesKV    jetstream.KeyValue
	snapshots  jetstream.ObjectStore
	history    jetstream.Stream
	maxPayload int

	machines *catalog
	timers   *timerHeap
	express  *expressLog
	taskSem  chan struct{}

	mu      sync.Mutex
	runs    map[string]*run // Standard executions this node drives, by key
	loading map[string]chan struct{}

	ctx      context.Context // cancelled by Stop: ends tasks, timers, drivers
	cancel   context.CancelFunc
	wg       sync.WaitGroup // every goroutine the service starts
	gmu      sync.Mutex     // guards stopping against wg.Add
	stopping bool
	ctlSub   interface{ Unsubscribe() error }
}

// New returns a Service; Start opens its buckets and resumes executions.
func New(cfg Config) (*Service, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Service{
		cfg: cfg, log: cfg.Logger, st: cfg.Store, js: cfg.Store.JS,
		runs: map[string]*run{}, loading: map[string]chan struct{}{},
		express: newExpressLog(cfg.ExpressKeep), taskSem: make(chan struct{}, cfg.MaxTasks),
	}
	s.machines = newCatalog(s)
	return s, nil
}

// NodeID is this node's id as an execution owner.
func (s *Service) NodeID() string { return s.nodeID }

// Start opens the buckets and the history stream, loads the catalogue,
// announces the node and resumes the executions it owns (or that dead nodes
// left behind). Everything it starts is stopped by Stop.
func (s *Service) Start(ctx context.Context) (err error) {
	s.nodeID = s.cfg.NodeID
	if s.nodeID == "" {
		if s.nodeID, err = loadOrCreateNodeID(s.cfg.DataDir); err != nil {
			return err
		}
	}
	if err := s.open(ctx); err != nil {
		return err
	}
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			s.gmu.Lock()
			s.stopping = true
			s.gmu.Unlock()
			s.cancel()
			s.machines.stop()
			s.wg.Wait()
		}
	}()
	if err := s.machines.start(ctx); err != nil {
		return err
	}
	s.timers = newTimerHeap(s.fireTimer)
	s.goFunc(func() { s.timers.run(s.ctx) })
	if err := s.announce(ctx); err != nil {
		return err
	}
	sub, err := s.st.NC.Subscribe(controlSubject+s.nodeID, s.serveControl)
	if err != nil {
		return fmt.Errorf("workflow: control subscription: %w", err)
	}
	s.ctlSub = sub
	if err := s.recover(ctx); err != nil {
		return err
	}
	s.goFunc(s.maintain)
	return nil
}

func (s *Service) open(ctx context.Context) (err error) {
	kv := func(name, desc string, history uint8, ttl time.Duration) jetstream.KeyValue {
		if err != nil {
			return nil
		}
		var b jetstream.KeyValue
		b, err = s.st.KV(ctx, jetstream.KeyValueConfig{Bucket: name, Description: desc, History: history, TTL: ttl, Storage: jetstream.FileStorage})
		return b
	}
	s.machinesKV = kv(MachinesBucket, "state machines (sm.<name>) and their definitions (def.<sha256>)", 1, 0)
	s.execKV = kv(ExecBucket, "workflow executions: status, input, output", 1, s.cfg.Retention)
	s.stateKV = kv(StateBucket, "durable state of running workflow executions", 1, 0)
	s.tokensKV = kv(TokensBucket, "task tokens of waiting workflow tasks", 1, 0)
	s.nodesKV = kv(NodesBucket, "workflow executor nodes alive", 1, 3*s.cfg.LeaseInterval)
	if err != nil {
		return fmt.Errorf("workflow: %w", err)
	}
	s.snapshots, err = s.st.ObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: SnapshotsBucket, Description: "workflow snapshots too large for a KV value", Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("workflow: snapshots bucket: %w", err)
	}
	s.history, err = s.st.Stream(ctx, jetstream.StreamConfig{
		Name: HistoryStream, Description: "workflow execution history, one message per step",
		Subjects: []string{HistorySubject + ">"}, Storage: jetstream.FileStorage, Replicas: s.st.Replicas(),
		MaxAge: s.cfg.Retention, MaxBytes: 8 << 30, Discard: jetstream.DiscardOld,
	})
	if err != nil {
		return fmt.Errorf("workflow: history stream: %w", err)
	}
	// Leave room for headers and the envelope below the server's limit.
	s.maxPayload = int(s.st.NC.MaxPayload()) - 16<<10
	if s.maxPayload > 4<<20 {
		s.maxPayload = 4 << 20
	}
	return nil
}

// goFunc starts a goroutine that Stop waits for. Once Stop has begun it
// starts nothing and reports false.
func (s *Service) goFunc(f func()) bool {
	s.gmu.Lock()
	defer s.gmu.Unlock()
	if s.stopping {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// Stop ends the timers, the drivers and in-flight tasks, and waits for every
// goroutine. The state of running executions is already durable; a later
// Start (here or on another node) resumes them.
func (s *Service) Stop(ctx context.Context) error {
	if s.cancel == nil {
		return nil
	}
	if s.ctlSub != nil {
		s.ctlSub.Unsubscribe() //nolint:errcheck // the connection may be closing
	}
	s.gmu.Lock()
	s.stopping = true
	s.gmu.Unlock()
	s.cancel()
	s.machines.stop()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("workflow: stop: %w", ctx.Err())
	}
	// Best effort: let other nodes take over at once rather than after the
	// lease expires.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	s.nodesKV.Delete(dctx, s.nodeID) //nolint:errcheck // expires anyway
	return nil
}

// loadOrCreateNodeID keeps a random node id in dir, so the node that owned
// executions before a restart owns them after it.
func loadOrCreateNodeID(dir string) (string, error) {
	if dir == "" {
		return randomID(), nil
	}
	path := filepath.Join(dir, "workflow-node.id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("workflow: read node id: %w", err)
	}
	id := randomID()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("workflow: node id: %w", err)
	}
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("workflow: write node id: %w", err)
	}
	return id, nil
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:]) //nolint:errcheck // crypto/rand does not fail
	return hex.EncodeToString(b[:])
}

// newUUID returns a random UUID (execution names, revision ids).
func newUUID() string { return invoke.NewID() }

// ---- ARNs and names ----

const arnPrefix = "arn:aws:states:"

// MachineARN is the ARN of the state machine name.
func MachineARN(name string) string {
	return arnPrefix + Region + ":" + Account + ":stateMachine:" + name
}

// ExecutionARN is the ARN of a Standard execution.
func ExecutionARN(machine, name string) string {
	return arnPrefix + Region + ":" + Account + ":execution:" + machine + ":" + name
}

func expressARN(machine, name string) string {
	return arnPrefix + Region + ":" + Account + ":express:" + machine + ":" + name + ":" + newUUID()
}

// parseARN splits arn:aws:states:REGION:ACCOUNT:KIND:REST into KIND and the
// colon-separated rest. Region and account are not checked, so ARNs written
// for AWS work unchanged.
func parseARN(arn string) (kind string, parts []string, ok bool) {
	rest, ok := strings.CutPrefix(arn, arnPrefix)
	if !ok {
		return "", nil, false
	}
	f := strings.Split(rest, ":")
	if len(f) < 4 {
		return "", nil, false
	}
	return f[2], f[3:], true
}

// machineName accepts a state machine ARN (or, for the CLI, a bare name).
func machineName(arnOrName string) (string, error) {
	if !strings.HasPrefix(arnOrName, "arn:") {
		if validName(arnOrName) {
			return arnOrName, nil
		}
		return "", apiErr(errInvalidArn, "Invalid Arn: '%s'", arnOrName)
	}
	kind, parts, ok := parseARN(arnOrName)
	if !ok || kind != "stateMachine" || len(parts) < 1 || !validName(parts[0]) {
		return "", apiErr(errInvalidArn, "Invalid Arn: '%s'", arnOrName)
	}
	return parts[0], nil
}

// execRef is a parsed execution ARN.
type execRef struct {
	machine, name string
	express       bool
	arn           string
}

func parseExecutionARN(arn string) (execRef, error) {
	kind, parts, ok := parseARN(arn)
	if ok && kind == "execution" && len(parts) == 2 && validName(parts[0]) && validName(parts[1]) {
		return execRef{machine: parts[0], name: parts[1], arn: ExecutionARN(parts[0], parts[1])}, nil
	}
	if ok && kind == "express" && len(parts) == 3 {
		return execRef{machine: parts[0], name: parts[1], express: true, arn: arn}, nil
	}
	return execRef{}, apiErr(errInvalidArn, "Invalid Arn: '%s'", arn)
}

func (r execRef) key() string { return execKey(r.machine, r.name) }

// validName applies Step Functions' naming rule: 1 to 80 characters, none of
// them whitespace, brackets, wildcards, punctuation that ARNs or URLs use, or
// control characters.
func validName(s string) bool {
	if s == "" || len([]rune(s)) > 80 {
		return false
	}
	for _, c := range s {
		if c <= 0x20 || c >= 0x7f && c <= 0x9f || strings.ContainsRune("<>{}[]?*\"#%\\^|~`$&,;:/", c) {
			return false
		}
	}
	return true
}

// keyPart turns a name into a KV key token: plain names are used as they
// are; others (unicode, dots, '=') are "=" + base64url, which no plain name
// can collide with.
func keyPart(name string) string {
	plain := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			plain = false
			break
		}
	}
	if plain {
		return name
	}
	return "=" + b64.EncodeToString([]byte(name))
}

func execKey(machine, name string) string { return keyPart(machine) + "." + keyPart(name) }
