package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/internal/cli"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, n *node.Node, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	full := args
	if n != nil {
		full = append([]string{"--server", n.URL(), "--token", n.Token()}, args...)
	}
	code := cli.Run(context.Background(), full, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func TestCLIWorkflow(t *testing.T) {
	n := nodetest.Start(t, node.Config{}) // with auth: the CLI sends the token
	dir := t.TempDir()
	wasmFile := filepath.Join(dir, "hello.wasm")
	if err := os.WriteFile(wasmFile, testutil.BuildWasm(t, "./examples/hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	r := run(t, n, "", "deploy", "hello", "--runtime", "wasm", "--code", wasmFile, "--memory", "64", "--timeout", "2s", "--max", "50")
	if r.code != 0 || !strings.Contains(r.stdout, "created") {
		t.Fatalf("deploy: %+v", r)
	}
	r = run(t, n, "", "invoke", "hello", "-d", `{"name":"Ada"}`)
	if r.code != 0 || !strings.Contains(r.stdout, "Hello, Ada!") {
		t.Fatalf("invoke: %+v", r)
	}
	if err := os.WriteFile(filepath.Join(dir, "event.json"), []byte(`{"name":"File"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if r = run(t, n, "", "invoke", "hello", "-d", "@"+filepath.Join(dir, "event.json")); !strings.Contains(r.stdout, "File") {
		t.Errorf("invoke -d @file: %+v", r)
	}
	if r = run(t, n, `{"name":"Stdin"}`, "invoke", "hello", "-d", "-"); !strings.Contains(r.stdout, "Stdin") {
		t.Errorf("invoke -d -: %+v", r)
	}
	r = run(t, n, "", "invoke", "hello", "-d", `{"name":"J"}`, "-o", "json")
	var inv map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &inv); err != nil || inv["invocation_id"] == "" {
		t.Errorf("invoke -o json: %v %q", err, r.stdout)
	}

	if r = run(t, n, "", "ls"); r.code != 0 || !strings.Contains(r.stdout, "hello") || !strings.Contains(r.stdout, "64 MB") {
		t.Errorf("ls: %+v", r)
	}
	r = run(t, n, "", "ls", "-o", "json")
	var fns []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &fns); err != nil || len(fns) != 1 || fns[0]["name"] != "hello" {
		t.Errorf("ls -o json: %v %q", err, r.stdout)
	}
	if r = run(t, n, "", "get", "hello"); r.code != 0 || !strings.Contains(r.stdout, "Timeout:") || !strings.Contains(r.stdout, "2s") {
		t.Errorf("get: %+v", r)
	}

	testutil.Eventually(t, "records", func() bool {
		r = run(t, n, "", "logs", "hello")
		return strings.Count(r.stdout, " ok ") >= 4
	})
	if !strings.Contains(r.stdout, "cold start") || !strings.Contains(r.stdout, "cli") {
		t.Errorf("logs: %s", r.stdout)
	}
	r = run(t, n, "", "logs", "hello", "-n", "2", "-o", "json")
	var recs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil || len(recs) != 2 {
		t.Errorf("logs -o json: %v %q", err, r.stdout)
	}

	// Versions and aliases.
	if r = run(t, n, "", "publish", "hello"); r.code != 0 || !strings.Contains(r.stdout, "published hello version 1") {
		t.Errorf("publish: %+v", r)
	}
	if r = run(t, n, "", "alias", "hello", "live", "--version", "1"); r.code != 0 || !strings.Contains(r.stdout, "created alias live -> version 1") {
		t.Errorf("alias: %+v", r)
	}
	if r = run(t, n, "", "alias", "hello", "live", "--version", "1", "--weight", "2=oops"); r.code != cli.ExitUsage {
		t.Errorf("bad weight: %+v", r)
	}
	if r = run(t, n, "", "invoke", "hello", "-q", "live", "-d", `{"name":"Alias"}`, "-o", "json"); !strings.Contains(r.stdout, `"version": "1"`) {
		t.Errorf("invoke alias: %+v", r)
	}
	if r = run(t, n, "", "versions", "hello"); !strings.Contains(r.stdout, "VERSION") || !strings.Contains(r.stdout, "wasm") {
		t.Errorf("versions: %+v", r)
	}
	if r = run(t, n, "", "versions", "hello", "--delete", "1"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "alias") {
		t.Errorf("delete aliased version: %+v", r)
	}
	if r = run(t, n, "", "alias", "hello"); !strings.Contains(r.stdout, "live") {
		t.Errorf("alias list: %+v", r)
	}

	if r = run(t, n, "", "rm", "hello"); r.code != 0 || !strings.Contains(r.stdout, "deleted hello") {
		t.Errorf("rm: %+v", r)
	}
	if r = run(t, n, "", "invoke", "hello"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "not found") {
		t.Errorf("invoke after rm: %+v", r)
	}
}

func TestCLIDeployManifest(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.wasm"), testutil.BuildWasm(t, "./examples/hello"), 0o644)
	os.WriteFile(filepath.Join(dir, "echo.wasm"), testutil.BuildWasm(t, "./examples/echo-wasi"), 0o644)
	manifest := filepath.Join(dir, "nimbus.yaml")
	write := func(mem int) {
		os.WriteFile(manifest, []byte(`functions:
  hello:
    code: ./hello.wasm
    memory: `+itoa(mem)+`
    timeout: 2s
  echo:
    runtime: wasm
    code: echo.wasm
`), 0o644)
	}
	write(64)
	r := run(t, n, "", "deploy", "-f", manifest)
	if r.code != 0 || strings.Count(r.stdout, "created") != 2 {
		t.Fatalf("first apply: %+v", r)
	}
	write(96)
	r = run(t, n, "", "deploy", "-f", manifest)
	if r.code != 0 || !strings.Contains(r.stdout, "updated   hello") || !strings.Contains(r.stdout, "unchanged echo") {
		t.Fatalf("second apply: %+v", r)
	}
	if r = run(t, n, "", "invoke", "echo", "-d", "ping"); r.stdout != "ping\n" {
		t.Errorf("echo: %+v", r)
	}
}

func TestCLIErrors(t *testing.T) {
	n := nodetest.Start(t, node.Config{Dev: true})
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("functions:\n  f:\n    code: x.wasm\n    memroy: 1\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"frobnicate"}, cli.ExitUsage, "unknown command"},
		{"unknown flag", []string{"ls", "--nope"}, cli.ExitUsage, "unknown flag"},
		{"bad output", []string{"ls", "-o", "yaml"}, cli.ExitUsage, "--output"},
		{"bad callback-allow", []string{"up", "--callback-allow", "bogus"}, cli.ExitUsage, "--callback-allow"},
		{"deploy without code", []string{"deploy", "f"}, cli.ExitUsage, "--code is required"},
		{"deploy bad name", []string{"deploy", "bad.name", "--code", bad}, cli.ExitUsage, "name"},
		{"deploy bad memory", []string{"deploy", "f", "--code", bad, "--memory", "-1"}, cli.ExitUsage, "memory"},
		{"deploy missing file", []string{"deploy", "f", "--code", filepath.Join(dir, "nope.wasm")}, cli.ExitUsage, "no such file"},
		{"manifest unknown key", []string{"deploy", "-f", bad}, cli.ExitUsage, "unknown key memroy"},
		{"bad env", []string{"deploy", "f", "--code", bad, "--env", "NOEQUALS"}, cli.ExitUsage, "KEY=VALUE"},
		{"invoke unknown", []string{"invoke", "ghost"}, cli.ExitUsage, "not found"},
		{"logs bad n", []string{"logs", "x", "-n", "0"}, cli.ExitUsage, "-n"},
		{"invoke missing arg", []string{"invoke"}, cli.ExitUsage, "accepts 1 arg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, n, "", tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("code %d stderr %q; want code %d and %q", r.code, r.stderr, tc.code, tc.want)
			}
		})
	}
	// An unreachable node is an operational error (1) with advice.
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), []string{"--server", "http://127.0.0.1:1", "ls"}, nil, &out, &errb)
	if code != cli.ExitError || !strings.Contains(errb.String(), "nimbus up") {
		t.Errorf("unreachable: code %d, %q", code, errb.String())
	}
}

// TestHelpHasExamples: every command's --help shows an example.
func TestHelpHasExamples(t *testing.T) {
	for _, cmd := range []string{"", "up", "deploy", "invoke", "ls", "get", "rm", "logs", "publish", "versions", "alias"} {
		args := []string{"--help"}
		if cmd != "" {
			args = []string{cmd, "--help"}
		}
		r := run(t, nil, "", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Examples:") {
			t.Errorf("nimbus %s --help: code %d, no Examples section:\n%s", cmd, r.code, r.stdout)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestUpFlags: nimbus up refuses bad flag values with exit code 2 and a
// message that names the flag, before it starts anything.
func TestUpFlags(t *testing.T) {
	for _, args := range [][]string{
		{"up", "--table-cache", "-1"},
		{"up", "--body-idle-timeout", "0s"},
		{"up", "--max-uploads", "0"},
		{"up", "--log-level", "loud"},
		{"up", "--trusted-proxy", "not-an-address"},
		{"up", "--replicas", "3"}, // the embedded server cannot replicate
		{"up", "--replicas", "7", "--nats", "nats://127.0.0.1:4222"},
	} {
		r := run(t, nil, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, args[1]) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message naming %s", args, r.code, r.stderr, args[1])
		}
	}
}
