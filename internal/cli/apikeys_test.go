package cli_test

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

func TestCLIRoutesAndAPIKeys(t *testing.T) {
	n := nodetest.Start(t, node.Config{}) // with auth: the CLI sends the token
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hello.wasm"), testutil.BuildWasm(t, "./examples/hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	write := func(name, doc string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("nimbus.yaml", `
functions:
  hello: {runtime: wasm, code: ./hello.wasm, memory: 64}
auth:
  keys: {type: api_key}
usage_plans:
  basic: {rate: 10, burst: 20, quota_per_day: 1000}
routes:
  - {route: POST /hi, function: hello, format: raw}
  - {route: POST /private, function: hello, format: raw, auth: keys, rate: {rps: 50, burst: 100}}
`)
	r := run(t, n, "", "deploy", "-f", full)
	if r.code != 0 || !strings.Contains(r.stdout, "created   hello") || !strings.Contains(r.stdout, "created   api (2 routes, 1 authorizers, 1 usage plans)") {
		t.Fatalf("deploy: %+v", r)
	}
	r = run(t, n, "", "routes")
	if r.code != 0 || !strings.Contains(r.stdout, "POST /hi") || !strings.Contains(r.stdout, "keys (api_key)") || !strings.Contains(r.stdout, "50/s burst 100") {
		t.Fatalf("routes: %+v", r)
	}
	post := func(path, key string) (int, string) {
		req, _ := http.NewRequest("POST", n.URL()+path, strings.NewReader(`{"name":"Ada"}`))
		if key != "" {
			req.Header.Set("X-Api-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("/hi", ""); code != 200 || !strings.Contains(body, "Hello, Ada!") {
		t.Fatalf("POST /hi: %d %s", code, body)
	}
	if code, _ := post("/private", ""); code != 401 {
		t.Errorf("POST /private without a key: %d", code)
	}

	r = run(t, n, "", "keys", "create", "app", "--kind", "api", "--plan", "basic")
	key := strings.TrimSpace(r.stdout)
	if r.code != 0 || !strings.HasPrefix(key, "nmb_") || !strings.Contains(r.stderr, "cannot be shown again") {
		t.Fatalf("apikeys create: %+v", r)
	}
	if code, body := post("/private", key); code != 200 || !strings.Contains(body, "Hello, Ada!") {
		t.Errorf("POST /private with the key: %d %s", code, body)
	}
	r = run(t, n, "", "keys", "ls")
	id := key[4:20]
	if r.code != 0 || !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "active") || !strings.Contains(r.stdout, "basic") || strings.Contains(r.stdout, key) {
		t.Errorf("apikeys ls: %+v", r)
	}
	if r = run(t, n, "", "keys", "create", "x", "--kind", "api", "--plan", "gold"); r.code != 2 || !strings.Contains(r.stderr, "gold") {
		t.Errorf("create with an unknown plan: %+v", r)
	}
	if r = run(t, n, "", "keys", "rm", id); r.code != 0 || !strings.Contains(r.stdout, "revoked "+id) {
		t.Errorf("apikeys rm: %+v", r)
	}
	if code, _ := post("/private", key); code != 401 {
		t.Errorf("POST /private with a revoked key: %d", code)
	}

	// Applying the same manifest again changes nothing.
	if r = run(t, n, "", "deploy", "-f", full); r.code != 0 || !strings.Contains(r.stdout, "unchanged api") {
		t.Errorf("redeploy: %+v", r)
	}
	// A conflicting manifest fails before anything changes.
	bad := write("bad.yaml", "functions:\n  hello: {runtime: wasm, code: ./hello.wasm, memory: 128}\nroutes:\n  - {route: 'GET /u/{id}', function: hello}\n  - {route: 'GET /u/{name}', function: hello}\n")
	if r = run(t, n, "", "deploy", "-f", bad); r.code != 2 || !strings.Contains(r.stderr, "GET /u/{name}") || strings.Contains(r.stdout, "updated") {
		t.Errorf("conflicting routes: %+v", r)
	}
	// A manifest without routes leaves them; `routes: []` clears them.
	fnOnly := write("fn.yaml", "functions:\n  hello: {runtime: wasm, code: ./hello.wasm, memory: 64}\n")
	if r = run(t, n, "", "deploy", "-f", fnOnly); r.code != 0 || strings.Contains(r.stdout, "api") {
		t.Errorf("functions-only deploy: %+v", r)
	}
	if r = run(t, n, "", "routes"); !strings.Contains(r.stdout, "POST /hi") {
		t.Errorf("routes after a functions-only deploy: %+v", r)
	}
	clear := write("clear.yaml", "routes: []\n")
	if r = run(t, n, "", "deploy", "-f", clear); r.code != 0 || !strings.Contains(r.stdout, "updated   api (0 routes") {
		t.Errorf("routes: [] deploy: %+v", r)
	}
	if r = run(t, n, "", "routes"); !strings.Contains(r.stdout, "No routes yet") {
		t.Errorf("routes after clearing: %+v", r)
	}
	if code, _ := post("/hi", ""); code != 404 {
		t.Errorf("POST /hi after clearing: %d", code)
	}
}
