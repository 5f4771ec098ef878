// Package node is the composition root: it turns a Config into a running
// Nimbus node (embedded or external NATS, store, runtimes, registry, pools,
// invoker, gateway, HTTP server), starts the parts in order and stops them
// in reverse. Nothing else wires components together.
package node

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nimbus-run/nimbus/internal/apigateway"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/events"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/gateway"
	"github.com/nimbus-run/nimbus/internal/httpbody"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/keys"
	"github.com/nimbus-run/nimbus/internal/keys/keysapi"
	"github.com/nimbus-run/nimbus/internal/lambdaapi"
	"github.com/nimbus-run/nimbus/internal/natsd"
	"github.com/nimbus-run/nimbus/internal/pool"
	"github.com/nimbus-run/nimbus/internal/registry"
	"github.com/nimbus-run/nimbus/internal/runtime"
	"github.com/nimbus-run/nimbus/internal/runtime/process"
	"github.com/nimbus-run/nimbus/internal/runtime/wasm"
	"github.com/nimbus-run/nimbus/internal/s3api"
	"github.com/nimbus-run/nimbus/internal/store"
	"github.com/nimbus-run/nimbus/internal/telemetry"
	"github.com/nimbus-run/nimbus/internal/workflow"
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
	// S3Domains are the domains under which S3 requests may name their
	// bucket in the host (virtual-hosted style, s3api.Config.Domains).
	S3Domains []string
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
	// Async and Events tune asynchronous invocation and triggers (zero
	// values are the defaults; Logger and Metrics are filled in).
	Async async.Config
	// Data tunes the data services (MaxObjectBytes, the TTL sweep);
	// Functions, Logger and Replicas are filled in.
	Data   data.Config
	Events events.Config
	// APIListen serves user routes (the API gateway) on their own address;
	// the main listener then serves none. Empty: user routes share Listen.
	APIListen string
	// TLSCert and TLSKey (PEM files) turn on HTTPS, with HTTP/2, on both
	// listeners.
	TLSCert, TLSKey string
	// TrustedProxies are the peers whose X-Forwarded-For and
	// X-Forwarded-Proto user routes believe.
	TrustedProxies []netip.Prefix
	// MaxHeaderBytes bounds request headers (default 64 KiB): 431 beyond.
	MaxHeaderBytes int
	// BodyIdleTimeout is how long a request's body may send nothing
	// before its reads fail (httpbody; default 1m): an upload that
	// stalls is 408 RequestTimeout (S3's 400) and frees what it held.
	BodyIdleTimeout time.Duration
	Logger          *slog.Logger
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
	API     *apigateway.Service
	// Async is the async invocation queue; Events the triggers and rules.
	Async  *async.Service
	Events *events.Service
	// Workflows is the Step Functions engine (workflows.go).
	Workflows *workflow.Service
	// Data is the tables and buckets; S3 the S3 API over the buckets
	// (data.go).
	Data  *data.Service
	S3    *s3api.API
	ln    net.Listener
	apiLn net.Listener
	// fnURL and fnSocket are the function listener's (NIMBUS_API,
	// NIMBUS_API_SOCKET), mainHost the main listener's host:port as seen
	// from this machine (sdkapi.go).
	fnURL, fnSocket, mainHost string
	token                     string
	ready                     atomic.Bool

	stops []func(context.Context) error // in start order

	// Keys are the access keys of the AWS-compatible APIs; Lambda serves
	// the Lambda Invoke API.
	Keys   *keys.Keyring
	Lambda *lambdaapi.InvokeAPI
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
	if c.BodyIdleTimeout <= 0 {
		c.BodyIdleTimeout = httpbody.DefaultIdle
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("node: give both a TLS certificate and its key (--tls-cert, --tls-key), or neither")
	}
	return nil
}

// Start builds and starts a node. When any part fails to start, the parts
// already started are stopped again.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger}
	if err := n.start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		n.stop(sctx)
		return nil, err
	}
	return n, nil
}

