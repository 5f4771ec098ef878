package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/natsd"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// probe is the wasm runtime's many-behaviour SDK fixture (see its doc).
const probe = "./internal/runtime/wasm/testdata/probe"

func post(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func apiError(t *testing.T, body []byte) *api.Error {
	t.Helper()
	var eb api.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
		t.Fatalf("body is not a JSON error: %s", body)
	}
	return eb.Error
}

func TestDeployInvokeUpdateDelete(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	c := nodetest.Client(n)
	ctx := context.Background()
	hello := testutil.BuildWasm(t, "./examples/hello")

	res := nodetest.Deploy(t, n, api.Function{Name: "hello", Memory: 64, Timeout: "2s", Max: 50}, hello)
	if res.Change != "created" || res.Function.Memory != 64 || res.Function.Timeout != "2s" || res.Function.Max != 50 {
		t.Fatalf("deploy result = %+v", res)
	}
	// Same spec again: unchanged.
	if res := nodetest.Deploy(t, n, api.Function{Name: "hello", Memory: 64, Timeout: "2s", Max: 50}, hello); res.Change != "unchanged" {
		t.Errorf("redeploy change = %q, want unchanged", res.Change)
	}

	resp, body := post(t, n.URL()+"/function/hello", `{"name":"Ada"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Hello, Ada!") {
		t.Fatalf("invoke: %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get(api.HeaderInvocationID) == "" {
		t.Error("no invocation id header")
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type = %q", ct)
	}

	out, err := c.Invoke(ctx, "hello", []byte(`{"name":"Grace"}`))
	if err != nil || !strings.Contains(string(out.Payload), "Grace") {
		t.Fatalf("API invoke = %s, %v", out.Payload, err)
	}

	// Update the config: memory changes, the function keeps working.
	if res := nodetest.Deploy(t, n, api.Function{Name: "hello", Memory: 128, Timeout: "2s", Max: 50}, hello); res.Change != "updated" || res.Function.Memory != 128 {
		t.Errorf("update = %+v", res)
	}
	if _, body := post(t, n.URL()+"/function/hello", `{"name":"Ada"}`); !strings.Contains(string(body), "Ada") {
		t.Errorf("after update: %s", body)
	}
	fns, err := c.ListFunctions(ctx)
	if err != nil || len(fns) != 1 || fns[0].Name != "hello" {
		t.Fatalf("list = %+v, %v", fns, err)
	}
	got, err := c.GetFunction(ctx, "hello")
	if err != nil || got.Instances == nil {
		t.Fatalf("get = %+v, %v", got, err)
	}

	if err := c.DeleteFunction(ctx, "hello"); err != nil {
		t.Fatal(err)
	}
	resp, body = post(t, n.URL()+"/function/hello", `{}`)
	if resp.StatusCode != 404 || apiError(t, body).Code != api.CodeNotFound {
		t.Errorf("after delete: %d %s", resp.StatusCode, body)
	}
	var ae *api.Error
	if _, err := c.GetFunction(ctx, "hello"); !errors.As(err, &ae) || ae.Status != 404 {
		t.Errorf("get after delete = %v", err)
	}
}

func TestWASICommand(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	nodetest.Deploy(t, n, api.Function{Name: "echo", Memory: 64}, testutil.BuildWasm(t, "./examples/echo-wasi"))
	for i := range 5 {
		msg := fmt.Sprintf("hello %d", i)
		resp, body := post(t, n.URL()+"/function/echo", msg)
		if resp.StatusCode != 200 || string(body) != msg {
			t.Fatalf("call %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// A pre-started instance serves later calls: not cold starts.
	nodetest.Eventually(t, 5*time.Second, "pre-started instances", func() bool {
		f, err := nodetest.Client(n).GetFunction(context.Background(), "echo")
		return err == nil && f.Instances.Idle >= 1
	})
	resp, _ := post(t, n.URL()+"/function/echo", "x")
	if resp.Header.Get(api.HeaderColdStart) == "true" {
		t.Error("call on a pre-started instance reported a cold start")
	}
}

func TestRecords(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	nodetest.Deploy(t, n, api.Function{Name: "sleep", Memory: 64, Timeout: "2s"}, testutil.BuildWasm(t, "./internal/node/testdata/sleep"))
	ids := map[string]bool{}
	for i := range 3 {
		resp, body := post(t, n.URL()+"/function/sleep", fmt.Sprintf(`{"ms":%d}`, i))
		if resp.StatusCode != 200 {
			t.Fatalf("invoke: %d %s", resp.StatusCode, body)
		}
		ids[resp.Header.Get(api.HeaderInvocationID)] = true
	}
	resp, body := post(t, n.URL()+"/function/sleep", `{"fail":"boom"}`)
	if resp.StatusCode != 500 {
		t.Fatalf("failing call: %d %s", resp.StatusCode, body)
	}
	e := apiError(t, body)
	if e.Code != api.CodeFunctionError || e.Type != "TestError" || e.Message != "boom" || resp.Header.Get(api.HeaderFunctionError) == "" {
		t.Errorf("function error = %+v", e)
	}
	failedID := resp.Header.Get(api.HeaderInvocationID)

	var recs []api.Record
	nodetest.Eventually(t, 5*time.Second, "4 records", func() bool {
		var err error
		recs, err = nodetest.Client(n).Records(context.Background(), "sleep", 10)
		return err == nil && len(recs) == 4
	})
	if recs[0].ID != failedID {
		t.Errorf("newest record = %s, want the failed call %s", recs[0].ID, failedID)
	}
	r := recs[0]
	if r.Status != "error" || r.ErrorType != "TestError" || !strings.Contains(r.Error, "boom") || !strings.Contains(r.Logs, "sleeping") {
		t.Errorf("error record = %+v", r)
	}
	last := recs[3]
	if !last.ColdStart || last.InitMS <= 0 {
		t.Errorf("first call record: cold %v init %v, want a cold start with init time", last.ColdStart, last.InitMS)
	}
	for _, r := range recs[1:] {
		if !ids[r.ID] {
			t.Errorf("record %s is not one of the calls", r.ID)
		}
		if r.Function != "sleep" || r.Version != "$LATEST" || r.Source != "http" || r.Status != "ok" || r.MemoryMB != 64 ||
			r.MaxMemoryMB <= 0 || r.BilledMS < 1 || r.DurationMS <= 0 || len(r.TraceID) != 32 || r.Started.IsZero() {
			t.Errorf("record = %+v", r)
		}
	}
	if recs[1].ColdStart || recs[2].ColdStart {
		t.Error("warm calls recorded as cold starts")
	}
	if !strings.Contains(recs[1].Logs, "call") {
		t.Errorf("logs = %q", recs[1].Logs)
	}
}

func TestTimeoutAndRecovery(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	nodetest.Deploy(t, n, api.Function{Name: "loop", Memory: 64, Timeout: "300ms"}, testutil.BuildWasm(t, probe))
	start := time.Now()
	resp, body := post(t, n.URL()+"/function/loop", `{"mode":"spin"}`)
	took := time.Since(start)
	if resp.StatusCode != http.StatusGatewayTimeout || apiError(t, body).Code != api.CodeTimeout {
		t.Fatalf("spin: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), "while running") {
		t.Errorf("timeout error does not say the stage: %s", body)
	}
	if took > 3*time.Second {
		t.Errorf("timeout took %s", took)
	}
	resp, body = post(t, n.URL()+"/function/loop", `{}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"count":1`) {
		t.Fatalf("after timeout: %d %s", resp.StatusCode, body)
	}
}

func TestMemoryLimitAndSandbox(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	nodetest.Deploy(t, n, api.Function{Name: "memhog", Memory: 32, Timeout: "10s"}, testutil.BuildWasm(t, probe))
	resp, body := post(t, n.URL()+"/function/memhog", `{"mode":"alloc","mb":0}`)
	if resp.StatusCode != 500 || !strings.Contains(strings.ToLower(string(body)), "memory limit exceeded") {
		t.Fatalf("memhog: %d %s", resp.StatusCode, body)
	}
	nodetest.Deploy(t, n, api.Function{Name: "sandbox", Memory: 64, Timeout: "5s", Env: map[string]string{"ONLY": "this"}}, testutil.BuildWasm(t, probe))
	for _, mode := range []string{"file", "dial"} {
		resp, body := post(t, n.URL()+"/function/sandbox", `{"mode":"`+mode+`","addr":"`+strings.TrimPrefix(n.URL(), "http://")+`"}`)
		if resp.StatusCode != 500 || apiError(t, body).Type != "Denied" {
			t.Errorf("%s: %d %s, want a denied error", mode, resp.StatusCode, body)
		}
	}
	resp, body = post(t, n.URL()+"/function/sandbox", `{"mode":"env"}`)
	if resp.StatusCode != 200 || string(body) != `["ONLY=this"]` {
		t.Errorf("env: %d %s", resp.StatusCode, body)
	}
}

func TestThrottling(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true, QueueTimeout: 20 * time.Millisecond})
	nodetest.Deploy(t, n, api.Function{Name: "sleep", Memory: 64, Timeout: "5s", Max: 3}, testutil.BuildWasm(t, "./internal/node/testdata/sleep"))
	post(t, n.URL()+"/function/sleep", `{"ms":0}`) // warm one
	const calls = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := post(t, n.URL()+"/function/sleep", `{"ms":400}`)
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
			if resp.StatusCode == 429 {
				if resp.Header.Get("Retry-After") == "" || apiError(t, body).Code != api.CodeThrottled {
					t.Errorf("429 without Retry-After or code: %s", body)
				}
			}
		}()
	}
	wg.Wait()
	if codes[200] != 3 || codes[429] != calls-3 {
		t.Errorf("status counts = %v, want exactly 3 x 200 and %d x 429", codes, calls-3)
	}
	nodetest.Eventually(t, 5*time.Second, "throttle records", func() bool {
		recs, _ := nodetest.Client(n).Records(context.Background(), "sleep", 50)
		th := 0
		for _, r := range recs {
			if r.Status == "throttled" {
				th++
			}
		}
		return th == calls-3
	})
}

