// Package node is the composition root: it turns a Config into a running
// Nimbus node (embedded or external NATS, store, runtimes, registry, pools,
// invoker, gateway, HTTP server), starts the parts in order and stops them
// in reverse. Nothing else wires components together.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/natsd"
	"github.com/nimbus-run/nimbus/internal/pool"
	"github.com/nimbus-run/nimbus/internal/registry"
	"github.com/nimbus-run/nimbus/internal/runtime"
	"github.com/nimbus-run/nimbus/internal/runtime/process"
	"github.com/nimbus-run/nimbus/internal/runtime/wasm"
	"github.com/nimbus-run/nimbus/internal/store"
	"github.com/nimbus-run/nimbus/internal/telemetry"
)

// Config is everything a node needs.
type Config struct {
	// DataDir holds JetStream files, the compilation cache and the token.
	DataDir string
	// Listen is the HTTP address (default 127.0.0.1:8080; port 0 picks one).
	Listen string
	// Dev turns off the management API's token check.
	Dev bool
	// NATSURL joins an external NATS server or cluster instead of embedding one.
	NATSURL string
	// NATSListen exposes the embedded server to other nodes (optional).
	NATSListen string
	// Replicas for buckets and streams (external cluster only).
	Replicas int
	// QueueTimeout is how long a call waits at max concurrency (default 100ms).
	QueueTimeout time.Duration
	// Prestart is how many run-once instances are kept ready (default 2).
	Prestart int
	// ReapInterval is how often idle instances are looked for (default 1s).
	ReapInterval time.Duration
	// DrainTimeout bounds the wait for in-flight invocations on Stop (default 30s).
	DrainTimeout time.Duration
	// MaxBody bounds invoke request bodies (default 6 MiB).
	MaxBody int64
	Logger  *slog.Logger
}

// Node is a running Nimbus node.
type Node struct {
	cfg     Config
	log     *slog.Logger
	nats    *natsd.Server
	nc      *nats.Conn
	Store   *store.Store
	Wasm    *wasm.Runtime
	Process *process.Runtime
	Reg     *registry.Registry
	Pools   *pool.Manager
	rec     *invoke.Recorder
	Invoker *invoke.Invoker
	Metrics *telemetry.Metrics
	Gateway *gateway.Gateway
	srv     *http.Server
	ln      net.Listener
	token   string
	ready   atomic.Bool

	stops []func(context.Context) error // in start order
}

// TokenFile is the admin token's file name inside the data directory.
const TokenFile = "admin.token"

