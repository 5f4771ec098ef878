package data_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
)

// child runs `nimbus up` as a child process on a data directory that
// survives restarts, for the tests that kill it or measure its memory.
type child struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	cmd  *exec.Cmd
}

// binDir holds the binaries the tests build, once per test binary run.
var binDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "nimbus-data-test-bin") })

var (
	buildMu sync.Mutex
	built   = map[string]error{}
)

// buildBinary builds a main package of the module into binDir once.
func buildBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	dir, err := binDir()
	if err != nil {
		t.Fatal(err)
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	err, done := built[name]
	if !done {
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg)
		cmd.Dir = filepath.Join(filepath.Dir(file), "..", "..")
		if out, berr := cmd.CombinedOutput(); berr != nil {
			err = fmt.Errorf("go build %s: %v\n%s", pkg, berr, out)
		}
		built[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, name)
}

func newChild(t *testing.T) *child {
	if testing.Short() {
		t.Skip("builds the nimbus binary and runs it")
	}
	bin := filepath.Dir(buildBinary(t, "nimbus", "./cmd/nimbus"))
	c := &child{t: t, bin: bin, dir: t.TempDir(), addr: freeAddr(t)}
	t.Cleanup(func() {
		if c.cmd != nil && c.cmd.ProcessState == nil {
			c.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { c.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				c.cmd.Process.Kill()
				<-done
			}
		}
	})
	return c
}

func (c *child) client() *api.Client { return api.NewClient("http://"+c.addr, "") }

