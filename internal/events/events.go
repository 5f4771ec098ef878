// Package events owns the event-driven half of Nimbus: triggers that turn
// outside happenings into CloudEvents and CloudEvents into invocations
// (schedules, JetStream streams and NATS subjects, webhooks), the event bus
// with its EventBridge-style rules, and the management API that stores
// triggers and rules in the nimbus_triggers bucket.
//
// Every node runs every trigger; the work is shared through JetStream
// (durable consumers for streams and the bus, a claimed key per schedule
// tick), so a tick fires once and a record is handled once however many
// nodes there are. Invocations started by schedules, webhooks and rules go
// through the async queue (package async), which brings retries, the DLQ
// and outcome tracking; stream batches are invoked synchronously, because
// their acknowledgements depend on the result.
//
// It does not own the building blocks it composes: patterns (pattern),
// schedule expressions (schedule), signatures (webhook) and the CloudEvents
// edge (cloudevent) are subpackages.
package events

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/store"
)

// Names of the buckets and streams.
const (
	TriggersBucket = "nimbus_triggers"
	StateBucket    = "nimbus_schedule_state"
	TicksBucket    = "nimbus_schedule_ticks"
	BusStream      = "NIMBUS_EVENTS"
	BusPrefix      = "events."
	keyFunction    = "fn."
	keyRule        = "rule."
)

// Catalog resolves functions (the registry).
type Catalog interface {
	Get(name string) (*function.Spec, error)
}

// Invoker runs a synchronous invocation (stream batches).
type Invoker interface {
	Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error)
}

// Queue is the async queue (async.Service).
type Queue interface {
	EnqueueWith(ctx context.Context, req *invoke.Request, opt async.EnqueueOptions) (string, error)
	AddDeadLetter(ctx context.Context, d async.DeadLetterInput) error
}

// Config sizes the Service.
type Config struct {
	// MaxEvent bounds a published event or webhook body (default 256 KiB).
	MaxEvent int
	// BusMaxAge bounds how long bus events are kept (default 24h).
	BusMaxAge time.Duration
	// AckWait is the ack wait of trigger consumers (default 30s).
	AckWait time.Duration
	// DefaultCatchUp is a schedule's catch-up window when it sets none
	// (default 1h).
	DefaultCatchUp time.Duration
	// LookupEnv reads the node's environment for webhook secrets that the
	// function's env does not hold (default: none).
	LookupEnv func(string) (string, bool)
	Replicas  int
	Metrics   prometheus.Registerer
	Logger    *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Data runs table and bucket triggers (data.go); the node sets it.
	Data DataTriggers
}