// start starts the node's parts in order, registering how to stop each.
func (n *Node) start(ctx context.Context) (err error) {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("node: data directory: %w", err)
	}
	if !cfg.Dev {
		if n.token, err = loadOrCreateToken(filepath.Join(cfg.DataDir, TokenFile)); err != nil {
			return err
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
			return err
		}
		n.onStop(n.nats.Stop)
		n.nc, err = n.nats.Connect(nats.MaxReconnects(-1), errh)
	} else {
		n.nc, err = nats.Connect(cfg.NATSURL, nats.Name("nimbus"), nats.MaxReconnects(-1), nats.Timeout(5*time.Second), errh)
	}
	if err != nil {
		return fmt.Errorf("node: connect to NATS: %w", err)
	}
	n.onStop(func(context.Context) error { return n.nc.Drain() })

	n.Store, err = store.Open(ctx, n.nc, store.Config{Replicas: cfg.Replicas})
	if err != nil {
		return err
	}

	n.Wasm, err = wasm.New(wasm.Config{
		CacheDir: filepath.Join(cfg.DataDir, "wasm-cache"),
		Code:     n.Store.GetCode,
		Logger:   cfg.Logger,
		API:      n.functionAPI, // sdkapi.go
		Tables:   n.functionTables,
	})
	if err != nil {
		return err
	}
	n.onStop(n.Wasm.Close)
	n.Process, err = process.New(process.Config{
		WorkDir:  filepath.Join(cfg.DataDir, "process"),
		Code:     n.Store.GetCode,
		Logger:   cfg.Logger,
		ExtraEnv: n.dataEnv, // data.go
	})
	if err != nil {
		return err
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
		return err
	}
	n.onStop(n.Pools.Stop)
	if err := n.Reg.Start(ctx); err != nil {
		return err
	}
	n.onStop(n.Reg.Stop)
	n.Keys = keys.New(n.Store, cfg.Logger)
	if err := n.Keys.Start(ctx); err != nil {
		return err
	}
	n.onStop(n.Keys.Stop)

	n.rec = invoke.NewRecorder(n.Store.JS, cfg.Logger)
	if err := n.rec.Start(ctx); err != nil {
		return err
	}
	n.Invoker = invoke.New(invoke.Config{MaxPayload: int(cfg.MaxBody)}, n.Reg, n.Pools, n.rec, n.Metrics, cfg.Logger)

	n.Gateway = gateway.New(gateway.Config{Token: n.token, Dev: cfg.Dev, MaxBody: cfg.MaxBody, Logger: cfg.Logger},
		n.Invoker, n.Reg, n.Pools, recordReader{n.Store}, n.Metrics.Handler(), n.readyErr)

	// The API gateway: user routes on the main listener, or on their own.
	n.API = apigateway.New(apigateway.Config{
		Store: n.Store, Invoker: n.Invoker, Functions: n.Reg, MaxBody: cfg.MaxBody,
		TrustedProxies: cfg.TrustedProxies, Logger: cfg.Logger,
	})
	if err := n.API.Start(ctx); err != nil {
		return err
	}
	n.onStop(n.API.Stop)
	n.API.Register(n.Gateway)
	if cfg.APIListen == "" {
		n.Gateway.Fallback(n.API)
	}

	var tlsCfg *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("node: TLS certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	n.ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("node: listen on %s: %w (is another node running? pick another with --listen)", cfg.Listen, err)
	}
	if cfg.APIListen != "" {
		if n.apiLn, err = net.Listen("tcp", cfg.APIListen); err != nil {
			n.ln.Close()
			return fmt.Errorf("node: listen on %s: %w (pick another with --api-listen)", cfg.APIListen, err)
		}
	}
	// The recorder stops after the HTTP servers have drained, so the
	// records of drained invocations are flushed.
	n.onStop(n.rec.Stop)
	err = n.startData(ctx)
	if err == nil {
		err = n.startFunctionListener() // sdkapi.go
	}
	if err != nil {
		n.ln.Close()
		if n.apiLn != nil {
			n.apiLn.Close()
		}
		return err
	}
	// Async workers and triggers run invocations: they stop after the HTTP
	// servers (no new work comes in) and before the recorder.
	if err := n.startEvents(ctx); err != nil {
		n.ln.Close()
		if n.apiLn != nil {
			n.apiLn.Close()
		}
		return err
	}
	// The Lambda Invoke API ("Event" calls go to the durable async queue)
	// and the access keys' management API.
	n.Lambda = lambdaapi.NewInvokeAPI(lambdaapi.InvokeAPIConfig{Dev: cfg.Dev, AdminToken: n.token, MaxPayload: int(cfg.MaxBody), Logger: cfg.Logger},
		n.Invoker, n.Reg, n.Keys, n.Async)
	n.onStop(n.Lambda.Stop)
	n.Gateway.Handle(lambdaapi.InvokePattern, n.Lambda)
	keysapi.Register(n.Gateway, n.Keys)
	if err := n.startWorkflows(ctx); err != nil {
		n.ln.Close()
		if n.apiLn != nil {
			n.apiLn.Close()
		}
		return err
	}
	n.serve(n.ln, apigateway.Observe(cfg.Logger, n.mainHandler()), tlsCfg)
	if n.apiLn != nil {
		n.serve(n.apiLn, apigateway.Observe(cfg.Logger, n.API), tlsCfg)
	}
	n.ready.Store(true)
	n.log.Info("nimbus node started", "url", n.URL(), "data", cfg.DataDir, "dev", cfg.Dev, "nats", n.natsDesc())
	return nil
}

// serve runs an HTTP server on ln until Stop. With tlsCfg it speaks HTTPS,
// and HTTP/2 by ALPN (net/http configures it when NextProtos is unset).
func (n *Node) serve(ln net.Listener, h http.Handler, tlsCfg *tls.Config) {
	if tlsCfg != nil {
		tlsCfg = tlsCfg.Clone() // net/http adds "h2" to NextProtos: one each
	}
	// The listener bounds how long headers take, httpbody how long a
	// body may stall.
	h = httpbody.Handler(h, n.cfg.BodyIdleTimeout)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: n.cfg.MaxHeaderBytes,
		TLSConfig: tlsCfg, ErrorLog: slog.NewLogLogger(n.log.Handler(), slog.LevelDebug)}
	serveErr := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			serveErr <- srv.ServeTLS(ln, "", "")
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()
	n.onStop(func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if e := <-serveErr; e != nil && !errors.Is(e, http.ErrServerClosed) {
			return e
		}
		return err
	})
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
func (n *Node) URL() string { return n.scheme() + n.ln.Addr().String() }

// APIURL is the base URL of user routes: the --api-listen address when
// given, else URL.
func (n *Node) APIURL() string {
	if n.apiLn == nil {
		return n.URL()
	}
	return n.scheme() + n.apiLn.Addr().String()
}

func (n *Node) scheme() string {
	if n.cfg.TLSCert != "" {
		return "https://"
	}
	return "http://"
}

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
	if n.Data != nil {
		n.Data.Drain() // long polls answer now, not at the end of their wait
	}
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
