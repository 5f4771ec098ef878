// Package nodetest starts real Nimbus nodes (embedded JetStream on a temp
// directory, real runtimes, a real HTTP listener on loopback) for tests of
// the public surfaces.
package nodetest

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// Start starts a node for the test and stops it at cleanup. cfg.DataDir
// defaults to a temp dir, cfg.Listen to a free loopback port, and Dev to
// true unless cfg was given with a Token-requiring setup (set NoDev).
func Start(tb testing.TB, cfg node.Config) *node.Node {
	tb.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		level := slog.LevelWarn
		if os.Getenv("NIMBUS_TEST_LOG") != "" {
			level = slog.LevelDebug
		}
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	}
	if cfg.ReapInterval == 0 {
		cfg.ReapInterval = 50 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, cfg)
	if err != nil {
		tb.Fatalf("start node: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := n.Stop(ctx); err != nil {
			tb.Errorf("stop node: %v", err)
		}
	})
	return n
}

// Client returns an API client for n.
func Client(n *node.Node) *api.Client { return api.NewClient(n.URL(), n.Token()) }

// Deploy uploads code and creates or updates fn on n.
func Deploy(tb testing.TB, n *node.Node, fn api.Function, code []byte) *api.PutFunctionResult {
	tb.Helper()
	c := Client(n)
	ctx := context.Background()
	up, err := c.PutCode(ctx, bytes.NewReader(code))
	if err != nil {
		tb.Fatalf("upload code for %s: %v", fn.Name, err)
	}
	fn.Code = up.Digest
	if fn.Runtime == "" {
		fn.Runtime = "wasm"
	}
	res, err := c.PutFunction(ctx, &fn)
	if err != nil {
		tb.Fatalf("deploy %s: %v", fn.Name, err)
	}
	return res
}

// Eventually polls cond until it holds or the timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	testutil.EventuallyWithin(tb, timeout, what, cond)
}
