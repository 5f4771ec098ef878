package process

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

var (
	buildDir  string
	buildOnce sync.Map // package path -> *builtBinary
)

type builtBinary struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nimbus-process-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// goBinary builds a main package of this module once per test process and
// returns its bytes. pkg is relative to the module root.
func goBinary(tb testing.TB, pkg string) []byte {
	tb.Helper()
	v, _ := buildOnce.LoadOrStore(pkg, &builtBinary{})
	b := v.(*builtBinary)
	b.once.Do(func() {
		root, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			b.err = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		out := filepath.Join(buildDir, strings.ReplaceAll(pkg, "/", "_"))
		cmd := exec.Command("go", "build", "-o", out, "./"+pkg)
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, msg)
			return
		}
		b.path = out
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	data, err := os.ReadFile(b.path)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

func echoBinary(tb testing.TB) []byte { return goBinary(tb, "examples/lambda-go-echo") }
func fixtureBinary(tb testing.TB) []byte {
	return goBinary(tb, "internal/runtime/process/testdata/fixture")
}

func shellBootstrap(tb testing.TB) []byte {
	tb.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		tb.Skip("curl is not installed")
	}
	b, err := os.ReadFile("../../../examples/shell-runtime/bootstrap")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

type zipEntry struct {
	name string
	body string
	mode os.FileMode
}

func makeZip(tb testing.TB, entries ...zipEntry) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h.SetMode(mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write([]byte(e.body)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func testLogger(tb testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tbWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tbWriter struct{ tb testing.TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newRuntime(tb testing.TB, mod ...func(*Config)) *Runtime {
	tb.Helper()
	cfg := Config{WorkDir: tb.TempDir(), Logger: testLogger(tb)}
	if _, ok := tb.(*testing.B); ok {
		cfg.Logger = nil // benchmark output stays readable
	}
	for _, m := range mod {
		m(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Close(context.Background()); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return r
}

func digestOf(code []byte) string {
	sum := sha256.Sum256(code)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// newSpec is a normalized process spec for code.
func newSpec(name string, code []byte) *function.Spec {
	s := &function.Spec{Name: name, Runtime: function.RuntimeProcess, Code: digestOf(code)}
	s.Normalize()
	return s
}

func prepare(tb testing.TB, r *Runtime, spec *function.Spec, code []byte) {
	tb.Helper()
	if err := r.Prepare(context.Background(), spec, code); err != nil {
		tb.Fatalf("Prepare: %v", err)
	}
}

func start(tb testing.TB, r *Runtime, spec *function.Spec) *instance {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	inst, err := r.Start(ctx, spec)
	if err != nil {
		tb.Fatalf("Start: %v", err)
	}
	tb.Cleanup(func() { _ = inst.Close(context.Background()) })
	return inst.(*instance)
}

func invoke(tb testing.TB, in *instance, payload string, timeout time.Duration) (*runtime.Result, error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return in.Invoke(ctx, &runtime.Request{ID: "req-" + newID(), Payload: []byte(payload)})
}

func mustInvoke(tb testing.TB, in *instance, payload string) *runtime.Result {
	tb.Helper()
	res, err := invoke(tb, in, payload, 20*time.Second)
	if err != nil {
		tb.Fatalf("Invoke(%s): %v", payload, err)
	}
	return res
}

type fixtureResult struct {
	PID   int      `json:"pid"`
	Start int64    `json:"start"`
	End   int64    `json:"end"`
	Env   []string `json:"env"`
	Data  string   `json:"data"`
}

func decode(tb testing.TB, res *runtime.Result) fixtureResult {
	tb.Helper()
	if res.Err != nil {
		tb.Fatalf("function error: %v\nlogs:\n%s", res.Err, res.Logs)
	}
	var fr fixtureResult
	if err := json.Unmarshal(res.Payload, &fr); err != nil {
		tb.Fatalf("payload %q: %v", res.Payload, err)
	}
	return fr
}

// liveGroupMembers lists the processes of process group pgid that are not
// zombies. Zombies are dead: they are only waiting for a parent (possibly an
// init that never reaps) to collect them.
func liveGroupMembers(pgid int) []int {
	var live []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := procStat(pid)
		if ok && st.pgrp == pgid && st.state != "Z" && st.state != "X" {
			live = append(live, pid)
		}
	}
	return live
}

type stat struct {
	state string
	pgrp  int
}

func procStat(pid int) (stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	// comm may hold spaces and parentheses: fields start after the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 3 {
		return stat{}, false
	}
	pgrp, _ := strconv.Atoi(f[2])
	return stat{state: f[0], pgrp: pgrp}, true
}

func processAlive(pid int) bool {
	st, ok := procStat(pid)
	return ok && st.state != "Z" && st.state != "X"
}

// eventually polls cond until it holds or d passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
