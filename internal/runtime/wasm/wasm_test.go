package wasm

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// Modules built from source for these tests (once per process).
const (
	pkgHello    = "./examples/hello"
	pkgEchoSDK  = "./examples/echo-sdk"
	pkgEchoWASI = "./examples/echo-wasi"
	pkgProbe    = "./internal/runtime/wasm/testdata/probe"
	pkgCommand  = "./internal/runtime/wasm/testdata/command"
)

// testCacheDir is the compilation cache the tests share, so that each module
// is compiled once per process: compiling a Go module takes seconds, and
// tens of seconds under -race (wazero's compiler is then instrumented).
// NIMBUS_WASM_TEST_CACHE names a directory that persists across runs.
var testCacheDir string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	testCacheDir = os.Getenv("NIMBUS_WASM_TEST_CACHE")
	if testCacheDir == "" {
		dir, err := os.MkdirTemp("", "nimbus-wasm-cache-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		testCacheDir = dir
	}
	return m.Run()
}

// newRuntime returns a Runtime closed at the end of the test, sharing
// testCacheDir unless cfg names a cache.
func newRuntime(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = testCacheDir
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

func newSpec(name string, code []byte) *function.Spec {
	s := &function.Spec{Name: name, Runtime: function.RuntimeWasm, Code: Digest(code)}
	s.Normalize()
	return s
}

// prepared returns a spec of code, prepared in r.
func prepared(t testing.TB, r *Runtime, name string, code []byte) *function.Spec {
	t.Helper()
	spec := newSpec(name, code)
	if err := r.Prepare(context.Background(), spec, code); err != nil {
		t.Fatalf("Prepare %s: %v", name, err)
	}
	return spec
}

func start(t testing.TB, r *Runtime, spec *function.Spec) runtime.Instance {
	t.Helper()
	inst, err := r.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start %s: %v", spec.Name, err)
	}
	t.Cleanup(func() { _ = inst.Close(context.Background()) })
	return inst
}

func invoke(t testing.TB, inst runtime.Instance, payload string, timeout time.Duration) (*runtime.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return inst.Invoke(ctx, &runtime.Request{ID: "inv-1", TraceID: "trace-1", Payload: []byte(payload)})
}

// mustInvoke invokes and wants a successful result.
func mustInvoke(t testing.TB, inst runtime.Instance, payload string) []byte {
	t.Helper()
	res, err := invoke(t, inst, payload, 10*time.Second)
	if err != nil {
		t.Fatalf("Invoke(%.40q): %v", payload, err)
	}
	if res.Err != nil {
		t.Fatalf("Invoke(%.40q): function error %v; logs:\n%s", payload, res.Err, res.Logs)
	}
	return res.Payload
}

// wantFunctionError invokes and wants a function error of type typ.
func wantFunctionError(t *testing.T, inst runtime.Instance, payload, typ string) *runtime.Result {
	t.Helper()
	res, err := invoke(t, inst, payload, 10*time.Second)
	if err != nil {
		t.Fatalf("Invoke(%s): %v; want a function error", payload, err)
	}
	if res.Err == nil {
		t.Fatalf("Invoke(%s) = %q; want a function error %s", payload, res.Payload, typ)
	}
	if res.Err.Type != typ {
		t.Fatalf("Invoke(%s): error type %q (%s); want %q", payload, res.Err.Type, res.Err.Message, typ)
	}
	return res
}

