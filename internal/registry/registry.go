// Package registry owns the catalogue of functions: specs in a JetStream KV
// bucket, code artifacts in the object store, and an in-memory view of both
// kept current by a watch, so the request path never reads JetStream. It does
// not run functions (package pool does) and knows nothing of HTTP.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/store"
)

// Preparer does deploy-time work on code (compile, unpack) and drops it
// again when no function uses the code any more: the runtime, keyed by
// runtime name.
type Preparer interface {
	Prepare(ctx context.Context, spec *function.Spec, code []byte) error
	Forget(digest string)
}

// Change says what Put did.
type Change string

const (
	Created   Change = "created"
	Updated   Change = "updated"
	Unchanged Change = "unchanged"
)

// Registry is the function catalogue of one node.
type Registry struct {
	st        *store.Store
	preparers map[string]Preparer
	log       *slog.Logger

	mu        sync.RWMutex
	specs     map[string]*function.Spec
	listeners []func(name string, spec *function.Spec)

	watcher jetstream.KeyWatcher
	done    chan struct{}

	// Published versions and aliases (versions.go), guarded by mu.
	versions map[string]map[string]*function.Spec
	aliases  map[string]map[string]*function.Alias
	vkv      jetstream.KeyValue
	vwatcher jetstream.KeyWatcher
	vdone    chan struct{}
}

// New returns a registry over st. Start loads and watches the catalogue.
func New(st *store.Store, preparers map[string]Preparer, log *slog.Logger) *Registry {
	return &Registry{
		st: st, preparers: preparers, log: log, specs: map[string]*function.Spec{}, done: make(chan struct{}),
		versions: map[string]map[string]*function.Spec{}, aliases: map[string]map[string]*function.Alias{}, vdone: make(chan struct{}),
	}
}

// OnChange registers fn to be called after a spec is created, updated (spec
// is the new one) or deleted (spec is nil), on this node or another. Register
// before Start.
func (r *Registry) OnChange(fn func(name string, spec *function.Spec)) {
	r.mu.Lock()
	r.listeners = append(r.listeners, fn)
	r.mu.Unlock()
}

// Start loads every spec and keeps watching the bucket. Code of loaded specs
// is prepared in the background so the first invocation after a restart does
// not pay for it.
func (r *Registry) Start(ctx context.Context) error {
	if err := r.startVersions(ctx); err != nil {
		return err
	}
	w, err := r.st.Functions.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return fmt.Errorf("registry: watch: %w", err)
	}
	r.watcher = w
	// The watcher first replays current values, then a nil marker.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		r.apply(e, false)
	}
	go r.watch()
	return nil
}

func (r *Registry) watch() {
	defer close(r.done)
	for e := range r.watcher.Updates() {
		if e != nil {
			r.apply(e, true)
		}
	}
}

func (r *Registry) apply(e jetstream.KeyValueEntry, notify bool) {
	name := e.Key()
	var spec *function.Spec
	if e.Operation() == jetstream.KeyValuePut {
		spec = new(function.Spec)
		if err := json.Unmarshal(e.Value(), spec); err != nil {
			r.log.Error("registry: skipping unreadable spec", "function", name, "err", err)
			return
		}
	}
	r.mu.Lock()
	old := r.specs[name]
	if spec == nil {
		delete(r.specs, name)
	} else {
		r.specs[name] = spec
	}
	listeners := r.listeners
	r.mu.Unlock()
	if spec != nil && (old == nil || old.Code != spec.Code || old.MemoryMB != spec.MemoryMB) {
		go r.prepare(spec)
	}
	if notify || spec != nil {
		for _, fn := range listeners {
			fn(name, spec)
		}
	}
}

// prepare readies code deployed elsewhere (another node, or before a restart).
func (r *Registry) prepare(spec *function.Spec) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, ok := r.preparers[spec.Runtime]
	if !ok {
		return
	}
	code, err := r.st.GetCode(ctx, spec.Code)
	if err == nil {
		err = p.Prepare(ctx, spec, code)
	}
	if err != nil {
		r.log.Warn("registry: background prepare failed", "function", spec.Name, "err", err)
	}
}

// Stop ends the watch.
func (r *Registry) Stop(ctx context.Context) error {
	var errs []error
	if r.vwatcher != nil {
		errs = append(errs, r.vwatcher.Stop())
		select {
		case <-r.vdone:
		case <-ctx.Done():
		}
	}
	if r.watcher != nil {
		errs = append(errs, r.watcher.Stop())
		select {
		case <-r.done:
		case <-ctx.Done():
		}
	}
	return errors.Join(errs...)
}

// Get returns a function's spec from memory.
func (r *Registry) Get(name string) (*function.Spec, error) {
	r.mu.RLock()
	s, ok := r.specs[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, function.ErrNotFound)
	}
	return s, nil
}