func (c *Config) defaults() {
	if c.MaxEvent <= 0 {
		c.MaxEvent = 256 << 10
	}
	if c.BusMaxAge <= 0 {
		c.BusMaxAge = 24 * time.Hour
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.DefaultCatchUp == 0 {
		c.DefaultCatchUp = time.Hour
	}
	if c.LookupEnv == nil {
		c.LookupEnv = func(string) (string, bool) { return "", false }
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Service runs the triggers and rules of one node.
type Service struct {
	cfg   Config
	st    *store.Store
	js    jetstream.JetStream
	cat   Catalog
	inv   Invoker
	queue Queue
	log   *slog.Logger
	m     *metrics

	kv      jetstream.KeyValue
	state   jetstream.KeyValue
	ticks   jetstream.KeyValue
	bus     jetstream.Stream
	watcher jetstream.KeyWatcher
	rules   *ruleEngine

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the running triggers; reconcile holds it while it starts
	// and stops runners, so reconciles never interleave.
	mu       sync.Mutex
	declared map[string][]api.Trigger // function -> triggers
	runners  map[string]runner        // key(function, name) -> runner
	webhooks sync.Map                 // webhook name -> *webhookRunner
}

// runner is a running trigger.
type runner interface {
	spec() api.Trigger
	stop()
	status(ctx context.Context) api.TriggerStatus
}

// New returns a Service; Start opens its buckets and starts its triggers.
func New(cfg Config, st *store.Store, cat Catalog, inv Invoker, queue Queue) *Service {
	cfg.defaults()
	return &Service{cfg: cfg, st: st, js: st.JS, cat: cat, inv: inv, queue: queue, log: cfg.Logger,
		m: newMetrics(cfg.Metrics), declared: map[string][]api.Trigger{}, runners: map[string]runner{}}
}

// Start opens the buckets and the bus, loads every trigger and rule, starts
// them, and keeps watching for changes made through any node.
func (s *Service) Start(ctx context.Context) error {
	var err error
	s.ctx, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
	if s.kv, err = s.st.KV(ctx, jetstream.KeyValueConfig{Bucket: TriggersBucket, Description: "triggers by function, and event rules",
		History: 5, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas}); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if s.state, err = s.st.KV(ctx, jetstream.KeyValueConfig{Bucket: StateBucket, Description: "last fire time per schedule",
		Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas}); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if s.ticks, err = s.st.KV(ctx, jetstream.KeyValueConfig{Bucket: TicksBucket, Description: "schedule ticks claimed by a node",
		TTL: maxCatchUp + time.Hour, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas}); err != nil {
		return fmt.Errorf("events: %w", err)
	}
	if s.bus, err = s.st.Stream(ctx, jetstream.StreamConfig{
		Name: BusStream, Description: "the event bus: CloudEvents that rules match",
		Subjects: []string{BusPrefix + ">"}, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
		MaxAge: s.cfg.BusMaxAge, Duplicates: 2 * time.Minute, Discard: jetstream.DiscardOld,
		MaxMsgSize: int32(s.cfg.MaxEvent + 16<<10),
	}); err != nil {
		return fmt.Errorf("events: stream %s: %w", BusStream, err)
	}
	s.rules = newRuleEngine(s)
	if err := s.rules.start(ctx); err != nil {
		return err
	}
	w, err := s.kv.WatchAll(s.ctx)
	if err != nil {
		s.rules.stop()
		return fmt.Errorf("events: watch: %w", err)
	}
	s.watcher = w
	// The watcher replays current values, then a nil marker.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		s.apply(e)
	}
	s.reconcile()
	s.wg.Add(1)
	go s.watch()
	return nil
}

// Stop stops every trigger and the rules, waiting for the batches and
// deliveries in flight (bounded by ctx).
func (s *Service) Stop(ctx context.Context) error {
	if s.watcher == nil {
		return nil
	}
	_ = s.watcher.Stop()
	s.cancel()
	done := make(chan struct{})
	go func() {
		s.mu.Lock()
		for k, r := range s.runners {
			r.stop()
			delete(s.runners, k)
		}
		s.mu.Unlock()
		s.rules.stop()
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("events: stop: %w", ctx.Err())
	}
}

func (s *Service) watch() {
	defer s.wg.Done()
	for e := range s.watcher.Updates() {
		if e == nil {
			continue
		}
		s.apply(e)
		s.reconcile()
	}
}

// apply records one change of the bucket in memory.
func (s *Service) apply(e jetstream.KeyValueEntry) {
	key := e.Key()
	del := e.Operation() != jetstream.KeyValuePut
	switch {
	case strings.HasPrefix(key, keyFunction):
		fn := strings.TrimPrefix(key, keyFunction)
		s.mu.Lock()
		defer s.mu.Unlock()
		if del {
			delete(s.declared, fn)
			return
		}
		var doc triggersDoc
		if err := json.Unmarshal(e.Value(), &doc); err != nil {
			s.log.Error("events: unreadable triggers, ignored", "function", fn, "err", err)
			return
		}
		s.declared[fn] = doc.Triggers
	case strings.HasPrefix(key, keyRule):
		name := strings.TrimPrefix(key, keyRule)
		if del {
			s.rules.remove(name)
			return
		}
		var r api.Rule
		if err := json.Unmarshal(e.Value(), &r); err != nil {
			s.log.Error("events: unreadable rule, ignored", "rule", name, "err", err)
			return
		}
		r.Name = name
		if err := s.rules.put(&r); err != nil {
			s.log.Error("events: rule does not compile, ignored", "rule", name, "err", err)
		}
	}
}

type triggersDoc struct {
	Triggers []api.Trigger `json:"triggers"`
	Updated  time.Time     `json:"updated"`
}

func runnerKey(fn, name string) string { return fn + "/" + name }

// reconcile starts, restarts and stops runners so that they match the
// declared triggers.
func (s *Service) reconcile() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return
	}
	want := map[string]bool{}
	for fn, ts := range s.declared {
		for _, t := range ts {
			k := runnerKey(fn, t.Name)
			want[k] = true
			if r, ok := s.runners[k]; ok {
				if sameTrigger(r.spec(), t) {
					continue
				}
				if old := r.spec(); old.Table != t.Table || old.Bucket != t.Bucket || old.Stream != t.Stream || old.Subject != t.Subject {
					s.retire(r)
				} else {
					r.stop()
				}
				delete(s.runners, k)
			}
			r, err := s.startRunner(fn, t)
			if err != nil {
				s.log.Error("events: trigger not started", "function", fn, "trigger", t.Name, "err", err)
				r = &failedRunner{fn: fn, t: t, err: err}
			}
			s.runners[k] = r
		}
	}
	for k, r := range s.runners {
		if !want[k] {
			s.retire(r)
			delete(s.runners, k)
		}
	}
}