func TestMinAndIdleReclaim(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	c := nodetest.Client(n)
	ctx := context.Background()
	code := testutil.BuildWasm(t, "./internal/node/testdata/sleep")
	nodetest.Deploy(t, n, api.Function{Name: "warm", Memory: 64, Min: 2}, code)
	nodetest.Eventually(t, 10*time.Second, "2 provisioned instances", func() bool {
		f, err := c.GetFunction(ctx, "warm")
		return err == nil && f.Instances.Instances == 2
	})
	resp, _ := post(t, n.URL()+"/function/warm", `{"ms":0}`)
	if resp.Header.Get(api.HeaderColdStart) == "true" {
		t.Error("call to a function with min instances was a cold start")
	}

	nodetest.Deploy(t, n, api.Function{Name: "idle", Memory: 64, IdleTimeout: "200ms"}, code)
	post(t, n.URL()+"/function/idle", `{"ms":0}`)
	f, _ := c.GetFunction(ctx, "idle")
	if f.Instances.Instances != 1 {
		t.Fatalf("instances after a call = %d, want 1", f.Instances.Instances)
	}
	nodetest.Eventually(t, 5*time.Second, "scale to zero", func() bool {
		f, err := c.GetFunction(ctx, "idle")
		return err == nil && f.Instances.Instances == 0
	})
	resp, _ = post(t, n.URL()+"/function/idle", `{"ms":0}`)
	if resp.StatusCode != 200 || resp.Header.Get(api.HeaderColdStart) != "true" {
		t.Errorf("call after scale to zero: %d cold=%q", resp.StatusCode, resp.Header.Get(api.HeaderColdStart))
	}
	// min instances are never reclaimed.
	time.Sleep(300 * time.Millisecond)
	if f, _ := c.GetFunction(ctx, "warm"); f.Instances.Instances != 2 {
		t.Errorf("warm instances = %d, want 2", f.Instances.Instances)
	}
}