func (c *child) start() {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, "nimbus"), "up", "--dev", "--data", filepath.Join(c.dir, "data"), "--listen", c.addr, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "NIMBUS_TOKEN=")
	logf, _ := os.OpenFile(filepath.Join(c.dir, "node.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	cmd.Stdout, cmd.Stderr = io.Discard, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.cmd = cmd
	deadline := time.Now().Add(90 * time.Second)
	for {
		if _, err := c.client().ListTables(context.Background()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			b, _ := os.ReadFile(filepath.Join(c.dir, "node.log"))
			c.t.Fatalf("nimbus up did not come up:\n%s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *child) kill9() {
	c.cmd.Process.Signal(syscall.SIGKILL)
	c.cmd.Wait()
}

// run runs the nimbus CLI against the child.
func (c *child) run(args ...string) string {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, "nimbus"), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "NIMBUS_URL=http://"+c.addr, "NIMBUS_TOKEN=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		c.t.Fatalf("nimbus %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestTableTriggerKill9 deploys a manifest with a table trigger, writes
// 20 keys 30 times each while the server is kill -9ed and restarted, and
// checks what the function recorded (through the data API, with the
// credential the process runtime put in its environment): every
// acknowledged write exactly once, in order per key, with duplicates only
// as redelivered records of the batch in flight at the kill.
func TestTableTriggerKill9(t *testing.T) {
	c := newChild(t)
	buildBinary(t, "tablesink", "./internal/data/testdata/tablesink")
	c.start()
	const (
		keys   = 20
		writes = 30
		batch  = 10
	)
	manifest := fmt.Sprintf(`tables:
  orders: {key: k, history: 64}
  seen: {key: pk, sort: sk}
functions:
  sink:
    runtime: process
    code: %s
    memory: 128
    timeout: 20s
    uses: {tables: [seen]}
    triggers:
      - {table: orders, batch: %d}
`, filepath.Join(c.bin, "tablesink"), batch)
	if err := os.WriteFile(filepath.Join(c.dir, "nimbus.yaml"), []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	c.run("deploy", "-f", "nimbus.yaml")

	ctx := context.Background()
	var (
		mu    sync.Mutex
		acked = map[string][]uint64{} // key -> revisions acknowledged to the writer
		down  sync.RWMutex            // held while the node restarts
		wg    sync.WaitGroup
	)
	for k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Sprintf("key%02d", k)
			for i := 0; i < writes; {
				down.RLock()
				rev, err := c.client().PutItem(ctx, "orders", &api.PutItemRequest{Item: json.RawMessage(fmt.Sprintf(`{"k":%q,"i":%d}`, key, i))})
				down.RUnlock()
				if err != nil {
					time.Sleep(20 * time.Millisecond) // the node is down: try again
					continue
				}
				mu.Lock()
				acked[key] = append(acked[key], rev)
				mu.Unlock()
				i++
				// Paced, so that the trigger has delivered (and durably
				// acknowledged) many batches well before the kill.
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	// Kill -9 once about two thirds of the writes are in (some 2 s of
	// deliveries), with batches in flight, then restart on the same data
	// directory.
	for {
		mu.Lock()
		n := 0
		for _, r := range acked {
			n += len(r)
		}
		mu.Unlock()
		if n >= keys*writes*2/3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	killedAt := time.Now()
	c.kill9()
	down.Lock()
	c.start()
	down.Unlock()
	wg.Wait()

	// Wait until every acknowledged write is recorded; the batch the dead
	// node held comes back after the consumer's ack wait (10 s).
	type rec struct {
		Rev         uint64 `json:"rev"`
		At          int64  `json:"at"`
		Pos         int    `json:"pos"`
		Inv         string `json:"inv"`
		Redelivered bool   `json:"redelivered"`
	}
	var seen map[string][]rec
	deadline := time.Now().Add(3 * time.Minute)
	for {
		seen = map[string][]rec{}
		cur := ""
		for {
			p, err := c.client().Scan(ctx, "seen", 1000, cur)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Items {
				var r rec
				var kk struct{ PK string }
				json.Unmarshal(e.Item, &r)
				json.Unmarshal(e.Item, &kk)
				seen[kk.PK] = append(seen[kk.PK], r)
			}
			if cur = p.Cursor; cur == "" {
				break
			}
		}
		missing := 0
		for key, revs := range acked {
			got := map[uint64]bool{}
			for _, r := range seen[key] {
				got[r.Rev] = true
			}
			for _, rev := range revs {
				if !got[rev] {
					missing++
				}
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(c.dir, "node.log"))
			t.Fatalf("%d acknowledged writes never reached the function\nnode log:\n%s", missing, b)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// The bound. A batch is acknowledged after the function returns, but
	// JetStream's file store writes a consumer's acknowledgements to disk
	// at most every 100 ms, so a kill -9 forgets the acknowledgements of
	// its last ~100 ms (they come back as fresh deliveries, not marked
	// redelivered) as well as the batch in flight (marked redelivered).
	// So a duplicate must have been first delivered shortly before the
	// kill, and there are no more of them than records delivered then.
	const window = time.Second // the flush interval, an invocation, and slack under load
	dups, redelivered, recent, before := 0, 0, 0, 0
	for key, rs := range seen {
		// In the order the function saw them: invocations by time, records
		// by position in their batch.
		sort.Slice(rs, func(i, j int) bool {
			if rs[i].At != rs[j].At {
				return rs[i].At < rs[j].At
			}
			return rs[i].Pos < rs[j].Pos
		})
		first := map[uint64]int64{}
		var last uint64
		for _, r := range rs {
			if r.Redelivered {
				redelivered++
			}
			if at, dup := first[r.Rev]; dup {
				dups++
				if killedAt.Sub(time.Unix(0, at)) > window {
					t.Errorf("%s: revision %d first delivered %v before the kill came again: a durable acknowledgement was lost",
						key, r.Rev, killedAt.Sub(time.Unix(0, at)))
				}
				continue
			}
			first[r.Rev] = r.At
			if r.At < killedAt.UnixNano() {
				before++
			}
			if d := killedAt.Sub(time.Unix(0, r.At)); d >= 0 && d <= window {
				recent++
			}
			if r.Rev <= last {
				t.Errorf("%s: revision %d after %d: out of order", key, r.Rev, last)
			}
			last = r.Rev
		}
	}
	t.Logf("kill -9: %d writes acknowledged over %d keys, all delivered in order per key, %d of them before the kill; %d duplicates (%d marked redelivered), bound %d (records first delivered in the %v before the kill, plus one batch)",
		keys*writes, keys, before, dups, redelivered, recent+batch, window)
	if dups > recent+batch {
		t.Errorf("%d duplicates, want at most %d", dups, recent+batch)
	}
}

// TestObjectMemory uploads and downloads a 200 MB object through a child
// `nimbus up` and checks that its resident memory grows by less than 64 MB
// for the upload, and by less than 80 MB for both (see below).
func TestObjectMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	c := newChild(t)
	c.start()
	ctx := context.Background()
	cl := c.client()
	if _, err := cl.PutBucket(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	// Warm up the paths (a small object), so the baseline includes the
	// code and buffers any request needs.
	if _, err := cl.PutObject(ctx, "big", "small", strings.NewReader(strings.Repeat("x", 1<<20)), 1<<20, "", nil); err != nil {
		t.Fatal(err)
	}
	base := procStatus(t, c.cmd.Process.Pid, "VmRSS")
	const size = 200 << 20
	if _, err := cl.PutObject(ctx, "big", "obj", io.LimitReader(pattern{}, size), size, "", nil); err != nil {
		t.Fatal(err)
	}
	afterPut := procStatus(t, c.cmd.Process.Pid, "VmHWM")
	resp, err := cl.GetObject(ctx, "big", "obj", "")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	peak := procStatus(t, c.cmd.Process.Pid, "VmHWM")
	t.Logf("resident memory: %d MB before, peak %d MB after the upload, peak %d MB after the download (%d MB resident now)",
		base>>20, afterPut>>20, peak>>20, procStatus(t, c.cmd.Process.Pid, "VmRSS")>>20)
	if growth := afterPut - base; growth >= 64<<20 {
		t.Errorf("resident memory grew by %d MB uploading a 200 MB object, want under 64 MB", growth>>20)
	}
	// The target is 64 MB for the upload and download together;
	// the growth was 44-56 MB in nine runs on 2026-11-28 (54-62 MB on
	// another machine before, 68 MB at worst in ten), so this bound leaves
	// room for a loaded machine.
	// What remains is not Nimbus's buffers (a put has 16 chunks in flight
	// and 8 being read or hashed, a download 4 chunks pulled ahead: about 7 MB) but
	// JetStream's file store, which holds the 8 MB block being written for
	// 10 s after the last write and loads each 8 MB block it reads, times
	// two for the garbage collector's headroom (GOGC=100).
	if growth := peak - base; growth >= 80<<20 {
		t.Errorf("resident memory grew by %d MB moving a 200 MB object, want under 80 MB (target 64 MB, see above)", growth>>20)
	}
}

// pattern is an endless reader of incompressible-enough bytes.
type pattern struct{}

func (pattern) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return len(p), nil
}

// procStatus reads a size field (kB) of /proc/PID/status, in bytes.
func procStatus(t *testing.T, pid int, field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// TestUnfinishedPutKill9: a put cut off by a kill -9 of `nimbus up` left
// its chunks in the bucket's stream for good, named by no object; the
// restarted node purges them. Seen through the bucket's stored bytes.
func TestUnfinishedPutKill9(t *testing.T) {
	c := newChild(t)
	c.start()
	ctx := context.Background()
	cl := c.client()
	if _, err := cl.PutBucket(ctx, "uploads"); err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		t.Helper()
		bs, err := cl.ListBuckets(ctx)
		if err != nil || len(bs) != 1 {
			t.Fatalf("buckets: %+v, %v", bs, err)
		}
		return bs[0].StoredBytes
	}
	before := stored()
	// A 50 MB put that sends 8 MB and no more.
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "PUT /api/v1/buckets/uploads/objects/big HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", c.addr, 50<<20)
	if _, err := conn.Write(make([]byte, 8<<20)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for stored() < before+4<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("the put's chunks never reached the stream: %d bytes stored", stored())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.kill9()
	c.start()
	deadline = time.Now().Add(30 * time.Second)
	for got := stored(); got > before+1<<20; got = stored() {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes stored after the restart, %d before the put: its chunks were never purged", got, before)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l, err := cl.ListObjects(ctx, "uploads", "", "", "", 0)
	if err != nil || len(l.Objects) != 0 {
		t.Fatalf("objects after the restart: %+v, %v", l, err)
	}
}