// retire stops the runner of a trigger that is gone, or reads another
// source now (table, bucket, stream or subject). A stream, table or bucket
// trigger's durable position goes with it (every node running it tries;
// the first deletes it).
func (s *Service) retire(r runner) {
	rm, ok := r.(interface{ remove(context.Context) })
	if !ok {
		r.stop()
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
	defer cancel()
	rm.remove(ctx)
}

func sameTrigger(a, b api.Trigger) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func (s *Service) startRunner(fn string, t api.Trigger) (runner, error) {
	switch t.Kind() {
	case api.KindSchedule:
		return s.startSchedule(fn, t)
	case api.KindStream, api.KindSubject:
		return s.startStream(fn, t)
	case api.KindWebhook:
		return s.startWebhook(fn, t)
	case api.KindTable, api.KindBucket:
		return s.startData(fn, t)
	}
	return nil, fmt.Errorf("unknown kind of trigger")
}

// failedRunner stands for a trigger that could not start, so that
// `nimbus triggers` shows why.
type failedRunner struct {
	fn  string
	t   api.Trigger
	err error
}

func (f *failedRunner) spec() api.Trigger { return f.t }
func (f *failedRunner) stop()             {}
func (f *failedRunner) status(context.Context) api.TriggerStatus {
	return api.TriggerStatus{Function: f.fn, Name: f.t.Name, Kind: f.t.Kind(), Trigger: f.t, State: "error: " + f.err.Error()}
}

// PutTriggers replaces the triggers of fn (none removes them) and reports
// what changed. Names default to "<function>-<index>".
//
// # Errors
//
// A *function.FieldError naming the field ("triggers[1].schedule"), or
// wrapping function.ErrNotFound when fn does not exist, or
// function.ErrConflict when a webhook name is taken by another function.
func (s *Service) PutTriggers(ctx context.Context, fn string, ts []api.Trigger) (string, error) {
	if _, err := s.cat.Get(fn); err != nil {
		return "", err
	}
	names := map[string]bool{}
	for i := range ts {
		t := &ts[i]
		if t.Name == "" {
			t.Name = fmt.Sprintf("%s-%d", fn, i)
		}
		if err := t.Validate(fmt.Sprintf("triggers[%d]", i)); err != nil {
			return "", err
		}
		if names[t.Name] {
			return "", function.Invalid(fmt.Sprintf("triggers[%d].name", i), "%q is used twice", t.Name)
		}
		names[t.Name] = true
		if t.Webhook != "" {
			if owner := s.webhookOwner(t.Webhook); owner != "" && owner != fn {
				return "", fmt.Errorf("triggers[%d].webhook: %q belongs to function %s: %w", i, t.Webhook, owner, function.ErrConflict)
			}
		}
	}
	key := keyFunction + fn
	old, err := s.kv.Get(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("triggers of %s: %w", fn, err)
	}
	if len(ts) == 0 {
		if old == nil {
			return "unchanged", nil
		}
		if err := s.kv.Delete(ctx, key); err != nil {
			return "", fmt.Errorf("triggers of %s: %w", fn, err)
		}
		s.mu.Lock()
		delete(s.declared, fn)
		s.mu.Unlock()
		s.reconcile()
		return "deleted", nil
	}
	change := "created"
	if old != nil {
		var doc triggersDoc
		if json.Unmarshal(old.Value(), &doc) == nil && sameTriggers(doc.Triggers, ts) {
			return "unchanged", nil
		}
		change = "updated"
	}
	b, _ := json.Marshal(triggersDoc{Triggers: ts, Updated: time.Now().UTC()})
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return "", fmt.Errorf("triggers of %s: %w", fn, err)
	}
	// Apply here at once rather than when the watch delivers it, so that a
	// deploy followed by a publish or a webhook call finds the trigger.
	s.mu.Lock()
	s.declared[fn] = ts
	s.mu.Unlock()
	s.reconcile()
	return change, nil
}

