package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/lambdaapi"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

func TestAWSLambdaGoEcho(t *testing.T) {
	code := echoBinary(t)
	r := newRuntime(t)
	spec := newSpec("echo", code)
	prepare(t, r, spec, code)
	in := start(t, r, spec)

	t.Run("echo", func(t *testing.T) {
		res := mustInvoke(t, in, `{"hello":"world"}`)
		if res.Err != nil || string(res.Payload) != `{"hello":"world"}` {
			t.Fatalf("result = %q, %v; want the event back", res.Payload, res.Err)
		}
		if res.MaxMemoryBytes == 0 {
			t.Error("MaxMemoryBytes = 0, want the peak RSS")
		}
	})
	t.Run("returned error", func(t *testing.T) {
		res := mustInvoke(t, in, `{"fail":"no such user"}`)
		if res.Err == nil || res.Err.Type != "errorString" || res.Err.Message != "no such user" {
			t.Fatalf("Err = %#v, want errorString: no such user", res.Err)
		}
		if !in.Reusable() {
			t.Error("instance not reusable after a returned error")
		}
		if res := mustInvoke(t, in, `1`); string(res.Payload) != "1" {
			t.Errorf("after an error: payload = %q", res.Payload)
		}
	})
	t.Run("panic", func(t *testing.T) {
		res := mustInvoke(t, in, `{"panic":true}`)
		if res.Err == nil || res.Err.Type != "string" || !strings.Contains(res.Err.Message, "panic requested") {
			t.Fatalf("Err = %#v, want the panic value", res.Err)
		}
		if len(res.Err.Trace) == 0 {
			t.Error("no stack trace for a panic")
		}
		// aws-lambda-go exits after reporting a panic.
		eventually(t, 5*time.Second, "instance not reusable after a panic", func() bool { return !in.Reusable() })
		_, err := invoke(t, in, `1`, 5*time.Second)
		if !errors.Is(err, function.ErrUnavailable) {
			t.Fatalf("Invoke on the exited instance = %v, want ErrUnavailable", err)
		}
	})
}

func TestShellRuntime(t *testing.T) {
	boot := shellBootstrap(t)
	tests := []struct {
		name    string
		code    []byte
		handler string
	}{
		{"lone script", boot, ""},
		{"zip with bootstrap", makeZip(t, zipEntry{name: "bootstrap", body: string(boot), mode: 0o755}), ""},
		// No exec bit and another name: the handler command line runs it.
		{"handler command line", makeZip(t, zipEntry{name: "src/run.sh", body: string(boot)}), "sh src/run.sh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRuntime(t)
			spec := newSpec("shout", tt.code)
			spec.Handler = tt.handler
			prepare(t, r, spec, tt.code)
			in := start(t, r, spec)
			for i := range 2 {
				res := mustInvoke(t, in, `{"hello":"world"}`)
				if res.Err != nil || string(res.Payload) != `{"HELLO":"WORLD"}` {
					t.Fatalf("invocation %d: %q, %v; logs:\n%s", i, res.Payload, res.Err, res.Logs)
				}
				if !strings.Contains(string(res.Logs), "handling request req-") {
					t.Errorf("invocation %d: logs = %q, want the script's stderr", i, res.Logs)
				}
			}
			res := mustInvoke(t, in, `"please fail"`)
			if res.Err == nil || res.Err.Type != "ShellError" {
				t.Fatalf("Err = %#v, want ShellError", res.Err)
			}
		})
	}
}

func TestWarmReuseAndColdStart(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t)
	spec := newSpec("fixture", code)
	prepare(t, r, spec, code)
	in := start(t, r, spec)

	if in.InitDuration() <= 0 {
		t.Errorf("InitDuration = %v, want > 0", in.InitDuration())
	}
	first := mustInvoke(t, in, `{"op":"pid"}`)
	if !strings.Contains(string(first.Logs), "fixture init") {
		t.Errorf("cold invocation logs = %q, want the init output", first.Logs)
	}
	pid := decode(t, first).PID
	if pid != in.PID() {
		t.Errorf("function pid %d, instance pid %d", pid, in.PID())
	}
	for i := range 3 {
		res := mustInvoke(t, in, `{"op":"pid"}`)
		if got := decode(t, res).PID; got != pid {
			t.Fatalf("invocation %d ran in pid %d, want the warm pid %d", i, got, pid)
		}
		if strings.Contains(string(res.Logs), "fixture init") {
			t.Errorf("warm invocation logs hold the init output: %q", res.Logs)
		}
	}
	if !in.Reusable() {
		t.Error("warm instance not reusable")
	}
}