func hexBytes(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

func TestCommandEcho(t *testing.T) {
	r := newRuntime(t, Config{})
	spec := prepared(t, r, "echo", testutil.BuildWasm(t, pkgEchoWASI))
	for i, payload := range []string{`{"a":1}`, "", strings.Repeat("z", 300<<10)} {
		inst := start(t, r, spec)
		if !inst.Reusable() {
			t.Fatalf("#%d: Reusable() = false before the invocation", i)
		}
		if got := mustInvoke(t, inst, payload); string(got) != payload {
			t.Errorf("#%d: got %d bytes %.40q, want %d bytes %.40q", i, len(got), got, len(payload), payload)
		}
		if inst.Reusable() {
			t.Errorf("#%d: Reusable() = true after the invocation; a command runs once", i)
		}
		if _, err := invoke(t, inst, payload, time.Second); err == nil {
			t.Errorf("#%d: second Invoke on a command instance succeeded; want an error", i)
		}
		if d := inst.(runtime.InitReporter).InitDuration(); d <= 0 {
			t.Errorf("#%d: InitDuration() = %v, want > 0", i, d)
		}
	}
}

func TestCommandExitError(t *testing.T) {
	r := newRuntime(t, Config{})
	inst := start(t, r, prepared(t, r, "command", testutil.BuildWasm(t, pkgCommand)))
	res := wantFunctionError(t, inst, "exit:cannot handle Ada", "Runtime.ExitError")
	if want := "cannot handle Ada"; res.Err.Message != want {
		t.Errorf("message = %q, want %q", res.Err.Message, want)
	}
	if !bytes.Contains(res.Logs, []byte("cannot handle Ada")) {
		t.Errorf("logs = %q, want the guest's stderr", res.Logs)
	}
}

func TestSDK(t *testing.T) {
	r := newRuntime(t, Config{})
	big := `"` + strings.Repeat("y", 200<<10) + `"` // bigger than the SDK's first buffer
	tests := []struct {
		name, pkg    string
		code         []byte
		payload      string
		want         string
		wantSameAsIn bool
	}{
		{name: "hello", pkg: pkgHello, payload: `{"name":"Ada"}`, want: `{"message":"Hello, Ada!"}`},
		{name: "hello-default", pkg: pkgHello, payload: `{}`, want: `{"message":"Hello, World!"}`},
		{name: "echo", pkg: pkgEchoSDK, payload: `{"deep":{"x":[1,2,3]}}`, wantSameAsIn: true},
		{name: "echo-big", pkg: pkgEchoSDK, payload: big, wantSameAsIn: true},
		{name: "wat", code: examples.EchoWAT, payload: `{"wat":true}`, wantSameAsIn: true},
		{name: "wat-big", code: examples.EchoWAT, payload: big, wantSameAsIn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := tt.code
			if code == nil {
				code = testutil.BuildWasm(t, tt.pkg)
			}
			inst := start(t, r, prepared(t, r, tt.name, code))
			want := tt.want
			if tt.wantSameAsIn {
				want = tt.payload
			}
			for i := 0; i < 3; i++ {
				if got := mustInvoke(t, inst, tt.payload); string(got) != want {
					t.Fatalf("#%d: got %.60q (%d bytes), want %.60q (%d bytes)", i, got, len(got), want, len(want))
				}
				if !inst.Reusable() {
					t.Fatalf("#%d: Reusable() = false after a successful invocation", i)
				}
			}
		})
	}
}

func TestSDKWarmReuse(t *testing.T) {
	r := newRuntime(t, Config{})
	inst := start(t, r, prepared(t, r, "probe", testutil.BuildWasm(t, pkgProbe)))
	if d := inst.(runtime.InitReporter).InitDuration(); d <= 0 {
		t.Errorf("InitDuration() = %v, want > 0", d)
	}
	deadline := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	for i := 1; i <= 5; i++ {
		id := fmt.Sprintf("inv-%d", i)
		res, err := inst.Invoke(context.Background(), &runtime.Request{ID: id, TraceID: "00-trace-" + id, Deadline: deadline, Payload: []byte(`{}`)})
		if err != nil || res.Err != nil {
			t.Fatalf("Invoke #%d: %v %v", i, err, res.Err)
		}
		var got struct {
			Count      int    `json:"count"`
			ID         string `json:"id"`
			Trace      string `json:"trace"`
			DeadlineMS int64  `json:"deadline_ms"`
		}
		if err := json.Unmarshal(res.Payload, &got); err != nil {
			t.Fatalf("Invoke #%d: %v in %q", i, err, res.Payload)
		}
		if got.Count != i {
			t.Errorf("Invoke #%d: count = %d, want %d (one instance serves all)", i, got.Count, i)
		}
		if got.ID != id || got.Trace != "00-trace-"+id {
			t.Errorf("Invoke #%d: id, trace = %q, %q; want %q, %q", i, got.ID, got.Trace, id, "00-trace-"+id)
		}
		if got.DeadlineMS != deadline.UnixMilli() {
			t.Errorf("Invoke #%d: deadline_ms = %d, want %d", i, got.DeadlineMS, deadline.UnixMilli())
		}
		if res.MaxMemoryBytes == 0 {
			t.Errorf("Invoke #%d: MaxMemoryBytes = 0, want the memory size", i)
		}
	}
}