// List returns every spec, by name.
func (r *Registry) List() []*function.Spec {
	r.mu.RLock()
	out := make([]*function.Spec, 0, len(r.specs))
	for _, s := range r.specs {
		out = append(out, s)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PutCode stores an artifact and returns its digest.
func (r *Registry) PutCode(ctx context.Context, code []byte) (string, error) {
	if len(code) == 0 {
		return "", function.Invalid("code", "is empty")
	}
	d, _, err := r.st.PutCode(ctx, code)
	return d, err
}

// Put validates spec, prepares its code (compiling it now, not on the first
// request) and stores it. Nothing is stored when any step fails.
func (r *Registry) Put(ctx context.Context, spec function.Spec) (*function.Spec, Change, error) {
	spec.Normalize()
	spec.Version = function.LatestVersion
	if err := spec.Validate(); err != nil {
		return nil, "", err
	}
	p, ok := r.preparers[spec.Runtime]
	if !ok {
		return nil, "", function.Invalid("runtime", "runtime %q is not enabled on this node", spec.Runtime)
	}
	code, err := r.st.GetCode(ctx, spec.Code)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", function.Invalid("code", "no uploaded code has digest %s: upload it first (PUT /api/v1/code)", spec.Code)
	}
	if err != nil {
		return nil, "", err
	}
	if err := p.Prepare(ctx, &spec, code); err != nil {
		return nil, "", fmt.Errorf("deploy %s: %w", spec.Name, err)
	}

	now := time.Now().UTC()
	entry, err := r.st.Functions.Get(ctx, spec.Name)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		spec.Created, spec.Updated = now, now
		b, _ := json.Marshal(&spec)
		if _, err := r.st.Functions.Create(ctx, spec.Name, b); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				return nil, "", fmt.Errorf("deploy %s: created concurrently: %w", spec.Name, function.ErrConflict)
			}
			return nil, "", fmt.Errorf("deploy %s: %w", spec.Name, err)
		}
		r.applyLocal(&spec)
		return &spec, Created, nil
	case err != nil:
		return nil, "", fmt.Errorf("deploy %s: %w", spec.Name, err)
	}
	var old function.Spec
	if err := json.Unmarshal(entry.Value(), &old); err != nil {
		return nil, "", fmt.Errorf("deploy %s: stored spec unreadable: %w", spec.Name, err)
	}
	spec.Created, spec.Updated = old.Created, old.Updated
	if reflect.DeepEqual(normalizedEnv(old), normalizedEnv(spec)) {
		return &old, Unchanged, nil
	}
	spec.Updated = now
	b, _ := json.Marshal(&spec)
	if _, err := r.st.Functions.Update(ctx, spec.Name, b, entry.Revision()); err != nil {
		return nil, "", fmt.Errorf("deploy %s: updated concurrently, try again: %w", spec.Name, function.ErrConflict)
	}
	r.applyLocal(&spec)
	return &spec, Updated, nil
}

// applyLocal makes a write visible to this node at once rather than when the
// watch delivers it, so a deploy followed by an invoke sees the new spec.
func (r *Registry) applyLocal(spec *function.Spec) {
	r.mu.Lock()
	r.specs[spec.Name] = spec
	listeners := r.listeners
	r.mu.Unlock()
	for _, fn := range listeners {
		fn(spec.Name, spec)
	}
}

func normalizedEnv(s function.Spec) function.Spec {
	if len(s.Env) == 0 {
		s.Env = nil
	}
	return s
}

// Delete removes a function. Its code stays while another spec uses it.
func (r *Registry) Delete(ctx context.Context, name string) error {
	spec, err := r.Get(name)
	if err != nil {
		return err
	}
	if err := r.st.Functions.Delete(ctx, name); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	digests := append(r.deleteVersions(ctx, name), spec.Code)
	r.mu.Lock()
	delete(r.specs, name)
	inUse := map[string]bool{}
	for _, s := range r.specs {
		inUse[s.Code] = true
	}
	for _, vs := range r.versions {
		for _, s := range vs {
			inUse[s.Code] = true
		}
	}
	r.mu.Unlock()
	r.notify(name, nil)
	for _, d := range digests {
		if inUse[d] {
			continue
		}
		inUse[d] = true // once
		if err := r.st.DeleteCode(ctx, d); err != nil {
			r.log.Warn("registry: code not removed", "digest", d, "err", err)
		}
		// What the runtimes prepared for it (compiled modules, unpacked
		// files) goes too, rather than waiting for an LRU eviction.
		for _, p := range r.preparers {
			p.Forget(d)
		}
	}
	return nil
}

// notify tells the listeners about a change; name may be "NAME:VERSION"
// when one published version goes away.
func (r *Registry) notify(name string, spec *function.Spec) {
	r.mu.RLock()
	listeners := r.listeners
	r.mu.RUnlock()
	for _, fn := range listeners {
		fn(name, spec)
	}
}