func TestLogsPerInvocation(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t)
	spec := newSpec("logs", code)
	prepare(t, r, spec, code)
	in := start(t, r, spec)
	mustInvoke(t, in, `{"op":"pid"}`) // takes the init output

	res := mustInvoke(t, in, `{"op":"log","lines":3}`)
	for i := range 3 {
		for _, s := range []string{"stdout line " + strconv.Itoa(i), "stderr line " + strconv.Itoa(i)} {
			if !strings.Contains(string(res.Logs), s) {
				t.Errorf("logs = %q, want %q", res.Logs, s)
			}
		}
	}
	if res.LogsTruncated {
		t.Error("small logs flagged truncated")
	}
	res = mustInvoke(t, in, `{"op":"pid"}`)
	if strings.Contains(string(res.Logs), "line") {
		t.Errorf("next invocation got earlier logs: %q", res.Logs)
	}
	res = mustInvoke(t, in, `{"op":"log","lines":3000}`) // ~90 KB
	if !res.LogsTruncated || len(res.Logs) > runtime.MaxLogBytes {
		t.Errorf("logs %d bytes, truncated %v; want at most %d and truncated", len(res.Logs), res.LogsTruncated, runtime.MaxLogBytes)
	}
	if !strings.Contains(string(res.Logs), "stderr line 2999") {
		t.Error("truncated logs lost their end")
	}
}

func TestTimeoutKillsGroup(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t)
	spec := newSpec("forker", code)
	prepare(t, r, spec, code)
	in := start(t, r, spec)
	pgid := in.PID()

	res, err := invoke(t, in, `{"op":"fork"}`, 500*time.Millisecond)
	if !errors.Is(err, function.ErrTimeout) {
		t.Fatalf("Invoke = %v, want ErrTimeout", err)
	}
	if in.Reusable() {
		t.Error("instance reusable after a timeout")
	}
	if res == nil {
		t.Fatal("no Result (logs) beside the timeout error")
	}
	children := regexp.MustCompile(`child pid (\d+)`).FindAllStringSubmatch(string(res.Logs), -1)
	if len(children) != 2 {
		t.Fatalf("logs = %q, want two child pids", res.Logs)
	}
	// The kill is done when Invoke returns; reaping orphans is init's job,
	// so zombies are allowed, live processes are not.
	if live := liveGroupMembers(pgid); len(live) > 0 {
		t.Fatalf("process group %d still has live members %v", pgid, live)
	}
	for _, m := range children {
		pid, _ := strconv.Atoi(m[1])
		if processAlive(pid) {
			t.Errorf("forked child %d survived the timeout", pid)
		}
	}
	if _, err := invoke(t, in, `{"op":"pid"}`, time.Second); !errors.Is(err, function.ErrUnavailable) {
		t.Errorf("Invoke after timeout = %v, want ErrUnavailable", err)
	}

	// The next instance starts fresh.
	in2 := start(t, r, spec)
	if got := decode(t, mustInvoke(t, in2, `{"op":"pid"}`)).PID; got == pgid {
		t.Error("new instance reused the killed process")
	}
}

func TestCrashMidInvocation(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t)
	spec := newSpec("crash", code)
	prepare(t, r, spec, code)
	in := start(t, r, spec)
	mustInvoke(t, in, `{"op":"pid"}`)

	res := mustInvoke(t, in, `{"op":"exit","code":3}`)
	if res.Err == nil || res.Err.Type != ErrorTypeExit || !strings.Contains(res.Err.Message, "exit status 3") {
		t.Fatalf("Err = %#v, want %s with exit status 3", res.Err, ErrorTypeExit)
	}
	if !strings.Contains(string(res.Logs), "exiting mid-invocation") {
		t.Errorf("logs = %q, want the output before the crash", res.Logs)
	}
	if in.Reusable() {
		t.Error("instance reusable after a crash")
	}
	if live := liveGroupMembers(in.PID()); len(live) > 0 {
		t.Errorf("group still has live members %v", live)
	}
}