func (c *Config) defaults() error {
	if c.DataDir == "" {
		return errors.New("node: a data directory is required (--data)")
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Start builds and starts a node. When any part fails to start, the parts
// already started are stopped again.
func Start(ctx context.Context, cfg Config) (n *Node, err error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	n = &Node{cfg: cfg, log: cfg.Logger}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			n.stop(sctx)
			n = nil
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: data directory: %w", err)
	}
	if !cfg.Dev {
		if n.token, err = loadOrCreateToken(filepath.Join(cfg.DataDir, TokenFile)); err != nil {
			return nil, err
		}
	}

	// NATS: embedded unless an external URL is given. One code path after.
	// nats.go prints asynchronous errors to stderr by default; route them
	// to the node's log instead.
	errh := nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		n.log.Debug("nats: async error", "err", err)
	})
	if cfg.NATSURL == "" {
		n.nats, err = natsd.Start(ctx, natsd.Config{StoreDir: filepath.Join(cfg.DataDir, "jetstream"), Listen: cfg.NATSListen})
		if err != nil {
			return nil, err
		}
		n.onStop(n.nats.Stop)
		n.nc, err = n.nats.Connect(nats.MaxReconnects(-1), errh)
	} else {
		n.nc, err = nats.Connect(cfg.NATSURL, nats.Name("nimbus"), nats.MaxReconnects(-1), nats.Timeout(5*time.Second), errh)
	}
	if err != nil {
		return nil, fmt.Errorf("node: connect to NATS: %w", err)
	}
	n.onStop(func(context.Context) error { return n.nc.Drain() })

	n.Store, err = store.Open(ctx, n.nc, store.Config{Replicas: cfg.Replicas})
	if err != nil {
		return nil, err
	}

	n.Wasm, err = wasm.New(wasm.Config{
		CacheDir: filepath.Join(cfg.DataDir, "wasm-cache"),
		Code:     n.Store.GetCode,
		Logger:   cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	n.onStop(n.Wasm.Close)
	n.Process, err = process.New(process.Config{
		WorkDir: filepath.Join(cfg.DataDir, "process"),
		Code:    n.Store.GetCode,
		Logger:  cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	n.onStop(n.Process.Close)
	runtimes := map[string]runtime.Runtime{function.RuntimeWasm: n.Wasm, function.RuntimeProcess: n.Process}
	preparers := map[string]registry.Preparer{}
	for k, v := range runtimes {
		preparers[k] = v
	}

	n.Metrics = telemetry.NewMetrics()
	n.Pools = pool.NewManager(pool.Config{
		QueueTimeout: cfg.QueueTimeout, Prestart: cfg.Prestart, ReapInterval: cfg.ReapInterval,
		Observer: n.Metrics, Logger: cfg.Logger,
	}, runtimes)
	n.Reg = registry.New(n.Store, preparers, cfg.Logger)
	n.Reg.OnChange(n.Pools.Update)
	n.Reg.OnChange(func(name string, spec *function.Spec) {
		if spec == nil {
			n.Metrics.Forget(name)
		}
	})
	if err := n.Pools.Start(ctx); err != nil {
		return nil, err
	}
	n.onStop(n.Pools.Stop)
	if err := n.Reg.Start(ctx); err != nil {
		return nil, err
	}
	n.onStop(n.Reg.Stop)

	n.rec = invoke.NewRecorder(n.Store.JS, cfg.Logger)
	if err := n.rec.Start(ctx); err != nil {
		return nil, err
	}
	n.Invoker = invoke.New(invoke.Config{MaxPayload: int(cfg.MaxBody)}, n.Reg, n.Pools, n.rec, n.Metrics, cfg.Logger)

	n.Gateway = gateway.New(gateway.Config{Token: n.token, Dev: cfg.Dev, MaxBody: cfg.MaxBody, Logger: cfg.Logger},
		n.Invoker, n.Reg, n.Pools, recordReader{n.Store}, n.Metrics.Handler(), n.readyErr)

	n.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("node: listen on %s: %w (is another node running? pick another with --listen)", cfg.Listen, err)
	}
	n.srv = &http.Server{Handler: n.Gateway, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 64 << 10}
	serveErr := make(chan error, 1)
	go func() { serveErr <- n.srv.Serve(n.ln) }()
	// The recorder stops after the HTTP server has drained, so the records
	// of drained invocations are flushed.
	n.onStop(n.rec.Stop)
	n.onStop(func(ctx context.Context) error {
		err := n.srv.Shutdown(ctx)
		if e := <-serveErr; e != nil && !errors.Is(e, http.ErrServerClosed) {
			return e
		}
		return err
	})
	n.ready.Store(true)
	n.log.Info("nimbus node started", "url", n.URL(), "data", cfg.DataDir, "dev", cfg.Dev, "nats", n.natsDesc())
	return n, nil
}

func (n *Node) natsDesc() string {
	if n.cfg.NATSURL != "" {
		return n.cfg.NATSURL
	}
	if u := n.nats.ClientURL(); u != "" {
		return "embedded " + u
	}
	return "embedded"
}

func (n *Node) onStop(f func(context.Context) error) { n.stops = append(n.stops, f) }

func (n *Node) readyErr() error {
	if !n.ready.Load() {
		return errors.New("starting or stopping")
	}
	if !n.nc.IsConnected() {
		return errors.New("not connected to NATS")
	}
	return nil
}

// URL is the node's base HTTP URL.
func (n *Node) URL() string { return "http://" + n.ln.Addr().String() }

// Token is the admin token ("" in dev mode).
func (n *Node) Token() string { return n.token }

// NATSURL is the embedded server's client URL when it listens.
func (n *Node) NATSURL() string {
	if n.nats == nil {
		return n.cfg.NATSURL
	}
	return n.nats.ClientURL()
}

// Stop drains in-flight invocations (bounded by the drain timeout and ctx)
// and stops every part in reverse start order.
func (n *Node) Stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DrainTimeout)
	defer cancel()
	return n.stop(ctx)
}

func (n *Node) stop(ctx context.Context) error {
	n.ready.Store(false)
	var errs []error
	for i := len(n.stops) - 1; i >= 0; i-- {
		if err := n.stops[i](ctx); err != nil {
			errs = append(errs, err)
		}
	}
	n.stops = nil
	return errors.Join(errs...)
}

func loadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("node: read token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	tok := "nmb_admin_" + hex.EncodeToString(raw[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("node: write token: %w", err)
	}
	return tok, nil
}

type recordReader struct{ st *store.Store }

func (r recordReader) Recent(ctx context.Context, fn string, limit int) ([]json.RawMessage, error) {
	return r.st.LastRecords(ctx, store.RecordSubject(fn), limit)
}
