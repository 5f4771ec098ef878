// Package wasm is the WebAssembly runtime of Nimbus: it compiles function
// code with wazero (once per digest, with wazero's compilation cache on disk so
// that a restart does not recompile) and starts sandboxed instances of it.
//
// It owns compilation, the in-memory set of compiled modules, the "nimbus"
// host module (the SDK ABI, docs/wasm-abi.md) and the instances' lifecycle:
// limits (memory, deadline), stdio and log capture. It does not own pooling
// (how many instances to keep, when to reuse them: internal/pool) nor where
// code comes from (Config.Code, wired by the node to the artifact store).
//
// Two module styles are told apart at Prepare by the module's imports:
//
//   - a module importing "nimbus" is a long-lived SDK instance: _start loops
//     on nimbus.next / nimbus.respond, serving invocation after invocation;
//   - any other module is a WASI command: the event on stdin, the result on
//     stdout, logs on stderr, exit code 0 for success, one invocation per
//     instance. Start pre-starts it (_start runs until it blocks on stdin), so
//     Invoke pays only for the function's own work.
//
// Guests get no file system, no sockets and only the environment of their
// spec; they get the wall clock, the monotonic clock, sleep and crypto/rand.
// RATIONALE.md in this directory records why the code is shaped as it is.
package wasm

