package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/events"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/natsd"
	"github.com/nimbus-run/nimbus/internal/runtime"
	"github.com/nimbus-run/nimbus/internal/store"
)

// handler is a fake function: it gets the payload and returns a result or
// an error.
type handler func(payload []byte) ([]byte, error)

// fakeFuncs is the catalog and the invoker of a harness: functions are Go
// closures, and every invocation is recorded.
type fakeFuncs struct {
	mu    sync.Mutex
	fns   map[string]handler
	env   map[string]map[string]string
	calls map[string][][]byte
}

func (f *fakeFuncs) set(name string, h handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fns[name] = h
}

func (f *fakeFuncs) Get(name string) (*function.Spec, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.fns[name]; !ok {
		return nil, fmt.Errorf("%q: %w", name, function.ErrNotFound)
	}
	zero := 0
	return &function.Spec{Name: name, Version: function.LatestVersion, Env: f.env[name],
		Async: &function.AsyncConfig{Retries: &zero}}, nil
}

func (f *fakeFuncs) Resolve(name, _ string) (*function.Spec, error) { return f.Get(name) }

func (f *fakeFuncs) Invoke(_ context.Context, req *invoke.Request) (*invoke.Response, error) {
	f.mu.Lock()
	h, ok := f.fns[req.Function]
	f.calls[req.Function] = append(f.calls[req.Function], append([]byte(nil), req.Payload...))
	f.mu.Unlock()
	if !ok {
		return nil, function.ErrNotFound
	}
	rec := &function.Record{ID: req.ID, Function: req.Function, Version: function.LatestVersion, Status: function.StatusOK}
	out, err := h(req.Payload)
	if errors.Is(err, function.ErrThrottled) {
		return nil, err
	}
	if err != nil {
		rec.Status = function.StatusError
		return &invoke.Response{Err: &runtime.FunctionError{Type: "Error", Message: err.Error()}, Record: rec},
			fmt.Errorf("%s: %w: %v", req.Function, function.ErrFunction, err)
	}
	return &invoke.Response{Payload: out, Record: rec}, nil
}

func (f *fakeFuncs) callsOf(name string) [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.calls[name]...)
}

// harness is one "node" of events on a real JetStream: a store, an async
// queue and an events service, with fake functions.
type harness struct {
	t      *testing.T
	st     *store.Store
	funcs  *fakeFuncs
	queue  *async.Service
	events *events.Service
	srv    *httptest.Server
}

type mux struct{ *http.ServeMux }

func (m mux) Protected(h http.HandlerFunc) http.Handler { return h }

// startNATS starts an embedded server reachable over TCP (so that several
// harnesses can share it) and returns its URL.
func startNATS(t *testing.T, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	srv, err := natsd.Start(ctx, natsd.Config{StoreDir: filepath.Join(dir, "js"), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		srv.Stop(ctx)
	})
	return srv.ClientURL()
}

func newHarness(t *testing.T, url string, funcs *fakeFuncs, cfg events.Config) *harness {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := store.Open(ctx, nc, store.Config{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("NIMBUS_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h := &harness{t: t, st: st, funcs: funcs}
	h.queue = async.New(async.Config{AckWait: 2 * time.Second, Workers: 16, Logger: log}, st, funcs, funcs)
	if err := h.queue.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cfg.Logger = log
	if cfg.AckWait == 0 {
		cfg.AckWait = 2 * time.Second
	}
	h.events = events.New(cfg, st, funcs, funcs, h.queue)
	if err := h.events.Start(ctx); err != nil {
		t.Fatal(err)
	}
	m := mux{http.NewServeMux()}
	h.queue.Mount(m)
	h.events.Mount(m)
	h.srv = httptest.NewServer(m)
	t.Cleanup(func() { h.stop() })
	return h
}

func (h *harness) stop() {
	if h.srv == nil {
		return
	}
	h.srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.events.Stop(ctx); err != nil {
		h.t.Errorf("events stop: %v", err)
	}
	if err := h.queue.Stop(ctx); err != nil {
		h.t.Errorf("async stop: %v", err)
	}
	h.st.NC.Close()
	h.srv = nil
}

func newFuncs() *fakeFuncs {
	return &fakeFuncs{fns: map[string]handler{}, env: map[string]map[string]string{}, calls: map[string][][]byte{}}
}

func echo(p []byte) ([]byte, error) { return p, nil }

// eventually polls cond every 10ms until it holds.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
