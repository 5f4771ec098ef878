package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/cli"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// TestUpDemo runs the README's first command, `nimbus up --demo`, and
// calls what it says to try: every demo function answers, the visits
// function's count in its table stays exact under concurrent calls, and
// the node stops cleanly when its context ends (as on SIGINT).
func TestUpDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr testutil.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, []string{"up", "--demo", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--log-level", "warn"}, strings.NewReader(""), &stdout, &stderr)
	}()
	// Building the demo's four functions takes a while on a cold build
	// cache, while other packages' tests build theirs on the same cores.
	testutil.EventuallyWithin(t, 5*time.Minute, "up --demo to deploy its functions", func() bool {
		select {
		case code := <-done:
			t.Fatalf("up --demo exited with %d before its demo was up:\n%s\n%s", code, stdout.String(), stderr.String())
		default:
		}
		for line := range strings.Lines(stderr.String()) {
			if strings.HasPrefix(line, "demo: ") && !strings.HasPrefix(line, "demo: building") {
				t.Fatalf("up --demo failed: %s", line)
			}
		}
		return strings.Contains(stdout.String(), "Try:")
	})
	var url string
	if _, err := fmt.Sscanf(stdout.String(), "Nimbus is up at %s\n", &url); err != nil {
		t.Fatalf("no URL in %q: %v", stdout.String(), err)
	}
	post := func(name, body string) (string, error) {
		resp, err := http.Post(url+"/function/"+name, "application/json", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s %s", name, resp.Status, b)
		}
		return string(b), err
	}
	call := func(name, body string) string {
		t.Helper()
		out, err := post(name, body)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for name, want := range map[string]string{
		"hello":     `Hello, Ada!`,
		"echo":      `{"name":"Ada"}`,
		"echo-wasi": `{"name":"Ada"}`,
		"echo-wat":  `{"name":"Ada"}`,
		"visits":    `"visits":1`,
	} {
		if got := call(name, `{"name":"Ada"}`); !strings.Contains(got, want) {
			t.Errorf("%s: %s, want %s in it", name, got, want)
		}
	}
	// Concurrent visits of one name: each call's conditional write either
	// wins or reads again, so none is lost.
	const calls = 20
	var wg sync.WaitGroup
	for range calls {
		wg.Go(func() {
			if _, err := post("visits", `{"name":"Grace"}`); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var c struct{ Visits int }
	if err := json.Unmarshal([]byte(call("visits", `{"name":"Grace"}`)), &c); err != nil || c.Visits != calls+1 {
		t.Errorf("after %d concurrent visits, the next is number %d (%v), want %d", calls, c.Visits, err, calls+1)
	}
	// The command the demo says to try, as printed: with --server, since
	// the node is not at the default address.
	_, scan, _ := strings.Cut(stdout.String(), "go run ./cmd/nimbus --server ")
	scan, _, _ = strings.Cut(scan, "\n")
	if !strings.HasSuffix(scan, "table scan visits") {
		t.Fatalf("no table scan to try in %q", stdout.String())
	}
	r := run(t, nil, "", append([]string{"--server"}, strings.Fields(scan)...)...)
	if r.code != 0 || !strings.Contains(r.stdout, `"name":"Grace","visits":21`) || !strings.Contains(r.stdout, `"name":"Ada","visits":1`) {
		t.Errorf("table scan visits: %+v", r)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(stderr.String(), "stopped") {
			t.Errorf("up exited with %d:\n%s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("up did not stop within a minute of its context's end")
	}
}