import (
	"container/list"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"golang.org/x/sync/singleflight"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// Defaults applied by New.
const (
	DefaultMaxCompiled      = 64
	DefaultMaxResponseBytes = 6 << 20          // Lambda's synchronous response limit
	DefaultInitTimeout      = 10 * time.Second // Lambda's init phase limit
)

// stopGrace bounds how long Invoke waits, after its deadline, for a guest to
// stop. Every blocking call a guest can make watches the instance's context
// and compiled code checks it on loop back-edges, so a guest stops within
// microseconds; the bound only keeps a wazero bug from hanging a caller.
const stopGrace = 500 * time.Millisecond

// Config configures a Runtime.
type Config struct {
	// CacheDir is wazero's on-disk compilation cache. Empty keeps compiled
	// code in memory only, so every process start compiles again.
	CacheDir string
	// MaxCompiled bounds the compiled modules kept in memory (LRU). A module
	// evicted, or never prepared in this process, is compiled again on its
	// next Start, from the disk cache when CacheDir is set.
	MaxCompiled int
	// Code loads an artifact by digest ("sha256:<hex>"). Start needs it for a
	// digest it does not hold (after a restart or an eviction); without it,
	// such a Start fails.
	Code func(ctx context.Context, digest string) ([]byte, error)
	// MaxResponseBytes bounds a result; a bigger one becomes the function
	// error Function.ResponseSizeTooLarge. Default DefaultMaxResponseBytes.
	MaxResponseBytes int
	// InitTimeout bounds an SDK instance's init: instantiation to its first
	// nimbus.next. Default DefaultInitTimeout. (A command's init runs before
	// its invocation and is bounded by the invocation's deadline.)
	InitTimeout time.Duration
	// Logger receives debug records about compiles and evictions.
	Logger *slog.Logger
	// API serves SDK guests' nimbus.api calls (tables, buckets, events):
	// it returns the handler for the requests of an instance of spec,
	// which must act with that function's permissions (the node's data
	// API with the instance's credential). Called once per SDK instance.
	// Nil answers every such call 503 Unavailable.
	API func(spec *function.Spec) http.Handler
	// Tables serves SDK guests' table gets and puts (nimbus.kv_get and
	// kv_put, hostkv.go) for an instance of spec, with that
	// function's permissions, as API does. Nil answers them 503.
	Tables func(spec *function.Spec) Tables
}

// Stats counts compilation work, so that callers (and tests) can tell a
// compile served from the on-disk cache from a full one.
type Stats struct {
	// Compiles counts modules compiled in this process, by Prepare or by a
	// Start that found its digest missing.
	Compiles int64
	// FullCompiles counts the compiles that produced machine code: they
	// missed wazero's compilation cache (a new file appeared in CacheDir).
	// Without a CacheDir every compile counts as full.
	FullCompiles int64
	// CacheHits counts compiles served from the compilation cache.
	CacheHits int64
	// CompileTime is the total time spent compiling.
	CompileTime time.Duration
	// Modules is the number of compiled modules held in memory.
	Modules int
	// Instances is the number of live instances.
	Instances int
}

// Runtime is the wasm runtime. It is safe for concurrent use.
type Runtime struct {
	cfg    Config
	log    *slog.Logger
	wr     wazero.Runtime
	cache  wazero.CompilationCache
	base   wazero.ModuleConfig
	hostFn hostFunctions
	sf     singleflight.Group
	reaper *reaper // unmaps instances' memories

	// compileMu serializes compiles, so that a new file in the cache
	// directory is known to come from the compile under way (Stats). Compiles
	// are deploy-time work and wazero compiles a module's functions in
	// parallel, so little is lost.
	compileMu sync.Mutex

	mu        sync.Mutex // guards the fields below
	modules   map[string]*module
	lru       *list.List // of *module, most recently used first
	instances map[*instance]struct{}
	stats     Stats
	closed    bool

	wg sync.WaitGroup // the guests' goroutines
}

var _ runtime.Runtime = (*Runtime)(nil)

// New returns a Runtime; Close releases it.
func New(cfg Config) (*Runtime, error) {
	if cfg.MaxCompiled < 0 {
		return nil, errors.New("wasm: MaxCompiled must not be negative")
	}
	if cfg.MaxCompiled == 0 {
		cfg.MaxCompiled = DefaultMaxCompiled
	}
	if cfg.InitTimeout <= 0 {
		cfg.InitTimeout = DefaultInitTimeout
	}
	if cfg.MaxResponseBytes <= 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx := context.Background()

	var cache wazero.CompilationCache
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("wasm: compilation cache %s: %w", cfg.CacheDir, err)
		}
		cache = c
	} else {
		cache = wazero.NewCompilationCache()
	}
	rc := wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		// Running guests are stopped by the interrupt flag compiled into
		// every loop head (interrupt.go), not by wazero's own checks, which
		// cost a call per loop iteration.
		WithCloseOnContextDone(false).
		// Functions' limits are enforced per instance (linearMemory), so the
		// runtime allows what wasm32 can address.
		WithMemoryLimitPages(65536)
	wr := wazero.NewRuntimeWithConfig(ctx, rc)

	r := &Runtime{
		cfg:       cfg,
		log:       log,
		wr:        wr,
		cache:     cache,
		modules:   make(map[string]*module),
		lru:       list.New(),
		instances: make(map[*instance]struct{}),
		reaper:    newReaper(),
	}
	if err := r.instantiateHostModules(ctx); err != nil {
		r.reaper.close()
		_ = wr.Close(ctx)
		_ = cache.Close(ctx)
		return nil, err
	}
	// The base of every guest's configuration. _start is called by the
	// instance's own goroutine, not by InstantiateModule, so that Start
	// returns while a command waits for its event.
	r.base = wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	return r, nil
}

func (r *Runtime) instantiateHostModules(ctx context.Context) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.wr); err != nil {
		return fmt.Errorf("wasm: instantiate WASI: %w", err)
	}
	if err := r.instantiateNimbus(ctx); err != nil {
		return fmt.Errorf("wasm: instantiate the nimbus host module: %w", err)
	}
	r.hostFn = hostFunctions{
		wasiModule:   r.wr.Module(wasi_snapshot_preview1.ModuleName).ExportedFunctionDefinitions(),
		nimbusModule: r.wr.Module(nimbusModule).ExportedFunctionDefinitions(),
	}
	return nil
}

// Stats returns a snapshot of the compilation counters.
func (r *Runtime) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stats
	s.Modules = len(r.modules)
	s.Instances = len(r.instances)
	return s
}