func sameTriggers(a, b []api.Trigger) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func (s *Service) webhookOwner(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fn, ts := range s.declared {
		for _, t := range ts {
			if t.Webhook == name {
				return fn
			}
		}
	}
	return ""
}

// Triggers returns every trigger with its state on this node, ordered by
// function and name; fn, when set, selects one function's.
func (s *Service) Triggers(ctx context.Context, fn string) []api.TriggerStatus {
	s.mu.Lock()
	rs := make([]runner, 0, len(s.runners))
	for k, r := range s.runners {
		if fn == "" || strings.HasPrefix(k, fn+"/") {
			rs = append(rs, r)
		}
	}
	s.mu.Unlock()
	out := make([]api.TriggerStatus, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.status(ctx))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Function != out[j].Function {
			return out[i].Function < out[j].Function
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// PutRule creates or updates a rule and reports what changed.
func (s *Service) PutRule(ctx context.Context, name string, r *api.Rule) (string, error) {
	if err := api.ValidateRuleName(name); err != nil {
		return "", err
	}
	if err := r.Validate(""); err != nil {
		return "", err
	}
	r.Name = ""
	key := keyRule + name
	old, err := s.kv.Get(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", fmt.Errorf("rule %s: %w", name, err)
	}
	change := "created"
	if old != nil {
		var o api.Rule
		if json.Unmarshal(old.Value(), &o) == nil {
			o.Updated, o.Name = time.Time{}, ""
			if sameRule(&o, r) {
				return "unchanged", nil
			}
		}
		change = "updated"
	}
	r.Updated = time.Now().UTC()
	b, _ := json.Marshal(r)
	if _, err := s.kv.Put(ctx, key, b); err != nil {
		return "", fmt.Errorf("rule %s: %w", name, err)
	}
	r.Name = name
	if err := s.rules.put(r); err != nil {
		return "", err
	}
	return change, nil
}

func sameRule(a, b *api.Rule) bool {
	// Patterns compare by meaning, not spacing.
	var pa, pb any
	_ = json.Unmarshal(a.Pattern, &pa)
	_ = json.Unmarshal(b.Pattern, &pb)
	x, _ := json.Marshal([]any{pa, a.Description, a.Targets, a.Disabled})
	y, _ := json.Marshal([]any{pb, b.Description, b.Targets, b.Disabled})
	return string(x) == string(y)
}

// Rules returns every rule, by name.
func (s *Service) Rules() []api.Rule { return s.rules.list() }

// Rule returns one rule.
func (s *Service) Rule(name string) (*api.Rule, error) { return s.rules.get(name) }

// DeleteRule removes a rule.
func (s *Service) DeleteRule(ctx context.Context, name string) error {
	if _, err := s.rules.get(name); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, keyRule+name); err != nil {
		return fmt.Errorf("rule %s: %w", name, err)
	}
	s.rules.remove(name)
	return nil
}

type metrics struct {
	webhooks *prometheus.CounterVec
	records  *prometheus.CounterVec
	ticks    *prometheus.CounterVec
	matches  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_webhook_requests_total", Help: "Webhook requests by webhook and result (accepted, bad_signature, missing_signature, stale, error).",
		}, []string{"webhook", "result"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_trigger_records_total", Help: "Stream and subject trigger records by function and result (ok, retried, dead_lettered).",
		}, []string{"function", "result"}),
		ticks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_schedule_ticks_total", Help: "Schedule ticks by function and result (fired, missed).",
		}, []string{"function", "result"}),
		matches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "nimbus_rule_matches_total", Help: "Rule target deliveries of bus events.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.webhooks, m.records, m.ticks, m.matches} {
			_ = reg.Register(c) // a second node in one process (tests) keeps its own
		}
	}
	return m
}