func TestTimeout(t *testing.T) {
	r := newRuntime(t, Config{})
	probe := prepared(t, r, "probe", testutil.BuildWasm(t, pkgProbe))
	command := prepared(t, r, "command", testutil.BuildWasm(t, pkgCommand))
	tests := []struct {
		name    string
		spec    *function.Spec
		payload string
		after   string // a payload the next instance serves
	}{
		{"sdk-busy-loop", probe, `{"mode":"spin"}`, `{}`},
		{"sdk-sleep", probe, `{"mode":"sleep"}`, `{}`},
		{"command-busy-loop", command, "spin", "hi"},
	}
	const timeout = 200 * time.Millisecond
	const slack = 400 * time.Millisecond
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inst := start(t, r, tt.spec)
			began := time.Now()
			_, err := invoke(t, inst, tt.payload, timeout)
			took := time.Since(began)
			if !errors.Is(err, function.ErrTimeout) {
				t.Fatalf("Invoke: err = %v, want ErrTimeout", err)
			}
			if took > timeout+slack {
				t.Errorf("Invoke took %v, want at most %v", took, timeout+slack)
			}
			if inst.Reusable() {
				t.Errorf("Reusable() = true after a timeout")
			}
			next := start(t, r, tt.spec)
			if _, err := invoke(t, next, tt.after, 10*time.Second); err != nil {
				t.Fatalf("Invoke on a new instance after the timeout: %v", err)
			}
		})
	}
}

func TestMemoryLimit(t *testing.T) {
	r := newRuntime(t, Config{})
	t.Run("go", func(t *testing.T) {
		spec := prepared(t, r, "probe", testutil.BuildWasm(t, pkgProbe))
		spec.MemoryMB = 32
		inst := start(t, r, spec)
		res, err := invoke(t, inst, `{"mode":"alloc","mb":0}`, 30*time.Second)
		if !errors.Is(err, function.ErrMemoryLimit) {
			t.Fatalf("Invoke: err = %v (result %+v), want ErrMemoryLimit", err, res)
		}
		if want := "memory limit exceeded (32 MB)"; !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
		if res == nil || res.MaxMemoryBytes == 0 || res.MaxMemoryBytes > 32<<20 {
			t.Errorf("MaxMemoryBytes = %v, want in (0, 32 MB]", res)
		}
		if inst.Reusable() {
			t.Errorf("Reusable() = true after exceeding the memory limit")
		}
		// Under the limit, a new instance serves.
		out := mustInvoke(t, start(t, r, spec), `{"mode":"alloc","mb":8}`)
		if string(out) != `{"mb":8}` {
			t.Errorf("got %s, want {\"mb\":8}", out)
		}
	})
	t.Run("wat", func(t *testing.T) {
		// The WAT echo grows its memory to hold a big event; a refused grow
		// traps it.
		spec := prepared(t, r, "wat", examples.EchoWAT)
		spec.MemoryMB = 1
		_, err := invoke(t, start(t, r, spec), strings.Repeat("m", 2<<20), 10*time.Second)
		if !errors.Is(err, function.ErrMemoryLimit) {
			t.Fatalf("Invoke: err = %v, want ErrMemoryLimit", err)
		}
	})
	t.Run("initial-memory-too-big", func(t *testing.T) {
		code := testutil.BuildWasm(t, pkgProbe)
		spec := newSpec("tiny", code)
		spec.MemoryMB = 1
		err := r.Prepare(context.Background(), spec, code)
		var fe *function.FieldError
		if !errors.As(err, &fe) || fe.Field != "memory" {
			t.Fatalf("Prepare with 1 MB: err = %v, want a FieldError on memory", err)
		}
	})
}

