package cli_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/cli"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// TestUpReplicas: `nimbus up --nats <cluster> --replicas 3` keeps every
// stream it creates (functions, records, queues, tables' catalogue...) on
// three servers, reads them from their leaders, and stops cleanly when
// interrupted.
func TestUpReplicas(t *testing.T) {
	servers := nodetest.NATSCluster(t, 3)
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb testutil.SyncBuffer
	done := make(chan int)
	go func() {
		done <- cli.Run(ctx, []string{"up", "--dev", "--data", t.TempDir(), "--listen", "127.0.0.1:0",
			"--nats", strings.Join(urls, ","), "--replicas", "3", "--log-level", "warn"}, strings.NewReader(""), &out, &errb)
	}()

	nc, err := nats.Connect(urls[2])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Eventually(t, 30*time.Second, "nimbus up to start", func() bool {
		select {
		case code := <-done:
			t.Fatalf("up exited with %d: %s", code, errb.String())
		default:
		}
		return strings.Contains(out.String(), "Nimbus is up at")
	})
	var infos []*jetstream.StreamInfo
	l := js.ListStreams(ctx)
	for info := range l.Info() {
		infos = append(infos, info)
	}
	if l.Err() != nil || len(infos) < 10 {
		t.Fatalf("the node created %d streams (%v)", len(infos), l.Err())
	}
	for _, info := range infos {
		if info.Config.Replicas != 3 {
			t.Errorf("stream %s has %d replicas, want 3", info.Config.Name, info.Config.Replicas)
		}
		// A follower may answer a direct get before it has applied the
		// last write (store.Store.Replicate).
		if info.Config.AllowDirect {
			t.Errorf("stream %s serves direct gets, which a follower may answer", info.Config.Name)
		}
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("up exited with %d: %s", code, errb.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("up did not stop")
	}
}