func TestBadInput(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true, MaxBody: 1 << 10})
	c := nodetest.Client(n)
	ctx := context.Background()
	hello := testutil.BuildWasm(t, "./examples/hello")
	up, err := c.PutCode(ctx, bytes.NewReader(hello))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"bad name", "PUT", "/api/v1/functions/bad.name", `{}`, 400, "name"},
		{"unknown field", "PUT", "/api/v1/functions/f", `{"code":"` + up.Digest + `","memroy":64}`, 400, "memroy"},
		{"bad memory", "PUT", "/api/v1/functions/f", `{"code":"` + up.Digest + `","memory":-5}`, 400, "memory"},
		{"bad timeout", "PUT", "/api/v1/functions/f", `{"code":"` + up.Digest + `","timeout":"forever"}`, 400, ""},
		{"wrong type", "PUT", "/api/v1/functions/f", `{"code":"` + up.Digest + `","memory":"lots"}`, 400, "memory"},
		{"unknown code", "PUT", "/api/v1/functions/f", `{"code":"sha256:` + strings.Repeat("0", 64) + `"}`, 400, "code"},
		{"not wasm", "PUT", "/api/v1/functions/f", `{"code":"CODE_NOTWASM"}`, 400, "code"},
		{"not json", "PUT", "/api/v1/functions/f", `{"code":`, 400, "body"},
		{"name mismatch", "PUT", "/api/v1/functions/f", `{"name":"g","code":"` + up.Digest + `"}`, 400, "name"},
		{"unknown function", "POST", "/function/nope", `{}`, 404, ""},
		{"payload too large", "POST", "/function/nope", strings.Repeat("x", 2<<10), 413, ""},
		{"bad limit", "GET", "/api/v1/functions/f/invocations?limit=0", ``, 404, ""},
		{"unknown api route", "GET", "/api/v1/nope", ``, 404, ""},
	}
	notWasm, err := c.PutCode(ctx, strings.NewReader("#!/bin/sh\necho hi\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.ReplaceAll(tc.body, "CODE_NOTWASM", notWasm.Digest)
			req, _ := http.NewRequest(tc.method, n.URL()+tc.path, strings.NewReader(body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.status, b)
			}
			e := apiError(t, b)
			if e.Message == "" || e.Code == "" {
				t.Errorf("error without code or message: %s", b)
			}
			if tc.field != "" && e.Field != tc.field {
				t.Errorf("field = %q, want %q (%s)", e.Field, tc.field, b)
			}
		})
	}
	// Nothing half-written: no function "f" exists after all those failures.
	if fns, _ := c.ListFunctions(ctx); len(fns) != 0 {
		t.Errorf("functions after failed deploys: %+v", fns)
	}
}

