// Package apigateway is Nimbus's API gateway: the user routes a team declares
// in nimbus.yaml (method + path template -> function), with API Gateway HTTP
// API semantics for events (payload format 2.0, or the raw body), auth (API
// keys, JWT, function authorizers), CORS, rate limits and usage plans.
//
// It owns the API config document (one JetStream KV entry, validated as a
// whole, watched by every node and compiled into an immutable router that is
// swapped in atomically), the API key records, the handler that serves user
// routes, the management endpoints for both, and the node-wide request-id
// and access-log middleware. The building blocks it composes (route matching,
// the 2.0 event, credential checks, CORS, token buckets) live in
// internal/gateway's subpackages; invocation goes through package invoke like
// every other surface; errors become statuses in internal/gateway/errors.go.
//
// See docs/gateway.md for the rules users see.
package apigateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/store"
)

// Bucket and key of the API config document.
const (
	ConfigBucket = "nimbus_api"
	configKey    = "config"
)

// Invoker runs functions (package invoke).
type Invoker interface {
	Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error)
}

// Config configures a Service.
type Config struct {
	Store     *store.Store
	Invoker   Invoker
	Functions Catalog
	// MaxBody bounds request bodies of user routes (default 6 MiB): 413
	// beyond.
	MaxBody int64
	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto are believed.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger
}

// Service is the API gateway of one node.
type Service struct {
	cfg  Config
	log  *slog.Logger
	kv   jetstream.KeyValue
	keys *keyStore

	cur atomic.Pointer[router]
	// mu serializes compile-and-swap, so two updates (a local PUT and the
	// watch) cannot swap in an older router after a newer one.
	mu sync.Mutex

	watcher jetstream.KeyWatcher
	done    chan struct{}
}

// New returns a Service; Start opens its buckets and loads the config.
func New(cfg Config) *Service {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 6 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
}