func TestConcurrency(t *testing.T) {
	const n = 4
	code := fixtureBinary(t)
	r := newRuntime(t)
	spec := newSpec("conc", code)
	spec.Concurrency = n
	prepare(t, r, spec, code)
	in := start(t, r, spec)
	if in.Capacity() != n {
		t.Fatalf("Capacity = %d, want %d", in.Capacity(), n)
	}
	// Let all n pollers of aws-lambda-go reach /next.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.api.AwaitPollers(ctx, n); err != nil {
		t.Fatal(err)
	}

	results := make([]fixtureResult, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { results[i] = decode(t, mustInvoke(t, in, `{"op":"sleep","sleep_ms":400}`)) })
	}
	wg.Wait()
	var latestStart, earliestEnd int64 = 0, 1 << 62
	for _, fr := range results {
		if fr.PID != in.PID() {
			t.Errorf("served by pid %d, want the one process %d", fr.PID, in.PID())
		}
		latestStart, earliestEnd = max(latestStart, fr.Start), min(earliestEnd, fr.End)
	}
	if latestStart >= earliestEnd {
		t.Errorf("invocations did not overlap: last start %d >= first end %d", latestStart, earliestEnd)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("NIMBUS_HOST_SECRET", "leak")
	code := fixtureBinary(t)
	r := newRuntime(t, func(c *Config) { c.Region = "eu-west-3" })
	spec := newSpec("envy", code)
	spec.Env = map[string]string{"TABLE": "users"}
	spec.MemoryMB = 256
	spec.Concurrency = 2
	prepare(t, r, spec, code)
	in := start(t, r, spec)
	env := map[string]string{}
	for _, kv := range decode(t, mustInvoke(t, in, `{"op":"env"}`)).Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	want := map[string]string{
		"AWS_LAMBDA_FUNCTION_NAME":        "envy",
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/envy",
		"AWS_REGION":                      "eu-west-3",
		"AWS_DEFAULT_REGION":              "eu-west-3",
		"_HANDLER":                        "bootstrap",
		"LAMBDA_TASK_ROOT":                in.dir,
		"TZ":                              ":UTC",
		"AWS_LAMBDA_MAX_CONCURRENCY":      "2",
		"TABLE":                           "users",
		"AWS_LAMBDA_RUNTIME_API":          in.api.Addr(),
		"PATH":                            os.Getenv("PATH"),
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if !regexp.MustCompile(`^\d{4}/\d{2}/\d{2}/\[\$LATEST\][0-9a-f]+$`).MatchString(env["AWS_LAMBDA_LOG_STREAM_NAME"]) {
		t.Errorf("AWS_LAMBDA_LOG_STREAM_NAME = %q", env["AWS_LAMBDA_LOG_STREAM_NAME"])
	}
	// aws-lambda-go sets _X_AMZN_TRACE_ID itself only at concurrency 1.
	for k := range env {
		if _, ok := want[k]; !ok && k != "AWS_LAMBDA_LOG_STREAM_NAME" {
			t.Errorf("unexpected variable %s=%q in the function's environment", k, env[k])
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t)
	spec := newSpec("hog", code)
	spec.MemoryMB = 64
	prepare(t, r, spec, code)
	in := start(t, r, spec)

	// Within the limit works.
	decode(t, mustInvoke(t, in, `{"op":"alloc","mb":16}`))
	// Far beyond it fails, whichever limit applies.
	res := mustInvoke(t, in, `{"op":"alloc","mb":1024}`)
	if res.Err == nil || (res.Err.Type != ErrorTypeExit && res.Err.Type != ErrorTypeOutOfMemory) {
		t.Fatalf("Err = %#v, want the process killed or failed for memory (mode %s)", res.Err, r.LimitMode())
	}
	if in.Reusable() {
		t.Error("instance reusable after running out of memory")
	}
}

func TestGoUnder128MB(t *testing.T) {
	code := echoBinary(t)
	r := newRuntime(t)
	spec := newSpec("small", code)
	spec.MemoryMB = 128
	prepare(t, r, spec, code)
	in := start(t, r, spec)
	if res := mustInvoke(t, in, `"hi"`); string(res.Payload) != `"hi"` {
		t.Fatalf("payload = %q, %v", res.Payload, res.Err)
	}
}

func TestHugeResponse(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t)
	spec := newSpec("big", code)
	spec.MemoryMB = 512
	prepare(t, r, spec, code)
	in := start(t, r, spec)
	res := mustInvoke(t, in, fmt.Sprintf(`{"op":"big","bytes":%d}`, lambdaapi.MaxResponseBytes+1))
	if res.Err == nil || res.Err.Type != lambdaapi.ErrorTypeResponseTooLarge {
		t.Fatalf("Err = %#v, want %s", res.Err, lambdaapi.ErrorTypeResponseTooLarge)
	}
	// aws-lambda-go exits when the API refuses its response, as on Lambda;
	// a new instance serves a response just under the limit.
	eventually(t, 5*time.Second, "instance retired", func() bool { return !in.Reusable() })
	in = start(t, r, spec)
	res = mustInvoke(t, in, fmt.Sprintf(`{"op":"big","bytes":%d}`, lambdaapi.MaxResponseBytes-1000))
	if res.Err != nil || len(res.Payload) < lambdaapi.MaxResponseBytes-1000 {
		t.Fatalf("near-limit response: %d bytes, %v", len(res.Payload), res.Err)
	}
}

func TestStartFailures(t *testing.T) {
	script := func(body string) []byte { return []byte("#!/bin/sh\n" + body + "\n") }
	tests := []struct {
		name    string
		code    []byte
		timeout time.Duration
		want    error
		msg     string
	}{
		{"exit at init", script("echo starting; exit 3"), 10 * time.Second, function.ErrFunction, "exit status 3"},
		{"init error", script(`curl -sS -o /dev/null -H 'Lambda-Runtime-Function-Error-Type: Runtime.NoConfig' ` +
			`--data-binary '{"errorMessage":"config missing","errorType":"Runtime.NoConfig"}' ` +
			`"http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error"; sleep 1000`), 10 * time.Second, function.ErrFunction, "config missing"},
		{"never polls", script("sleep 1000 & sleep 1000"), 300 * time.Millisecond, function.ErrTimeout, "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			shellBootstrap(t) // skips without curl
			r := newRuntime(t)
			spec := newSpec("bad", tt.code)
			prepare(t, r, spec, tt.code)
			ctx, cancel := context.WithTimeout(context.Background(), tt.timeout)
			defer cancel()
			inst, err := r.Start(ctx, spec)
			if err == nil {
				inst.Close(context.Background())
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Start = %v, want %v mentioning %q", err, tt.want, tt.msg)
			}
			var fe *runtime.FunctionError
			if tt.want == function.ErrFunction && !errors.As(err, &fe) {
				t.Errorf("Start error holds no *runtime.FunctionError: %v", err)
			}
			ents, _ := os.ReadDir(r.instDir)
			if len(ents) != 0 {
				t.Errorf("failed start left %d instance directories", len(ents))
			}
		})
	}
}