// Prepare compiles code (or finds it compiled) and checks that spec can run
// it. Concurrent Prepares and Starts of one digest share one compile.
//
// # Errors
//
// A *function.FieldError (wrapping function.ErrInvalid) when the code is not
// a usable module: not WebAssembly, no _start, imports Nimbus does not
// provide, an initial memory larger than spec's memory.
func (r *Runtime) Prepare(ctx context.Context, spec *function.Spec, code []byte) error {
	if code == nil {
		code = []byte{}
	}
	m, err := r.acquire(ctx, spec.Code, code)
	if err != nil {
		return fmt.Errorf("wasm: prepare %s: %w", spec.Name, err)
	}
	defer r.release(m)
	if err := m.fits(spec); err != nil {
		return fmt.Errorf("wasm: prepare %s: %w", spec.Name, err)
	}
	return nil
}

// Start starts one instance of spec. A command instance is returned with its
// _start already running, blocked on reading its event; an SDK instance is
// returned once its _start first asks for an invocation, so its init (Go's
// runtime and package init, the function's main) is part of Start.
func (r *Runtime) Start(ctx context.Context, spec *function.Spec) (runtime.Instance, error) {
	m, err := r.acquire(ctx, spec.Code, nil)
	if err != nil {
		return nil, fmt.Errorf("wasm: start %s: %w", spec.Name, err)
	}
	defer r.release(m)
	if err := m.fits(spec); err != nil {
		return nil, fmt.Errorf("wasm: start %s: %w", spec.Name, err)
	}
	var inst runtime.Instance
	if m.sdk {
		inst, err = r.startSDK(ctx, spec, m)
	} else {
		inst, err = r.startCommand(ctx, spec, m)
	}
	if err != nil {
		return nil, fmt.Errorf("wasm: start %s: %w", spec.Name, err)
	}
	return inst, nil
}

// Forget drops the compiled module of digest; instances already started keep
// running.
func (r *Runtime) Forget(digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.modules[digest]; ok {
		r.evictLocked(m)
	}
}

// Close stops every instance, waits for their goroutines (or ctx), and
// releases compiled code. The disk cache stays for the next process.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	insts := make([]*instance, 0, len(r.instances))
	for in := range r.instances {
		insts = append(insts, in)
	}
	r.mu.Unlock()

	for _, in := range insts {
		in.stop(errRuntimeClosed)
	}
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("wasm: close: guests still running: %w", ctx.Err())
	}

	r.mu.Lock()
	for _, m := range r.modules {
		r.evictLocked(m)
	}
	r.mu.Unlock()
	// Closing the runtime after the wait: wazero frees a module's memory on
	// close, which a guest still running must not see. On a ctx expiry the
	// stragglers are left to the process exit instead.
	if err == nil {
		cctx := context.WithoutCancel(ctx)
		r.compileMu.Lock() // wait for a compile under way; later ones see closed
		defer r.compileMu.Unlock()
		if cerr := r.wr.Close(cctx); cerr != nil {
			err = fmt.Errorf("wasm: close runtime: %w", cerr)
		}
		if cerr := r.cache.Close(cctx); cerr != nil && err == nil {
			err = fmt.Errorf("wasm: close compilation cache: %w", cerr)
		}
	}
	// A straggler's memory released after this is unmapped in place.
	r.reaper.close()
	return err
}

var errRuntimeClosed = fmt.Errorf("wasm runtime closed: %w", function.ErrUnavailable)

// moduleConfig returns the configuration of one guest of spec.
func (r *Runtime) moduleConfig(spec *function.Spec, in *instance, stdin io.Reader, stdout, stderr io.Writer) wazero.ModuleConfig {
	cfg := r.base.
		WithArgs(spec.Name).
		WithStdin(stdin).
		WithStdout(stdout).
		WithStderr(stderr).
		// Sleeping is allowed, but must end when the instance is stopped:
		// wazero's own nanosleep does not watch a context.
		WithNanosleep(in.nanosleep)
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys) // a stable environ order, as a process would see
	for _, k := range keys {
		cfg = cfg.WithEnv(k, spec.Env[k])
	}
	return cfg
}
