// Package nodetest starts real Nimbus nodes (embedded JetStream on a temp
// directory, real runtimes, a real HTTP listener on loopback) for tests of
// the public surfaces.
package nodetest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

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

// NATSCluster starts a JetStream cluster of n NATS servers on loopback, as
// an operator's external cluster (nimbus up --nats), and waits until it has
// elected its leader. The servers stop at cleanup; ClientURL gives their
// addresses.
func NATSCluster(tb testing.TB, n int) []*server.Server {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	var servers []*server.Server
	for i, p := range ports {
		s, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("nats-%d", i+1), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: tb.TempDir(), NoSigs: true, NoLog: true, MaxPayload: 8 << 20,
			Cluster: server.ClusterOpts{Name: "nimbus-test", Host: "127.0.0.1", Port: p},
			Routes:  routes,
		})
		if err != nil {
			tb.Fatal(err)
		}
		s.Start()
		tb.Cleanup(s.Shutdown)
		servers = append(servers, s)
	}
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			tb.Fatalf("NATS server %s did not start", s.Name())
		}
	}
	Eventually(tb, 30*time.Second, "the JetStream cluster to elect its leader", func() bool {
		leaders := 0
		for _, s := range servers {
			if !s.JetStreamIsCurrent() {
				return false
			}
			if s.JetStreamIsLeader() {
				leaders++
			}
		}
		return leaders == 1
	})
	return servers
}