func TestInstanceDirs(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t)
	spec := newSpec("dirs", code)
	prepare(t, r, spec, code)
	a, b := start(t, r, spec), start(t, r, spec)
	if a.dir == b.dir {
		t.Fatal("two instances share a directory")
	}
	if err := os.WriteFile(filepath.Join(a.dir, "scratch"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(b.dir, "scratch")); err == nil {
		t.Error("a file written in one instance's directory shows in another's")
	}
	pid := a.PID()
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.dir); !os.IsNotExist(err) {
		t.Errorf("instance directory left after Close: %v", err)
	}
	if live := liveGroupMembers(pid); len(live) > 0 {
		t.Errorf("live processes after Close: %v", live)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(b.dir); err != nil {
		t.Errorf("closing one instance touched another: %v", err)
	}
}

func TestRuntimeClose(t *testing.T) {
	code := fixtureBinary(t)
	r, err := New(Config{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	spec := newSpec("many", code)
	prepare(t, r, spec, code)
	var pids []int
	for range 3 {
		inst, err := r.Start(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, inst.(*instance).PID())
	}
	if err := r.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if live := liveGroupMembers(pid); len(live) > 0 {
			t.Errorf("group %d has live members after Runtime.Close: %v", pid, live)
		}
	}
	if ents, _ := os.ReadDir(r.instDir); len(ents) != 0 {
		t.Errorf("%d instance directories left", len(ents))
	}
	if _, err := r.Start(context.Background(), spec); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestPrepareRejects(t *testing.T) {
	exe := zipEntry{name: "bootstrap", body: "#!/bin/sh\n", mode: 0o755}
	tests := []struct {
		name    string
		code    []byte
		handler string
		env     map[string]string
		field   string
		msg     string
	}{
		{"zip slip", makeZip(t, exe, zipEntry{name: "../evil", body: "x"}), "", nil, "code", "leaves"},
		{"absolute", makeZip(t, exe, zipEntry{name: "/etc/evil", body: "x"}), "", nil, "code", "leaves"},
		{"symlink out", makeZip(t, exe, zipEntry{name: "l", body: "/etc/passwd", mode: os.ModeSymlink | 0o777}), "", nil, "code", "outside"},
		{"symlink up", makeZip(t, exe, zipEntry{name: "d/l", body: "../../x", mode: os.ModeSymlink | 0o777}), "", nil, "code", "outside"},
		{"symlink chain", makeZip(t, exe,
			zipEntry{name: "a", body: ".", mode: os.ModeSymlink | 0o777},
			zipEntry{name: "b/c/l", body: "../../a/a/../../x", mode: os.ModeSymlink | 0o777}), "", nil, "code", "symlink"},
		{"no bootstrap", makeZip(t, zipEntry{name: "main.py", body: "print(1)"}), "", nil, "code", `"bootstrap"`},
		{"not executable", []byte("just some text"), "", nil, "code", "bootstrap"},
		{"handler not in code", makeZip(t, exe), "./missing.sh", nil, "handler", "missing.sh"},
		{"handler not in PATH", makeZip(t, exe), "no-such-interpreter-xyz run.py", nil, "handler", "not found"},
		{"handler quotes", makeZip(t, exe), `sh "unclosed`, nil, "handler", "quote"},
		{"reserved env", makeZip(t, exe), "", map[string]string{"AWS_REGION": "x"}, "env.AWS_REGION", "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRuntime(t)
			spec := newSpec("bad", tt.code)
			spec.Handler, spec.Env = tt.handler, tt.env
			err := r.Prepare(context.Background(), spec, tt.code)
			var fe *function.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, function.ErrInvalid) {
				t.Fatalf("Prepare = %v, want a *function.FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Reason, tt.msg) {
				t.Fatalf("error = %s: %s, want field %s mentioning %q", fe.Field, fe.Reason, tt.field, tt.msg)
			}
			if _, err := os.Stat("/etc/evil"); err == nil {
				t.Fatal("zip wrote outside its directory")
			}
		})
	}

	t.Run("digest mismatch", func(t *testing.T) {
		r := newRuntime(t)
		code := makeZip(t, exe)
		spec := newSpec("bad", []byte("other"))
		if err := r.Prepare(context.Background(), spec, code); !errors.Is(err, function.ErrInvalid) {
			t.Fatalf("Prepare = %v, want ErrInvalid", err)
		}
	})
	t.Run("too big", func(t *testing.T) {
		r := newRuntime(t, func(c *Config) { c.MaxCodeBytes = 1 << 20 })
		code := makeZip(t, exe, zipEntry{name: "blob", body: strings.Repeat("0", 2<<20)})
		err := r.Prepare(context.Background(), newSpec("bad", code), code)
		if !errors.Is(err, function.ErrInvalid) || !strings.Contains(err.Error(), "MiB") {
			t.Fatalf("Prepare = %v, want a size error", err)
		}
		if ents, _ := os.ReadDir(r.codeDir); len(ents) != 0 {
			t.Errorf("rejected code left %d entries in the cache", len(ents))
		}
	})
	t.Run("symlink inside is fine", func(t *testing.T) {
		r := newRuntime(t)
		code := makeZip(t, zipEntry{name: "bin/real", body: "#!/bin/sh\n", mode: 0o755},
			zipEntry{name: "bootstrap", body: "bin/real", mode: os.ModeSymlink | 0o777})
		prepare(t, r, newSpec("ok", code), code)
	})
}

func TestPrepareOncePerDigest(t *testing.T) {
	code := makeZip(t, zipEntry{name: "bootstrap", body: "#!/bin/sh\n", mode: 0o755})
	r := newRuntime(t)
	spec := newSpec("once", code)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = r.Prepare(context.Background(), spec, code) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ents, _ := os.ReadDir(r.codeDir)
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{strings.TrimPrefix(spec.Code, "sha256:")}; !slices.Equal(names, want) {
		t.Errorf("code cache = %v, want %v", names, want)
	}
	r.Forget(spec.Code)
	if ents, _ := os.ReadDir(r.codeDir); len(ents) != 0 {
		t.Errorf("Forget left %d entries", len(ents))
	}
}

func TestSplitCommandLine(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"python3 handler.py", []string{"python3", "handler.py"}},
		{`  sh  -c 'echo "a b"' `, []string{"sh", "-c", `echo "a b"`}},
		{`node "my file.js" a\ b`, []string{"node", "my file.js", "a b"}},
		{`x "a\"b" ''`, []string{"x", `a"b`, ""}},
	}
	for _, tt := range tests {
		got, err := splitCommandLine(tt.in)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("splitCommandLine(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`a "b`, `a 'b`, `a \`} {
		if _, err := splitCommandLine(bad); err == nil {
			t.Errorf("splitCommandLine(%q) accepted", bad)
		}
	}
}