func TestAuthRequiredWithoutDev(t *testing.T) {
	dir := t.TempDir()
	n := nodetest.Start(t, node.Config{DataDir: dir})
	tok, err := os.ReadFile(filepath.Join(dir, node.TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(filepath.Join(dir, node.TokenFile))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode = %v, want 0600", st.Mode().Perm())
	}
	if strings.TrimSpace(string(tok)) != n.Token() || n.Token() == "" {
		t.Fatal("token file does not hold the node's token")
	}
	for _, token := range []string{"", "wrong"} {
		_, err := api.NewClient(n.URL(), token).ListFunctions(context.Background())
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Status != 401 || ae.Code != api.CodeUnauthorized {
			t.Errorf("token %q: err = %v, want 401", token, err)
		}
	}
	if _, err := nodetest.Client(n).ListFunctions(context.Background()); err != nil {
		t.Errorf("with the token: %v", err)
	}
	// Health and metrics stay open.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(n.URL() + p)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s = %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
}

// TestRestartKeepsFunctionsAndCompiledCode: a function deployed before a
// restart invokes after it, and the node did not recompile it from scratch.
func TestRestartKeepsFunctionsAndCompiledCode(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	n1, err := node.Start(ctx, node.Config{DataDir: dir, Listen: "127.0.0.1:0", Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Deploy(t, n1, api.Function{Name: "hello", Memory: 64}, testutil.BuildWasm(t, "./examples/hello"))
	if _, body := post(t, n1.URL()+"/function/hello", `{"name":"Ada"}`); !strings.Contains(string(body), "Ada") {
		t.Fatalf("before restart: %s", body)
	}
	if full := n1.Wasm.Stats().FullCompiles; full != 1 {
		t.Errorf("first node full compiles = %d, want 1", full)
	}
	if err := n1.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	n2 := nodetest.Start(t, node.Config{DataDir: dir, Dev: true})
	resp, body := post(t, n2.URL()+"/function/hello", `{"name":"Bob"}`)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Bob") {
		t.Fatalf("after restart: %d %s", resp.StatusCode, body)
	}
	st := n2.Wasm.Stats()
	if st.FullCompiles != 0 || st.CacheHits < 1 {
		t.Errorf("after restart: %+v, want 0 full compiles and a cache hit", st)
	}
}

// TestExternalNATS runs a node against a separate NATS server, as a node of
// a cluster would, and a second node sharing it sees the same functions.
func TestExternalNATS(t *testing.T) {
	ctx := context.Background()
	ext, err := natsd.Start(ctx, natsd.Config{StoreDir: t.TempDir(), Listen: "127.0.0.1:0", ServerName: "external"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ext.Stop(context.Background()) })
	a := nodetest.Start(t, node.Config{Dev: true, NATSURL: ext.ClientURL()})
	b := nodetest.Start(t, node.Config{Dev: true, NATSURL: ext.ClientURL()})
	nodetest.Deploy(t, a, api.Function{Name: "hello", Memory: 64}, testutil.BuildWasm(t, "./examples/hello"))
	// Node b compiles hello when it sees it: slow under the race detector.
	nodetest.Eventually(t, 90*time.Second, "node b sees hello", func() bool {
		resp, body := post(t, b.URL()+"/function/hello", `{"name":"B"}`)
		return resp.StatusCode == 200 && strings.Contains(string(body), "B")
	})
	if _, err := os.Stat(filepath.Join(t.TempDir(), "jetstream")); err == nil {
		t.Error("an external-mode node created embedded JetStream files")
	}
}

// TestStartFailureStopsWhatStarted: a node whose NATS server has no
// JetStream fails to start with an error that says so (it used to panic on
// the way out), and closes its connection to the server.
func TestStartFailureStopsWhatStarted(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := node.Start(ctx, node.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Dev: true, NATSURL: srv.ClientURL()})
	if err == nil || n != nil {
		t.Fatalf("Start against NATS without JetStream: %v, %v; want an error and no node", n, err)
	}
	if !strings.Contains(strings.ToLower(err.Error()), "jetstream") {
		t.Errorf("error %q does not say JetStream is missing", err)
	}
	nodetest.Eventually(t, 10*time.Second, "the failed node to close its NATS connection", func() bool { return srv.NumClients() == 0 })
}

func TestMetrics(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	nodetest.Deploy(t, n, api.Function{Name: "hello", Memory: 64}, testutil.BuildWasm(t, "./examples/hello"))
	post(t, n.URL()+"/function/hello", `{"name":"x"}`)
	resp, err := http.Get(n.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`nimbus_invocations_total{function="hello",status="ok"} 1`,
		`nimbus_cold_starts_total{function="hello"} 1`,
		`nimbus_instances{function="hello"} 1`,
		`nimbus_invocation_duration_seconds_count{function="hello"} 1`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestDrainOnStop: an invocation in flight when the node stops completes.
func TestDrainOnStop(t *testing.T) {
	ctx := context.Background()
	n, err := node.Start(ctx, node.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Dev: true})
	if err != nil {
		t.Fatal(err)
	}
	nodetest.Deploy(t, n, api.Function{Name: "sleep", Memory: 64, Timeout: "5s"}, testutil.BuildWasm(t, "./internal/node/testdata/sleep"))
	post(t, n.URL()+"/function/sleep", `{"ms":0}`)
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Post(n.URL()+"/function/sleep", "application/json", strings.NewReader(`{"ms":500}`))
		if err != nil {
			done <- result{body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{resp.StatusCode, string(b)}
	}()
	time.Sleep(150 * time.Millisecond)
	if err := n.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	r := <-done
	if r.status != 200 || !strings.Contains(r.body, "slept_ms") {
		t.Errorf("in-flight call during stop: %d %s", r.status, r.body)
	}
}

// TestCrashedInstanceIsReplaced: an SDK instance that exits mid-invocation
// gives that invocation an error record, and the next call gets a new one.
func TestCrashedInstanceIsReplaced(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	nodetest.Deploy(t, n, api.Function{Name: "exit", Memory: 64}, testutil.BuildWasm(t, probe))
	resp, body := post(t, n.URL()+"/function/exit", `{"mode":"crash"}`)
	if resp.StatusCode != 500 {
		t.Fatalf("crash: %d %s", resp.StatusCode, body)
	}
	crashID := resp.Header.Get(api.HeaderInvocationID)
	resp, body = post(t, n.URL()+"/function/exit", `{}`)
	if resp.StatusCode != 200 || resp.Header.Get(api.HeaderColdStart) != "true" {
		t.Fatalf("after crash: %d cold=%q %s", resp.StatusCode, resp.Header.Get(api.HeaderColdStart), body)
	}
	nodetest.Eventually(t, 5*time.Second, "crash record", func() bool {
		recs, _ := nodetest.Client(n).Records(context.Background(), "exit", 10)
		for _, r := range recs {
			if r.ID == crashID {
				return r.Status == "error" && r.Error != ""
			}
		}
		return false
	})
}
