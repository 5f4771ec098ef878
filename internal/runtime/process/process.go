// Package process is the runtime for native code: any executable, run as a
// child process that speaks the AWS Lambda Runtime API. An unmodified
// aws-lambda-go binary or any Lambda custom runtime "bootstrap" works.
//
// It owns the code cache on disk (unpacked once per digest), the child
// processes (one process group per instance, resource limits, logs, kill on
// timeout) and one Runtime API server per instance (internal/lambdaapi). It
// does not decide when to start or reclaim instances: that is the pool.
//
// RATIONALE.md beside this file records the design choices.
package process

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

var _ runtime.Runtime = (*Runtime)(nil)

// Defaults for Config.
const (
	DefaultRegion           = "us-east-1"
	DefaultAccountID        = "000000000000"
	DefaultMemoryHeadroomMB = 128
	DefaultMaxOpenFiles     = 1024
	DefaultMaxProcs         = 512
	DefaultMaxCodeBytes     = 512 << 20
	DefaultMaxCodeFiles     = 20000
)

// Config configures the process runtime. Zero values take the defaults.
type Config struct {
	// WorkDir holds the code cache (code/<hex>/) and the instances' working
	// directories (instances/). It belongs to the runtime: put it under the
	// node's data directory. Required.
	WorkDir string
	// Logger gets lifecycle events (which limits apply, instance failures).
	Logger *slog.Logger
	// Region and AccountID appear in AWS_REGION and in function ARNs.
	Region    string
	AccountID string
	// Path is the PATH given to functions (the only value they inherit
	// from the node: a bootstrap written in sh needs its tools). Default:
	// the node's PATH, or a standard one if that is empty.
	Path string
	// MemoryHeadroomMB is added to a function's memory setting for
	// RLIMIT_DATA: language runtimes map memory they never touch (Go maps a
	// 64 MB arena index at start). Default 128. Not used under cgroups.
	MemoryHeadroomMB int
	// MaxOpenFiles is RLIMIT_NOFILE per instance. Default 1024.
	MaxOpenFiles int
	// MaxProcs is pids.max of an instance's cgroup (v2, or the v1 pids
	// hierarchy): tasks, so threads count. Default 512. Without cgroups,
	// processes are not capped (see RATIONALE.md).
	MaxProcs int
	// MaxCodeBytes and MaxCodeFiles bound what a zip may unpack to.
	// Defaults 512 MiB and 20000.
	MaxCodeBytes int64
	MaxCodeFiles int
	// Code loads an artifact by digest ("sha256:<hex>"). Start uses it for
	// a digest not unpacked on this node (another node ran Prepare, or the
	// cache was cleared); without it, such a Start fails.
	Code func(ctx context.Context, digest string) ([]byte, error)
	// Cgroups selects memory limiting: "auto" (default) uses cgroup v2 when
	// the node can create cgroups with the memory controller there, else
	// cgroup v1 when the v1 memory hierarchy is mounted and writable, else
	// rlimits; "off" always uses rlimits.
	Cgroups string
	// ExtraEnv, when set, is called at each instance start for variables
	// the node adds (the data API's address and a per-instance data
	// credential). They override the spec's env, never the runtime's own.
	ExtraEnv func(spec *function.Spec) map[string]string
}