// TestSDKNative runs the Nimbus Go SDK's native build (it speaks the Runtime
// API) when its example is in the tree.
func TestSDKNative(t *testing.T) {
	if _, err := os.Stat("../../../examples/echo-sdk/main.go"); err != nil {
		t.Skip("examples/echo-sdk is not in the tree")
	}
	code := goBinary(t, "examples/echo-sdk")
	r := newRuntime(t)
	spec := newSpec("sdk", code)
	prepare(t, r, spec, code)
	in := start(t, r, spec)
	for i := range 3 {
		res := mustInvoke(t, in, `{"n":`+strconv.Itoa(i)+`}`)
		if res.Err != nil || string(res.Payload) != `{"n":`+strconv.Itoa(i)+`}` {
			t.Fatalf("invocation %d: %q, %v; logs:\n%s", i, res.Payload, res.Err, res.Logs)
		}
	}
}

func TestStartLoadsCode(t *testing.T) {
	code := echoBinary(t)
	loads := 0
	var mu sync.Mutex
	r := newRuntime(t, func(c *Config) {
		c.Code = func(_ context.Context, digest string) ([]byte, error) {
			mu.Lock()
			defer mu.Unlock()
			loads++
			if digest != digestOf(code) {
				return nil, fmt.Errorf("unknown digest %s", digest)
			}
			return code, nil
		}
	})
	spec := newSpec("remote", code) // never prepared on this node
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			in := start(t, r, spec)
			if res := mustInvoke(t, in, `"x"`); string(res.Payload) != `"x"` {
				t.Errorf("payload = %q, %v", res.Payload, res.Err)
			}
		})
	}
	wg.Wait()
	if loads < 1 || loads > 3 {
		t.Errorf("code loaded %d times", loads)
	}

	r2 := newRuntime(t)
	if _, err := r2.Start(context.Background(), spec); err == nil || !strings.Contains(err.Error(), "not prepared") {
		t.Errorf("Start without Prepare or loader = %v, want a not-prepared error", err)
	}
}