func TestSandbox(t *testing.T) {
	r := newRuntime(t, Config{})
	spec := prepared(t, r, "probe", testutil.BuildWasm(t, pkgProbe))
	spec.Env = map[string]string{"GREETING": "hello", "TABLE": "users"}
	t.Setenv("NIMBUS_HOST_SECRET", "must-not-leak")
	inst := start(t, r, spec)

	// A listener on the host: a guest with network access would reach it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()

	for _, tt := range []struct{ name, payload string }{
		{"read-etc-passwd", `{"mode":"file"}`},
		{"write-file", `{"mode":"write"}`},
		{"dial-host", `{"mode":"dial","addr":"` + l.Addr().String() + `"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := wantFunctionError(t, inst, tt.payload, "Denied")
			t.Logf("denied: %s", res.Err.Message)
		})
	}
	select {
	case <-accepted:
		t.Errorf("the guest connected to a host listener")
	default:
	}
	t.Run("env", func(t *testing.T) {
		var env []string
		if err := json.Unmarshal(mustInvoke(t, inst, `{"mode":"env"}`), &env); err != nil {
			t.Fatal(err)
		}
		want := []string{"GREETING=hello", "TABLE=users"}
		if strings.Join(env, "\n") != strings.Join(want, "\n") {
			t.Errorf("guest environment = %q, want exactly %q (no HOME, PATH or host variables)", env, want)
		}
	})
	if !inst.Reusable() {
		t.Errorf("Reusable() = false after denied probes; the guest handled them")
	}
}

func TestFunctionErrors(t *testing.T) {
	r := newRuntime(t, Config{})
	spec := prepared(t, r, "probe", testutil.BuildWasm(t, pkgProbe))
	inst := start(t, r, spec)

	res := wantFunctionError(t, inst, `{"mode":"error"}`, "Error")
	if res.Err.Message != "plain failure" {
		t.Errorf("message = %q, want %q", res.Err.Message, "plain failure")
	}
	res = wantFunctionError(t, inst, `{"mode":"typed"}`, "Validation")
	if res.Err.Message != "name is required" {
		t.Errorf("message = %q, want %q", res.Err.Message, "name is required")
	}
	res = wantFunctionError(t, inst, `{"mode":"panic"}`, "Runtime.Panic")
	if res.Err.Message != "boom in handler" || len(res.Err.Trace) == 0 {
		t.Errorf("panic error = %q with %d trace lines, want %q and a stack", res.Err.Message, len(res.Err.Trace), "boom in handler")
	}
	if !inst.Reusable() {
		t.Fatalf("Reusable() = false after a recovered panic; the SDK keeps serving")
	}
	if got := mustInvoke(t, inst, `{"mode":"env"}`); string(got) != `[]` {
		t.Fatalf("after errors: got %s, want []", got)
	}

	// A panic the SDK cannot recover ends the instance.
	res = wantFunctionError(t, inst, `{"mode":"crash"}`, "Runtime.ExitError")
	if !strings.Contains(res.Err.Message, "boom on a goroutine") {
		t.Errorf("crash message = %q, want the panic text", res.Err.Message)
	}
	if inst.Reusable() {
		t.Errorf("Reusable() = true after the guest crashed")
	}
	if _, err := invoke(t, inst, `{}`, time.Second); err == nil {
		t.Errorf("Invoke on a crashed instance succeeded; want an error")
	}

	t.Run("trap", func(t *testing.T) {
		// A module that traps right after taking its invocation.
		code := hexBytes("0061736d01000000010a0260027f7f017f600000020f01066e696d627573046e6578740000030201010503010001071302066d656d6f72790200065f737461727400010a0c010a004100410010001a000b")
		inst := start(t, r, prepared(t, r, "trap", code))
		res := wantFunctionError(t, inst, `{}`, "Runtime.ExitError")
		if !strings.Contains(res.Err.Message, "unreachable") {
			t.Errorf("trap message = %q, want it to name the trap", res.Err.Message)
		}
		if inst.Reusable() {
			t.Errorf("Reusable() = true after a trap")
		}
	})
}

func TestLogs(t *testing.T) {
	r := newRuntime(t, Config{})
	inst := start(t, r, prepared(t, r, "probe", testutil.BuildWasm(t, pkgProbe)))

	res, err := invoke(t, inst, `{"log":1000}`, 10*time.Second)
	if err != nil || res.Err != nil {
		t.Fatalf("Invoke: %v %v", err, res.Err)
	}
	for _, want := range []string{"probe: init\n", strings.Repeat("x", 99) + "\n", "probe: logged for inv-1\n"} {
		if !bytes.Contains(res.Logs, []byte(want)) {
			t.Errorf("logs lack %.30q:\n%s", want, res.Logs)
		}
	}
	if res.LogsTruncated {
		t.Errorf("LogsTruncated = true for 1 KB of logs")
	}

	res, err = invoke(t, inst, `{"log":1000000}`, 10*time.Second)
	if err != nil || res.Err != nil {
		t.Fatalf("Invoke: %v %v", err, res.Err)
	}
	if !res.LogsTruncated {
		t.Errorf("LogsTruncated = false for 1 MB of logs")
	}
	if len(res.Logs) > runtime.MaxLogBytes {
		t.Errorf("len(Logs) = %d, want at most %d", len(res.Logs), runtime.MaxLogBytes)
	}
	if bytes.Contains(res.Logs, []byte("probe: init")) {
		t.Errorf("second invocation's logs hold the first's")
	}
	if !bytes.HasSuffix(res.Logs, []byte("probe: logged for inv-1\n")) {
		t.Errorf("truncated logs lost their tail: ...%q", res.Logs[max(0, len(res.Logs)-100):])
	}
}

func TestRestartUsesDiskCache(t *testing.T) {
	code := testutil.BuildWasm(t, pkgHello)
	spec := newSpec("hello", code)

	// The first process compiles (or finds hello in the shared test cache,
	// if an earlier test compiled it: either way it is on disk afterwards).
	first := newRuntime(t, Config{})
	if err := first.Prepare(context.Background(), spec, code); err != nil {
		t.Fatal(err)
	}
	if s := first.Stats(); s.Compiles != 1 {
		t.Fatalf("first process: Stats = %+v, want 1 compile", s)
	}
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A new process: nothing compiled in memory; Start loads the code and
	// finds the machine code on disk.
	loads := 0
	second := newRuntime(t, Config{Code: func(_ context.Context, digest string) ([]byte, error) {
		loads++
		if digest != spec.Code {
			return nil, fmt.Errorf("unknown digest %s", digest)
		}
		return code, nil
	}})
	inst := start(t, second, spec)
	if got := mustInvoke(t, inst, `{"name":"Cache"}`); string(got) != `{"message":"Hello, Cache!"}` {
		t.Errorf("got %s", got)
	}
	s := second.Stats()
	if s.Compiles != 1 || s.FullCompiles != 0 || s.CacheHits != 1 || loads != 1 {
		t.Errorf("after restart: Stats = %+v, loads = %d; want 1 compile from the disk cache, 0 full, 1 load", s, loads)
	}
}

func TestFullCompileCounted(t *testing.T) {
	// A fresh cache directory: the first compile is full, the second (after
	// a restart) is not.
	dir := t.TempDir()
	spec := newSpec("wat", examples.EchoWAT)
	for i, want := range []Stats{{Compiles: 1, FullCompiles: 1}, {Compiles: 1, CacheHits: 1}} {
		r := newRuntime(t, Config{CacheDir: dir})
		if err := r.Prepare(context.Background(), spec, examples.EchoWAT); err != nil {
			t.Fatal(err)
		}
		got := r.Stats()
		if got.Compiles != want.Compiles || got.FullCompiles != want.FullCompiles || got.CacheHits != want.CacheHits {
			t.Errorf("process %d: Stats = %+v, want %+v", i+1, got, want)
		}
		if err := r.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEvictionRecompiles(t *testing.T) {
	codes := map[string][]byte{}
	r := newRuntime(t, Config{MaxCompiled: 1, Code: func(_ context.Context, digest string) ([]byte, error) {
		if c, ok := codes[digest]; ok {
			return c, nil
		}
		return nil, errors.New("not found")
	}})
	wat := prepared(t, r, "wat", examples.EchoWAT)
	codes[wat.Code] = examples.EchoWAT
	inst := start(t, r, wat) // started before the eviction: keeps working
	echo := prepared(t, r, "echo", testutil.BuildWasm(t, pkgEchoWASI))
	if s := r.Stats(); s.Modules != 1 {
		t.Fatalf("Stats.Modules = %d, want 1 (MaxCompiled)", s.Modules)
	}
	if got := mustInvoke(t, inst, `"live"`); string(got) != `"live"` {
		t.Errorf("instance of an evicted module: got %s", got)
	}
	if got := mustInvoke(t, start(t, r, wat), `"again"`); string(got) != `"again"` {
		t.Errorf("after eviction: got %s", got)
	}
	if s := r.Stats(); s.Compiles != 3 {
		t.Errorf("Stats.Compiles = %d, want 3 (wat, echo, wat again)", s.Compiles)
	}
	r.Forget(echo.Code)
	if _, err := r.Start(context.Background(), echo); err == nil {
		t.Errorf("Start after Forget without code: succeeded, want an error")
	}
}

func TestConcurrentPrepareAndStart(t *testing.T) {
	r := newRuntime(t, Config{})
	code := testutil.BuildWasm(t, pkgEchoSDK)
	spec := newSpec("echo", code)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- r.Prepare(context.Background(), spec, code)
		}()
	}
	wg.Wait()
	if s := r.Stats(); s.Compiles != 1 {
		t.Errorf("%d concurrent Prepares: %d compiles, want 1", n, s.Compiles)
	}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			inst, err := r.Start(context.Background(), spec)
			if err != nil {
				errs <- err
				return
			}
			defer inst.Close(context.Background())
			payload := fmt.Sprintf(`{"i":%d}`, i)
			res, err := inst.Invoke(context.Background(), &runtime.Request{ID: "x", Payload: []byte(payload)})
			switch {
			case err != nil:
				errs <- err
			case string(res.Payload) != payload:
				errs <- fmt.Errorf("got %s, want %s", res.Payload, payload)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestPrepareRejects(t *testing.T) {
	r := newRuntime(t, Config{})
	hello := testutil.BuildWasm(t, pkgHello)
	tests := []struct {
		name   string
		code   []byte
		digest string // default: the code's
		want   string
	}{
		{name: "not-wasm", code: []byte("#!/bin/sh\necho hi\n"), want: "not a WebAssembly module"},
		{name: "truncated", code: hello[:1000], want: "invalid WebAssembly"},
		// (module (func (export "run")))
		{name: "no-start", code: hexBytes("0061736d01000000010401600000030201000707010372756e00000a040102000b"), want: "no _start"},
		// (module (import "env" "f" (func)) (func (export "_start") (call 0)))
		{name: "unknown-import", code: hexBytes("0061736d0100000001040160000002090103656e760166000003020100070a01065f737461727400010a0601040010000b"), want: "imports env.f"},
		// nimbus.next imported as (i32) -> i32
		{name: "bad-signature", code: hexBytes("0061736d0100000001090260017f017f600000020f01066e696d627573046e6578740000030201010503010001071302066d656d6f72790200065f737461727400010a040102000b"), want: "nimbus.next as (i32) -> (i32)"},
		{name: "digest-mismatch", code: examples.EchoWAT, digest: Digest([]byte("other")), want: "does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := newSpec(tt.name, tt.code)
			if tt.digest != "" {
				spec.Code = tt.digest
			}
			err := r.Prepare(context.Background(), spec, tt.code)
			var fe *function.FieldError
			if !errors.As(err, &fe) || fe.Field != "code" || !errors.Is(err, function.ErrInvalid) {
				t.Fatalf("Prepare: err = %v, want a FieldError on code", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Prepare: err = %q, want it to say %q", err, tt.want)
			}
		})
	}
	if s := r.Stats(); s.Modules != 0 {
		t.Errorf("Stats.Modules = %d after rejected code, want 0", s.Modules)
	}
}

func TestInitTimeout(t *testing.T) {
	r := newRuntime(t, Config{InitTimeout: 100 * time.Millisecond})
	// (module (import "nimbus" "next" ...) (memory (export "memory") 1)
	//   (func (export "_start") (loop $spin (br $spin))))
	code := hexBytes("0061736d01000000010a0260027f7f017f600000020f01066e696d627573046e6578740000030201010503010001071302066d656d6f72790200065f737461727400010a0901070003400c000b0b")
	spec := prepared(t, r, "noinit", code)
	began := time.Now()
	_, err := r.Start(context.Background(), spec)
	if !errors.Is(err, function.ErrTimeout) {
		t.Fatalf("Start of a module that never calls next: err = %v, want ErrTimeout", err)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("Start took %v, want about the 100ms init timeout", took)
	}
}

func TestStartUnknownDigest(t *testing.T) {
	r := newRuntime(t, Config{})
	if _, err := r.Start(context.Background(), newSpec("ghost", []byte("ghost"))); err == nil {
		t.Fatal("Start of a digest never prepared, without a code loader: succeeded")
	}
}

func TestCloseStopsInstances(t *testing.T) {
	r, err := New(Config{CacheDir: testCacheDir})
	if err != nil {
		t.Fatal(err)
	}
	sdkSpec := prepared(t, r, "echo", testutil.BuildWasm(t, pkgEchoSDK))
	cmdSpec := prepared(t, r, "cmd", testutil.BuildWasm(t, pkgEchoWASI))
	loopSpec := prepared(t, r, "probe", testutil.BuildWasm(t, pkgProbe))
	for _, spec := range []*function.Spec{sdkSpec, cmdSpec, sdkSpec, cmdSpec} {
		if _, err := r.Start(context.Background(), spec); err != nil {
			t.Fatal(err)
		}
	}
	// One guest busy in an invocation that will not end by itself.
	busy, err := r.Start(context.Background(), loopSpec)
	if err != nil {
		t.Fatal(err)
	}
	invoked := make(chan error, 1)
	go func() {
		_, err := busy.Invoke(context.Background(), &runtime.Request{Payload: []byte(`{"mode":"spin"}`)})
		invoked <- err
	}()
	if s := r.Stats(); s.Instances != 5 {
		t.Errorf("Stats.Instances = %d, want 5", s.Instances)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if s := r.Stats(); s.Instances != 0 {
		t.Errorf("after Close: Stats.Instances = %d, want 0", s.Instances)
	}
	select {
	case err := <-invoked:
		if !errors.Is(err, function.ErrUnavailable) {
			t.Errorf("Invoke interrupted by Close: err = %v, want ErrUnavailable", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Invoke did not return after Close")
	}
	if _, err := r.Start(context.Background(), sdkSpec); !errors.Is(err, function.ErrUnavailable) {
		t.Errorf("Start after Close: err = %v, want ErrUnavailable", err)
	}
}

// TestStreamLeftOpen: a streamed body (nimbus.body_open) that the guest
// leaves open when it answers its invocation, or when its deadline stops
// it, ends as abandoned at once, so its request fails instead of waiting
// for a body that will not come; a handle that was never opened is -1 for
// body_write and body_close.
func TestStreamLeftOpen(t *testing.T) {
	read := make(chan string, 1)
	ended := make(chan error, 1)
	r := newRuntime(t, Config{API: func(*function.Spec) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			b := make([]byte, 5)
			io.ReadFull(req.Body, b)
			read <- req.Method + " " + req.URL.Path + " " + string(b)
			_, err := io.ReadAll(req.Body)
			ended <- err
		})
	}})
	inst := start(t, r, prepared(t, r, "probe", testutil.BuildWasm(t, pkgProbe)))
	var got map[string]int32
	if err := json.Unmarshal(mustInvoke(t, inst, `{"mode":"stream"}`), &got); err != nil {
		t.Fatal(err)
	}
	if got["handle"] <= 0 || got["write"] != 0 || got["stray"] != bodyNoStream || got["close"] != bodyNoStream {
		t.Fatalf("stream calls answered %v; want a handle, 0 for the write, -1 for a handle never opened", got)
	}
	if s := <-read; s != "PUT /stream hello" {
		t.Fatalf("the handler read %q", s)
	}
	abandoned := func(what string) {
		t.Helper()
		select {
		case err := <-ended:
			if !errors.Is(err, errBodyAbandoned) {
				t.Fatalf("%s: the body ended with %v, want errBodyAbandoned", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the body has not ended 5 s after its invocation", what)
		}
	}
	abandoned("left open")

	// Stopped by its deadline with the body open.
	if _, err := invoke(t, inst, `{"mode":"stream","sleep":true}`, time.Second); err == nil {
		t.Fatal("an invocation sleeping past its deadline succeeded")
	}
	<-read
	abandoned("stopped by its deadline")
}
