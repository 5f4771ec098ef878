package workflow_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// crashMachine has a Task, a Wait of a few seconds, a Map and a Parallel.
const crashMachine = `{
  "StartAt": "Call",
  "States": {
    "Call": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:000000000000:function:identity", "ResultPath": "$.called", "Next": "Pause"},
    "Pause": {"Type": "Wait", "Seconds": 3, "Next": "Each"},
    "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ResultPath": "$.mapped",
      "ItemProcessor": {"StartAt": "Echo", "States": {"Echo": {"Type": "Task", "Resource": "identity", "End": true}}},
      "Next": "Both"},
    "Both": {"Type": "Parallel", "ResultPath": "$.both", "End": true, "Branches": [
      {"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"n.$": "$.n"}, "End": true}}},
      {"StartAt": "B", "States": {"B": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "Parameters": {"FunctionName": "echo_hello", "Payload.$": "$"}, "ResultSelector": {"r.$": "$.Payload.Return"}, "End": true}}}
    ]}
  }
}`

// TestCrashRecovery runs `nimbus up` as a child process, starts 200
// Standard executions, kills the server with SIGKILL while they run,
// restarts it on the same data directory, and checks that every execution
// completes with the right output and a consistent history.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the nimbus binary and runs it twice")
	}
	const count = 200
	bin := filepath.Join(t.TempDir(), "nimbus")
	root, err := examples.Root()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/nimbus")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nimbus: %v\n%s", err, out)
	}
	data := t.TempDir()

	srv := startServer(t, bin, data)
	c := api.NewClient(srv.url, "")
	ctx := context.Background()
	code := testutil.BuildWasm(t, "./internal/workflow/testdata/confn")
	for _, b := range []string{"identity", "echo_hello"} {
		up, err := c.PutCode(ctx, bytes.NewReader(code))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutFunction(ctx, &api.Function{Name: b, Runtime: "wasm", Code: up.Digest, Memory: 64, Timeout: "30s", Max: 100,
			Env: map[string]string{"BEHAVIOR": b}}); err != nil {
			t.Fatal(err)
		}
	}
	machine, err := c.CreateStateMachine(ctx, "crash", crashMachine, "STANDARD", "")
	if err != nil {
		t.Fatal(err)
	}
	arns := make([]string, count)
	var wg sync.WaitGroup
	var failed atomic.Int32
	sem := make(chan struct{}, 16)
	for i := range count {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			arn, err := c.StartExecution(ctx, machine, fmt.Sprintf("x%03d", i), fmt.Sprintf(`{"n":%d,"items":[%d,%d,%d]}`, i, i, i+1, i+2))
			if err != nil {
				t.Errorf("start %d: %v", i, err)
				failed.Add(1)
				return
			}
			arns[i] = arn
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.FailNow()
	}
	// Mid-run: every execution has started and most are in their Wait.
	time.Sleep(1500 * time.Millisecond)
	running := 0
	for _, arn := range arns[:50] {
		if x, err := c.DescribeExecution(ctx, arn); err == nil && x.Status == "RUNNING" {
			running++
		}
	}
	srv.kill(t)
	if running == 0 {
		t.Fatal("no execution was running when the server was killed: the test proves nothing")
	}
	t.Logf("killed the server with %d of the first 50 executions running", running)

	srv = startServer(t, bin, data)
	c = api.NewClient(srv.url, "")
	deadline := time.Now().Add(3 * time.Minute)
	for i, arn := range arns {
		var x *api.WorkflowExecution
		for {
			x, err = c.DescribeExecution(ctx, arn)
			if err != nil {
				t.Fatalf("describe %s: %v", arn, err)
			}
			if x.Status != "RUNNING" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still running after the restart", arn)
			}
			time.Sleep(100 * time.Millisecond)
		}
		want := fmt.Sprintf(`{"n":%d,"items":[%d,%d,%d],"called":{"n":%d,"items":[%d,%d,%d]},"mapped":[%d,%d,%d],"both":[{"n":%d},{"r":"HelloWorld"}]}`,
			i, i, i+1, i+2, i, i, i+1, i+2, i, i+1, i+2, i)
		if x.Status != "SUCCEEDED" || x.Output == nil || !jsonEqual(*x.Output, want) {
			t.Errorf("%s: got %s %v %s %s", arn, x.Status, x.Output, x.Error, x.Cause)
			continue
		}
		evs, err := c.ExecutionHistory(ctx, arn, true)
		if err != nil {
			t.Fatal(err)
		}
		if err := consistent(evs); err != nil {
			t.Errorf("%s: history: %v", arn, err)
		}
	}
}

// consistent checks a history read through the API client: ids 1..n, one
// start first, one success last, and every state entered exited once.
func consistent(evs []api.HistoryEvent) error {
	if len(evs) < 2 || evs[0].Type != "ExecutionStarted" || evs[len(evs)-1].Type != "ExecutionSucceeded" {
		return fmt.Errorf("%d events, from %v to %v", len(evs), evs[0].Type, evs[len(evs)-1].Type)
	}
	entered, exited := 0, 0
	for i, e := range evs {
		if e.ID != int64(i+1) {
			return fmt.Errorf("event %d has id %d", i+1, e.ID)
		}
		if e.PreviousEventID >= e.ID {
			return fmt.Errorf("event %d points forward to %d", e.ID, e.PreviousEventID)
		}
		switch {
		case len(e.Type) > len("StateEntered") && e.Type[len(e.Type)-len("StateEntered"):] == "StateEntered":
			entered++
		case len(e.Type) > len("StateExited") && e.Type[len(e.Type)-len("StateExited"):] == "StateExited":
			exited++
		case e.Type == "ExecutionStarted" && i > 0, e.Type == "ExecutionSucceeded" && i < len(evs)-1:
			return fmt.Errorf("%s at event %d", e.Type, e.ID)
		}
	}
	if entered != exited {
		return fmt.Errorf("%d states entered, %d exited", entered, exited)
	}
	return nil
}

type server struct {
	cmd *exec.Cmd
	url string
	out *bytes.Buffer
}

func startServer(t *testing.T, bin, data string) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &server{url: "http://" + addr, out: &bytes.Buffer{}}
	s.cmd = exec.Command(bin, "up", "--dev", "--data", data, "--listen", addr, "--log-level", "warn")
	s.cmd.Stdout, s.cmd.Stderr = &lockedWriter{w: s.out}, &lockedWriter{w: s.out}
	s.cmd.Env = append(os.Environ(), "NIMBUS_DATA="+data)
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill() //nolint:errcheck // already gone is fine
			s.cmd.Wait()         //nolint:errcheck // killed
		}
		if t.Failed() {
			t.Logf("nimbus output:\n%s", s.out.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nimbus did not become ready: %v\n%s", err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the server with SIGKILL: no drain, no flush, no goodbye.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	s.cmd.Wait() //nolint:errcheck // killed on purpose
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