// TestCPUPlacement checks CPU in proportion to memory: a small function's
// instances are each pinned to one CPU, round robin, and Go inside sizes
// GOMAXPROCS to it, multi-concurrency instances too; one with memory for
// every CPU runs on all of them.
func TestCPUPlacement(t *testing.T) {
	code := fixtureBinary(t)
	r := newRuntime(t)
	all := goruntime.NumCPU()
	cpus := func(t *testing.T, memMB, concurrency int) (string, int) {
		t.Helper()
		spec := newSpec(fmt.Sprintf("cpu-%d-%d", memMB, concurrency), code)
		spec.MemoryMB, spec.Concurrency = memMB, concurrency
		prepare(t, r, spec, code)
		in := start(t, r, spec)
		allowed := ""
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", in.pid)); err == nil {
			for line := range strings.Lines(string(b)) {
				if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
					allowed = strings.TrimSpace(v)
				}
			}
		}
		var n, procs int
		if _, err := fmt.Sscan(decode(t, mustInvoke(t, in, `{"op":"cpus"}`)).Data, &n, &procs); err != nil {
			t.Fatal(err)
		}
		if procs != n {
			t.Errorf("GOMAXPROCS %d with %d CPUs", procs, n)
		}
		return allowed, n
	}
	if all < 2 {
		if _, n := cpus(t, 128, 1); n != all {
			t.Fatalf("instance sees %d CPUs on a %d-CPU node", n, all)
		}
		return
	}
	first, n1 := cpus(t, 128, 1)
	second, n2 := cpus(t, 128, 1)
	if n1 != 1 || n2 != 1 || first == second {
		t.Errorf("128 MB instances on CPUs %q and %q (%d, %d CPUs), want one each, different", first, second, n1, n2)
	}
	if _, n := cpus(t, 128, 4); n != 1 {
		t.Errorf("a 128 MB concurrency-4 instance sees %d CPUs, want 1", n)
	}
	if _, n := cpus(t, mbPerCPU*all, 1); n != all {
		t.Errorf("an instance with %d MB sees %d CPUs, want all %d", mbPerCPU*all, n, all)
	}
}
