package node_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// TestRaiseReplicas: a node restarted with --replicas 3 on a cluster whose
// streams it created with one replica (the platform's, a table's, a
// bucket's, the stream it made to capture a trigger's subject) scales
// every stream up and keeps its data; restarted with --replicas 1, it
// lowers none.
func TestRaiseReplicas(t *testing.T) {
	servers := nodetest.NATSCluster(t, 3)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	url := strings.Join(urls, ",")
	ctx := context.Background()
	dir := t.TempDir()
	start := func(replicas int) *node.Node {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		began := time.Now()
		n, err := node.Start(sctx, node.Config{DataDir: dir, Listen: "127.0.0.1:0", Dev: true, NATSURL: url, Replicas: replicas})
		if err != nil {
			t.Fatalf("start with %d replicas: %v", replicas, err)
		}
		t.Logf("started with %d replicas in %v", replicas, time.Since(began).Round(time.Millisecond))
		return n
	}
	stop := func(n *node.Node) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := n.Stop(sctx); err != nil {
			t.Fatal(err)
		}
	}
	n := start(1)
	if _, _, err := n.Data.PutTable(ctx, data.TableDef{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c"} {
		if _, err := n.Data.Put(ctx, "orders", json.RawMessage(`{"id":"`+id+`"}`), data.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := n.Data.PutBucket(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Data.PutObject(ctx, "files", "a.txt", strings.NewReader("hello"), 5, data.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	nodetest.Deploy(t, n, api.Function{Name: "echo", Memory: 64}, testutil.BuildWasm(t, "./examples/echo-wasi"))
	if _, err := n.Events.PutTriggers(ctx, "echo", []api.Trigger{{Subject: "orders.*"}}); err != nil {
		t.Fatal(err)
	}
	stop(n)

	// readable: every item and object is there after a restart.
	readable := func(n *node.Node, after string) {
		t.Helper()
		for _, id := range []string{"a", "b", "c"} {
			if _, err := n.Data.Get(ctx, "orders", json.RawMessage(`{"id":"`+id+`"}`)); err != nil {
				t.Fatalf("get %s after %s: %v", id, after, err)
			}
		}
		if _, err := n.Data.HeadObject(ctx, "files", "a.txt"); err != nil {
			t.Fatalf("head a.txt after %s: %v", after, err)
		}
	}
	nc, err := nats.Connect(urls[1])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// replicated: every stream has three replicas.
	replicated := func(after string) {
		t.Helper()
		l := js.ListStreams(ctx)
		count := 0
		managed := false
		for info := range l.Info() {
			count++
			managed = managed || info.Config.Metadata["nimbus.managed"] == "true"
			if info.Config.Replicas != 3 {
				t.Errorf("after %s: stream %s has %d replicas, want 3", after, info.Config.Name, info.Config.Replicas)
			}
		}
		if l.Err() != nil || count < 10 || !managed {
			t.Fatalf("after %s: %d streams, one for the trigger: %v (%v)", after, count, managed, l.Err())
		}
	}

	n = start(3)
	readable(n, "raising replicas")
	replicated("raising replicas")
	stop(n)

	// A node started with fewer replicas than the cluster's (a forgotten
	// flag) leaves every stream at three.
	n = start(1)
	defer stop(n)
	readable(n, "a restart with --replicas 1")
	replicated("a restart with --replicas 1")
}