// Start opens the buckets, loads the API config and the API keys, and keeps
// watching both, so changes made through any node apply on this one.
func (s *Service) Start(ctx context.Context) error {
	var err error
	s.kv, err = s.cfg.Store.KV(ctx, jetstream.KeyValueConfig{
		Bucket: ConfigBucket, Description: "the API gateway's config: routes, auth, CORS, usage plans",
		History: 10, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("apigateway: %w", err)
	}
	if s.keys, err = openKeys(ctx, s.cfg.Store, s.log); err != nil {
		return fmt.Errorf("apigateway: %w", err)
	}
	if err := s.keys.start(ctx); err != nil {
		return err
	}
	w, err := s.kv.Watch(context.WithoutCancel(ctx), configKey)
	if err != nil {
		s.keys.stop(ctx)
		return fmt.Errorf("apigateway: watch: %w", err)
	}
	s.watcher = w
	for e := range w.Updates() {
		if e == nil {
			break // replayed the current value
		}
		s.apply(e)
	}
	go func() {
		defer close(s.done)
		for e := range w.Updates() {
			if e != nil {
				s.apply(e)
			}
		}
	}()
	return nil
}

// Stop ends the watches.
func (s *Service) Stop(ctx context.Context) error {
	var errs []error
	if s.watcher != nil {
		errs = append(errs, s.watcher.Stop())
		select {
		case <-s.done:
		case <-ctx.Done():
		}
	}
	if s.keys != nil {
		errs = append(errs, s.keys.stop(ctx))
	}
	return errors.Join(errs...)
}

// apply compiles a config delivered by the watch. A config this node cannot
// compile (written by a newer node, say) is logged and the routes in force
// stay: serving yesterday's routes beats serving none.
func (s *Service) apply(e jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cur.Load()
	if prev != nil && prev.revision >= e.Revision() {
		return // a local write already applied it
	}
	if e.Operation() != jetstream.KeyValuePut {
		s.cur.Store(&router{revision: e.Revision()})
		return
	}
	var cfg api.APIConfig
	if err := json.Unmarshal(e.Value(), &cfg); err != nil {
		s.log.Error("apigateway: unreadable API config; keeping the routes in force", "revision", e.Revision(), "err", err)
		return
	}
	cfg.Revision = e.Revision()
	// Functions are not checked here: one deleted since the PUT makes its
	// route fail, not the whole API.
	rt, err := compile(&cfg, prev, nil)
	if err != nil {
		s.log.Error("apigateway: API config does not compile; keeping the routes in force", "revision", e.Revision(), "err", err)
		return
	}
	s.cur.Store(rt)
	s.log.Info("apigateway: routes updated", "revision", e.Revision(), "routes", len(rt.entries))
}

// stored is the config as kept in KV, without the node-set fields, so two
// PUTs of the same document compare equal.
func stored(cfg *api.APIConfig) []byte {
	c := *cfg
	c.Revision, c.Updated = 0, time.Time{}
	b, _ := json.Marshal(&c)
	return b
}

// Put validates cfg as a whole, stores it and applies it on this node at
// once (other nodes follow through the watch). Nothing changes when
// validation fails.
//
// # Errors
// *function.FieldError for an invalid config (conflicting routes, unknown
// authorizer or function, a usage plan still used by API keys);
// function.ErrConflict when another PUT won a race.
func (s *Service) Put(ctx context.Context, cfg *api.APIConfig) (*api.APIConfig, string, error) {
	cfg.Revision, cfg.Updated = 0, time.Time{}
	for i := range cfg.Routes {
		if cfg.Routes[i].Scopes != nil && len(cfg.Routes[i].Scopes) == 0 {
			cfg.Routes[i].Scopes = nil
		}
	}
	if cfg.Routes == nil {
		cfg.Routes = []api.Route{}
	}
	s.mu.Lock()
	prev := s.cur.Load()
	s.mu.Unlock()
	rt, err := compile(cfg, prev, s.cfg.Functions)
	if err != nil {
		return nil, "", err
	}
	for _, k := range s.keys.list() {
		if k.Plan != "" && !k.Revoked && rt.plans[k.Plan] == nil {
			return nil, "", function.Invalid("usage_plans", "plan %q is used by API key %s (%s): keep the plan or revoke the key first", k.Plan, k.ID, k.Name)
		}
	}

	entry, err := s.kv.Get(ctx, configKey)
	change := "updated"
	var rev uint64
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		change = "created"
		now := time.Now().UTC()
		cfg.Updated = now
		if rev, err = s.kv.Create(ctx, configKey, mustJSON(cfg)); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				return nil, "", fmt.Errorf("API config created concurrently, try again: %w", function.ErrConflict)
			}
			return nil, "", fmt.Errorf("store API config: %w", err)
		}
	case err != nil:
		return nil, "", fmt.Errorf("read API config: %w", err)
	default:
		var old api.APIConfig
		if err := json.Unmarshal(entry.Value(), &old); err == nil && bytes.Equal(stored(&old), stored(cfg)) {
			old.Revision = entry.Revision()
			return &old, "unchanged", nil
		}
		cfg.Updated = time.Now().UTC()
		if rev, err = s.kv.Update(ctx, configKey, mustJSON(cfg), entry.Revision()); err != nil {
			return nil, "", fmt.Errorf("API config updated concurrently, try again: %w", function.ErrConflict)
		}
	}
	cfg.Revision = rev
	rt.revision = rev

	s.mu.Lock()
	if cur := s.cur.Load(); cur == nil || cur.revision < rev {
		s.cur.Store(rt)
	}
	s.mu.Unlock()
	return cfg, change, nil
}

// Get returns the stored config (secrets included; callers redact).
func (s *Service) Get(ctx context.Context) (*api.APIConfig, error) {
	entry, err := s.kv.Get(ctx, configKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &api.APIConfig{Routes: []api.Route{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read API config: %w", err)
	}
	var cfg api.APIConfig
	if err := json.Unmarshal(entry.Value(), &cfg); err != nil {
		return nil, fmt.Errorf("API config is unreadable: %w", err)
	}
	cfg.Revision = entry.Revision()
	return &cfg, nil
}

// Routes lists the routes in force on this node, in the order they were
// declared.
func (s *Service) Routes() api.RouteList {
	out := api.RouteList{Routes: []api.RouteInfo{}}
	rt := s.cur.Load()
	if rt == nil {
		return out
	}
	out.Revision = rt.revision
	for _, e := range rt.entries {
		out.Routes = append(out.Routes, e.info)
	}
	return out
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain data types
	}
	return b
}
