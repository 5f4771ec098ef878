package events_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/examples"
)

// TestCrashLosesNoAcceptedInvocation is the async queue's crash test: it
// runs `nimbus up` as a child process, sends 2,000 async invocations of a
// function that appends its invocation id to a stream, kill -9s the server
// mid-way, starts it again on the same data directory, sends the rest, and
// checks that every accepted id ran at least once. It logs the duplicates.
func TestCrashLosesNoAcceptedInvocation(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the nimbus binary and runs it")
	}
	root, err := examples.Root()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nimbus")
	counter := filepath.Join(dir, "counter")
	for _, b := range [][]string{{bin, "./cmd/nimbus"}, {counter, "./internal/events/testdata/counter"}} {
		cmd := exec.Command("go", "build", "-o", b[0], b[1])
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	data := filepath.Join(dir, "data")
	httpAddr, natsAddr := freeAddr(t), freeAddr(t)
	base := "http://" + httpAddr

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "up", "--dev", "--data", data, "--listen", httpAddr, "--nats-listen", natsAddr, "--log-level", "warn")
		cmd.Env = append(os.Environ(), "NIMBUS_TOKEN=")
		logf, _ := os.OpenFile(filepath.Join(dir, "node.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		cmd.Stdout, cmd.Stderr = io.Discard, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := api.NewClient(base, "")
		deadline := time.Now().Add(60 * time.Second)
		for {
			if _, err := c.ListFunctions(context.Background()); err == nil {
				return cmd
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				b, _ := os.ReadFile(filepath.Join(dir, "node.log"))
				t.Fatalf("nimbus up did not come up:\n%s", b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	node := start()
	t.Cleanup(func() {
		if node.Process != nil {
			node.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { node.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				node.Process.Kill()
			}
		}
	})

	// The counting stream lives on the node's own NATS server.
	nc, err := nats.Connect("nats://"+natsAddr, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "CRASHCOUNT", Subjects: []string{"crash.count"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(base, "")
	code, err := os.ReadFile(counter)
	if err != nil {
		t.Fatal(err)
	}
	up, err := c.PutCode(ctx, strings.NewReader(string(code)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutFunction(ctx, &api.Function{Name: "counter", Runtime: "process", Code: up.Digest, Memory: 128, Timeout: "10s", Max: 8,
		Env: map[string]string{"NATS_URL": "nats://" + natsAddr, "COUNT_SUBJECT": "crash.count"}}); err != nil {
		t.Fatal(err)
	}

	const total = 2000
	var (
		mu       sync.Mutex
		accepted = map[string]bool{}
		next     atomic.Int64
		killed   atomic.Bool
	)
	send := func(stopAt int64) {
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > stopAt {
						return
					}
					id, err := c.InvokeAsync(ctx, "counter", []byte(fmt.Sprintf(`{"i":%d}`, i)), "")
					if err != nil {
						if killed.Load() {
							return // the node is down: not accepted
						}
						continue
					}
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}

	// First half, with a kill -9 while it is under way.
	go func() {
		for next.Load() < total/2 {
			time.Sleep(time.Millisecond)
		}
		killed.Store(true)
		node.Process.Signal(syscall.SIGKILL)
	}()
	send(total)
	node.Wait()
	mu.Lock()
	before := len(accepted)
	mu.Unlock()
	t.Logf("killed the node after %d sends; %d accepted", next.Load(), before)

	node = start()
	killed.Store(false)
	sent := next.Load()
	next.Store(sent)
	send(sent + int64(total-before))
	mu.Lock()
	t.Logf("after the restart: %d accepted in all", len(accepted))
	mu.Unlock()

	// Every accepted id must be counted; unacknowledged work of the dead
	// node comes back after the consumer's ack wait (30s).
	seen := map[string]int{}
	var lastSeq uint64
	deadline := time.Now().Add(3 * time.Minute)
	for {
		cons, err := js.OrderedConsumer(ctx, "CRASHCOUNT", jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: lastSeq + 1})
		if err == nil {
			for {
				batch, err := cons.FetchNoWait(1000)
				if err != nil {
					break
				}
				n := 0
				for m := range batch.Messages() {
					n++
					seen[string(m.Data())]++
					if md, err := m.Metadata(); err == nil {
						lastSeq = md.Sequence.Stream
					}
				}
				if n == 0 {
					break
				}
			}
		}
		missing := 0
		mu.Lock()
		for id := range accepted {
			if seen[id] == 0 {
				missing++
			}
		}
		mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted invocations never ran", missing, len(accepted))
		}
		time.Sleep(500 * time.Millisecond)
	}
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("crash test: %d accepted, all completed; %d duplicate runs", len(accepted), dups)
	if f, err := os.Create(filepath.Join(os.TempDir(), "nimbus-crash-result.txt")); err == nil {
		fmt.Fprintf(f, "accepted=%d duplicates=%d\n", len(accepted), dups)
		f.Close()
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
