package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

func TestCLIWorkflows(t *testing.T) {
	n := nodetest.Start(t, node.Config{}) // with auth: the CLI sends the admin token
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "echo.wasm"), testutil.BuildWasm(t, "./examples/echo-sdk"), 0o644)
	os.WriteFile(filepath.Join(dir, "signup.asl.json"), []byte(`{"StartAt":"Call","States":{
	  "Call":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:000000000000:function:echo","ResultPath":"$.echoed","Next":"Done"},
	  "Done":{"Type":"Succeed"}}}`), 0o644)
	os.WriteFile(filepath.Join(dir, "wait.asl.json"), []byte(`{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}`), 0o644)
	manifest := filepath.Join(dir, "nimbus.yaml")
	os.WriteFile(manifest, []byte(`functions:
  echo: {code: ./echo.wasm}
workflows:
  signup: {definition: ./signup.asl.json, type: standard}
  quick: {definition: ./signup.asl.json, type: express}
`), 0o644)

	r := run(t, n, "", "deploy", "-f", manifest)
	if r.code != 0 || !strings.Contains(r.stdout, "created   workflow signup (standard)") || !strings.Contains(r.stdout, "created   workflow quick (express)") {
		t.Fatalf("deploy: %+v", r)
	}
	if r = run(t, n, "", "deploy", "-f", manifest); r.code != 0 || !strings.Contains(r.stdout, "unchanged workflow signup") {
		t.Fatalf("second deploy: %+v", r)
	}
	if r = run(t, n, "", "wf", "ls"); r.code != 0 || !strings.Contains(r.stdout, "signup") || !strings.Contains(r.stdout, "EXPRESS") {
		t.Errorf("wf ls: %+v", r)
	}

	r = run(t, n, "", "wf", "run", "signup", "-d", `{"email":"ada@example.com"}`, "--name", "first", "--wait")
	if r.code != 0 || !jsonEq(r.stdout, `{"email":"ada@example.com","echoed":{"email":"ada@example.com"}}`) {
		t.Fatalf("wf run --wait: %+v", r)
	}
	if r = run(t, n, "", "wf", "run", "quick", "-d", `{"x":1}`, "--wait"); r.code != 0 || !jsonEq(r.stdout, `{"x":1,"echoed":{"x":1}}`) {
		t.Errorf("express wf run --wait: %+v", r)
	}
	if r = run(t, n, "", "wf", "ls", "signup"); r.code != 0 || !strings.Contains(r.stdout, "first") || !strings.Contains(r.stdout, "SUCCEEDED") {
		t.Errorf("wf ls signup: %+v", r)
	}
	if r = run(t, n, "", "wf", "describe", "signup:first"); r.code != 0 || !strings.Contains(r.stdout, "SUCCEEDED") {
		t.Errorf("wf describe execution: %+v", r)
	}
	if r = run(t, n, "", "wf", "describe", "signup"); r.code != 0 || !strings.Contains(r.stdout, "STANDARD") || !strings.Contains(r.stdout, `"StartAt":"Call"`) {
		t.Errorf("wf describe machine: %+v", r)
	}
	r = run(t, n, "", "wf", "history", "signup:first")
	for _, want := range []string{"ExecutionStarted", "TaskStateEntered", "LambdaFunctionSucceeded", "ExecutionSucceeded"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("wf history lacks %s: %+v", want, r)
		}
	}
	r = run(t, n, "", "-o", "json", "wf", "history", "signup:first")
	var evs []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &evs); err != nil || len(evs) < 4 {
		t.Errorf("wf history -o json: %v %+v", err, r)
	}

	if r = run(t, n, "", "wf", "create", "sleepy", "-f", filepath.Join(dir, "wait.asl.json")); r.code != 0 || !strings.Contains(r.stdout, "created") {
		t.Fatalf("wf create: %+v", r)
	}
	if r = run(t, n, "", "wf", "run", "sleepy", "--name", "nap"); r.code != 0 || !strings.Contains(r.stdout, ":execution:sleepy:nap") {
		t.Fatalf("wf run: %+v", r)
	}
	if r = run(t, n, "", "wf", "stop", "sleepy:nap", "--error", "Woken"); r.code != 0 {
		t.Fatalf("wf stop: %+v", r)
	}
	if r = run(t, n, "", "wf", "describe", "sleepy:nap"); !strings.Contains(r.stdout, "ABORTED") || !strings.Contains(r.stdout, "Woken") {
		t.Errorf("after stop: %+v", r)
	}
	// Errors: a missing machine is the user's mistake (exit 2).
	if r = run(t, n, "", "wf", "run", "nope"); r.code != 2 || !strings.Contains(r.stderr, "State Machine Does Not Exist") {
		t.Errorf("wf run of a missing machine: %+v", r)
	}
	if r = run(t, n, "", "wf", "rm", "sleepy"); r.code != 0 {
		t.Errorf("wf rm: %+v", r)
	}
}

func jsonEq(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}