func (c *Config) setDefaults() error {
	if c.WorkDir == "" {
		return errors.New("process: Config.WorkDir is required")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.AccountID == "" {
		c.AccountID = DefaultAccountID
	}
	if c.Path == "" {
		c.Path = os.Getenv("PATH")
	}
	if c.Path == "" {
		c.Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	if c.MemoryHeadroomMB <= 0 {
		c.MemoryHeadroomMB = DefaultMemoryHeadroomMB
	}
	if c.MaxOpenFiles <= 0 {
		c.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if c.MaxProcs <= 0 {
		c.MaxProcs = DefaultMaxProcs
	}
	if c.MaxCodeBytes <= 0 {
		c.MaxCodeBytes = DefaultMaxCodeBytes
	}
	if c.MaxCodeFiles <= 0 {
		c.MaxCodeFiles = DefaultMaxCodeFiles
	}
	switch c.Cgroups {
	case "":
		c.Cgroups = "auto"
	case "auto", "off":
	default:
		return fmt.Errorf("process: Config.Cgroups is %q: use \"auto\" or \"off\"", c.Cgroups)
	}
	return nil
}

// Runtime starts process instances. It is safe for concurrent use.
type Runtime struct {
	cfg     Config
	log     *slog.Logger
	codeDir string             // WorkDir/code: one directory per digest
	instDir string             // WorkDir/instances: one directory per live instance
	cgroups cgroupManager      // nil: rlimits only
	noCgWhy string             // why cgroups is nil
	cpus    *cpuPlacer         // which CPUs an instance runs on (cpus.go)
	fetch   singleflight.Group // unpacks on Start, one per digest at a time

	mu        sync.Mutex
	closed    bool
	instances map[*instance]struct{}
}

// New checks cfg, creates the work directories, removes instance
// directories a previous run left behind, and detects whether cgroups (v2,
// else v1) can limit memory, creating the runtime's own cgroup directories
// and removing those a node no longer running left behind. It starts no
// process.
func New(cfg Config) (*Runtime, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	r := &Runtime{
		cfg:       cfg,
		log:       cfg.Logger,
		codeDir:   filepath.Join(cfg.WorkDir, "code"),
		instDir:   filepath.Join(cfg.WorkDir, "instances"),
		instances: make(map[*instance]struct{}),
		cpus:      newCPUPlacer(),
	}
	// Instance directories are private to one run: any left are from a
	// crash, and nothing can use them.
	if err := os.RemoveAll(r.instDir); err != nil {
		return nil, fmt.Errorf("process: clean %s: %w", r.instDir, err)
	}
	for _, d := range []string{r.codeDir, r.instDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("process: %w", err)
		}
	}
	r.noCgWhy = "cgroups off by config"
	if cfg.Cgroups == "auto" {
		r.cgroups, r.noCgWhy = detectCgroups()
	}
	if r.cgroups != nil {
		attrs := append([]any{"mode", r.cgroups.mode(), "max_procs", cfg.MaxProcs, "max_open_files", cfg.MaxOpenFiles}, r.cgroups.logAttrs()...)
		label := map[string]string{"cgroup": "cgroup v2", "cgroup-v1": "cgroup v1"}[r.cgroups.mode()]
		r.log.Info("process runtime: limits by "+label+" (memory, processes) and RLIMIT_NOFILE", attrs...)
	} else {
		r.log.Info("process runtime: limits by rlimit (RLIMIT_DATA, RLIMIT_NOFILE); processes not capped", "mode", "rlimit", "reason", r.noCgWhy)
	}
	if len(r.cpus.all) > 1 {
		r.log.Info("process runtime: instances pinned to one CPU per 1769 MB of memory, at least one", "node_cpus", len(r.cpus.all))
	}
	return r, nil
}

// LimitMode says how memory (and the number of processes) is limited:
// "cgroup" (v2), "cgroup-v1" or "rlimit".
func (r *Runtime) LimitMode() string {
	if r.cgroups != nil {
		return r.cgroups.mode()
	}
	return "rlimit"
}

// Prepare unpacks code into the cache once per digest and checks that it
// can run: a zip with an executable "bootstrap", a lone executable, or any
// code plus a handler command line.
func (r *Runtime) Prepare(ctx context.Context, spec *function.Spec, code []byte) error {
	if err := checkEnv(spec); err != nil {
		return err
	}
	hexDigest, err := digestHex(spec.Code)
	if err != nil {
		return err
	}
	if err := r.unpack(ctx, hexDigest, code, spec.Handler); err != nil {
		return fmt.Errorf("prepare %s: %w", spec.Name, err)
	}
	if _, _, err := r.command(spec, filepath.Join(r.codeDir, hexDigest)); err != nil {
		return fmt.Errorf("prepare %s: %w", spec.Name, err)
	}
	return nil
}

// Forget removes the unpacked code of digest. Running instances keep their
// own copies, so this is safe at any time.
func (r *Runtime) Forget(digest string) {
	hexDigest, err := digestHex(digest)
	if err != nil {
		return
	}
	dir := filepath.Join(r.codeDir, hexDigest)
	if err := os.RemoveAll(dir); err != nil {
		r.log.Warn("process runtime: forget code", "digest", digest, "err", err)
	}
}

// Close kills every instance the runtime started and removes their
// directories. The code cache stays for the next run.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	live := make([]*instance, 0, len(r.instances))
	for in := range r.instances {
		live = append(live, in)
	}
	r.mu.Unlock()

	errs := make([]error, len(live))
	var wg sync.WaitGroup
	for i, in := range live {
		wg.Go(func() { errs[i] = in.Close(ctx) })
	}
	wg.Wait()
	if r.cgroups != nil {
		errs = append(errs, r.cgroups.close())
	}
	return errors.Join(errs...)
}

// ensureCode returns the unpacked code directory of spec, loading and
// unpacking the artifact through Config.Code if this node lacks it.
func (r *Runtime) ensureCode(ctx context.Context, spec *function.Spec) (string, error) {
	hexDigest, err := digestHex(spec.Code)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(r.codeDir, hexDigest)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if r.cfg.Code == nil {
		return "", fmt.Errorf("code %s is not prepared on this node and no code loader is configured", spec.Code)
	}
	_, err, _ = r.fetch.Do(hexDigest, func() (any, error) {
		code, err := r.cfg.Code(ctx, spec.Code)
		if err != nil {
			return nil, fmt.Errorf("load code %s: %w", spec.Code, err)
		}
		return nil, r.unpack(ctx, hexDigest, code, spec.Handler)
	})
	if err != nil {
		return "", err
	}
	return dir, nil
}

func (r *Runtime) track(in *instance) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("process runtime closed")
	}
	r.instances[in] = struct{}{}
	return nil
}

func (r *Runtime) untrack(in *instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.instances, in)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
