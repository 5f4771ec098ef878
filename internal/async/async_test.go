package async_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/async"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

func startNode(t *testing.T) *node.Node {
	t.Helper()
	return nodetest.Start(t, node.Config{Async: async.Config{AckWait: 2 * time.Second}})
}

func waitStatus(t *testing.T, c *api.Client, id string, want string) *api.Invocation {
	t.Helper()
	var got *api.Invocation
	nodetest.Eventually(t, 20*time.Second, "invocation "+id+" to be "+want, func() bool {
		inv, err := c.Invocation(context.Background(), id)
		if err != nil {
			return false
		}
		got = inv
		return inv.Status == want
	})
	return got
}

func postAsync(t *testing.T, url string, body string, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestAsyncInvocationRunsAndIsTracked(t *testing.T) {
	n := startNode(t)
	nodetest.Deploy(t, n, api.Function{Name: "echo", Memory: 16}, examples.EchoWAT)
	c := nodetest.Client(n)

	resp, body := postAsync(t, n.URL()+"/async-function/echo", `{"hello":"world"}`, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /async-function/echo: status %d, want 202 (%s)", resp.StatusCode, body)
	}
	var acc api.Accepted
	if err := json.Unmarshal(body, &acc); err != nil || acc.InvocationID == "" {
		t.Fatalf("202 body %s: want an invocation id (%v)", body, err)
	}
	if h := resp.Header.Get(api.HeaderInvocationID); h != acc.InvocationID {
		t.Errorf("header %s = %q, want %q", api.HeaderInvocationID, h, acc.InvocationID)
	}
	inv := waitStatus(t, c, acc.InvocationID, api.AsyncSucceeded)
	if string(inv.Result) != `{"hello":"world"}` {
		t.Errorf("result = %s, want the echoed event", inv.Result)
	}
	if inv.Attempts != 1 || inv.Function != "echo" || inv.Record == nil || inv.Record.Status != "ok" {
		t.Errorf("invocation = %+v, want 1 attempt of echo with an ok record", inv)
	}

	// Through the client, too.
	id, err := c.InvokeAsync(context.Background(), "echo", []byte(`"again"`), "")
	if err != nil {
		t.Fatalf("InvokeAsync: %v", err)
	}
	waitStatus(t, c, id, api.AsyncSucceeded)
}

func TestAsyncRefusesUnknownFunctionsAndBadInput(t *testing.T) {
	n := startNode(t)
	nodetest.Deploy(t, n, api.Function{Name: "echo", Memory: 16}, examples.EchoWAT)

	_, err := n.Async.Enqueue(context.Background(), &invoke.Request{Function: "missing", Payload: []byte(`{}`)})
	if !errors.Is(err, function.ErrNotFound) {
		t.Errorf("Enqueue(missing): err = %v, want function.ErrNotFound", err)
	}
	tests := []struct {
		name   string
		path   string
		body   string
		header map[string]string
		want   int
		code   string
	}{
		{"unknown function", "/async-function/missing", `{}`, nil, 404, api.CodeNotFound},
		{"unknown version", "/async-function/echo:7", `{}`, nil, 404, api.CodeNotFound},
		{"oversize", "/async-function/echo", `"` + strings.Repeat("x", 300<<10) + `"`, nil, 413, api.CodePayloadTooLarge},
		{"malformed structured cloudevent", "/async-function/echo", `{"specversion":"1.0"`, map[string]string{"Content-Type": "application/cloudevents+json"}, 400, api.CodeInvalid},
		{"cloudevent without source", "/async-function/echo", `{}`, map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Type": "t", "Content-Type": "application/json"}, 400, api.CodeInvalid},
		{"batch mode", "/async-function/echo", `[]`, map[string]string{"Content-Type": "application/cloudevents-batch+json"}, 415, api.CodeUnsupportedMediaType},
		{"bad callback", "/async-function/echo", `{}`, map[string]string{api.HeaderCallbackURL: "ftp://x"}, 400, api.CodeInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := postAsync(t, n.URL()+tc.path, tc.body, tc.header)
			var eb api.ErrorBody
			_ = json.Unmarshal(body, &eb)
			if resp.StatusCode != tc.want || eb.Error == nil || eb.Error.Code != tc.code {
				t.Errorf("status %d body %s, want %d %s", resp.StatusCode, body, tc.want, tc.code)
			}
		})
	}
	if _, err := nodetest.Client(n).Invocation(context.Background(), "no-such-id"); !isStatus(err, 404) {
		t.Errorf("GET unknown invocation: %v, want 404", err)
	}
}

func isStatus(err error, status int) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Status == status
}

func TestCloudEventBinaryModeReachesTheFunctionAsJSON(t *testing.T) {
	n := startNode(t)
	nodetest.Deploy(t, n, api.Function{Name: "echo", Memory: 16}, examples.EchoWAT)
	resp, body := postAsync(t, n.URL()+"/async-function/echo", `{"n":1}`, map[string]string{
		"Ce-Specversion": "1.0", "Ce-Id": "ev-1", "Ce-Source": "/test", "Ce-Type": "com.example.ping", "Content-Type": "application/json",
	})
	if resp.StatusCode != 202 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var acc api.Accepted
	_ = json.Unmarshal(body, &acc)
	inv := waitStatus(t, nodetest.Client(n), acc.InvocationID, api.AsyncSucceeded)
	var ce map[string]any
	if err := json.Unmarshal(inv.Result, &ce); err != nil {
		t.Fatalf("result %s: %v", inv.Result, err)
	}
	if ce["id"] != "ev-1" || ce["type"] != "com.example.ping" || ce["specversion"] != "1.0" {
		t.Errorf("function got %s, want the CloudEvent in JSON form", inv.Result)
	}
	if d, _ := ce["data"].(map[string]any); d["n"] != float64(1) {
		t.Errorf("data = %v, want {n:1}", ce["data"])
	}
}

func TestPoisonEventRetriesThenDeadLettersAndReplays(t *testing.T) {
	code := testutil.BuildWasm(t, "./internal/async/testdata/flaky")
	n := startNode(t)
	retries := 2
	fn := api.Function{Name: "flaky", Memory: 64, Async: &api.AsyncConfig{Retries: &retries, Backoff: "100ms"}}
	nodetest.Deploy(t, n, fn, code)
	c := nodetest.Client(n)
	ctx := context.Background()

	start := time.Now()
	id, err := c.InvokeAsync(ctx, "flaky", []byte(`{"fail":true}`), "")
	if err != nil {
		t.Fatal(err)
	}
	inv := waitStatus(t, c, id, api.AsyncFailed)
	elapsed := time.Since(start)
	if inv.Attempts != 3 {
		t.Errorf("attempts = %d, want 3 (1 + 2 retries)", inv.Attempts)
	}
	if !strings.Contains(inv.Error, "poison event") {
		t.Errorf("error = %q, want the function's error", inv.Error)
	}
	// Backoff 100ms then 200ms, each with equal jitter: at least 50+100ms.
	if elapsed < 150*time.Millisecond {
		t.Errorf("3 attempts took %s: want the retries backed off", elapsed)
	}

	var list *api.DeadLetterList
	nodetest.Eventually(t, 10*time.Second, "a dead letter", func() bool {
		list, err = c.DeadLetters(ctx, "flaky", 10)
		return err == nil && len(list.Entries) == 1
	})
	d := list.Entries[0]
	if d.ID != id || d.Attempts != 3 || d.Reason != "retries" || !strings.Contains(d.Error, "poison event") {
		t.Errorf("dead letter = %+v, want id %s, 3 attempts, reason retries, the error", d, id)
	}
	// Each listing left its consumer on the stream for 5 minutes, and a
	// stream holds 1,000.
	for i := range 1100 {
		if l, err := c.DeadLetters(ctx, "flaky", 10); err != nil || len(l.Entries) != 1 {
			t.Fatalf("listing %d: %+v, %v", i, l, err)
		}
	}
	full, err := c.DeadLetter(ctx, "flaky", id)
	if err != nil || string(full.Payload) != `{"fail":true}` {
		t.Fatalf("dlq show: %+v, %v; want the original payload", full, err)
	}

	// Cure the function, replay: it runs again and succeeds; the DLQ is empty.
	fn.Env = map[string]string{"HEAL": "1"}
	nodetest.Deploy(t, n, fn, code)
	res, err := c.Replay(ctx, "flaky", api.ReplayRequest{IDs: []string{id}})
	if err != nil || len(res.Replayed) != 1 {
		t.Fatalf("replay: %+v, %v", res, err)
	}
	waitStatus(t, c, res.Replayed[0].InvocationID, api.AsyncSucceeded)
	if list, err := c.DeadLetters(ctx, "flaky", 10); err != nil || len(list.Entries) != 0 {
		t.Errorf("DLQ after replay: %+v, %v; want empty", list, err)
	}

	// Purge.
	fn.Env = nil
	nodetest.Deploy(t, n, fn, code)
	zero := 0
	fn.Async.Retries = &zero
	nodetest.Deploy(t, n, fn, code)
	id2, _ := c.InvokeAsync(ctx, "flaky", []byte(`{"fail":true}`), "")
	waitStatus(t, c, id2, api.AsyncFailed)
	nodetest.Eventually(t, 10*time.Second, "second dead letter", func() bool {
		l, err := c.DeadLetters(ctx, "flaky", 10)
		return err == nil && len(l.Entries) == 1
	})
	p, err := c.PurgeDeadLetters(ctx, "flaky")
	if err != nil || p.Purged != 1 {
		t.Errorf("purge: %+v, %v; want 1 purged", p, err)
	}
}

func TestDestinationsAndCallback(t *testing.T) {
	code := testutil.BuildWasm(t, "./internal/async/testdata/flaky")
	n := startNode(t)
	c := nodetest.Client(n)
	zero := 0
	nodetest.Deploy(t, n, api.Function{Name: "sink", Memory: 16}, examples.EchoWAT)
	nodetest.Deploy(t, n, api.Function{Name: "flaky", Memory: 64, Async: &api.AsyncConfig{
		Retries:   &zero,
		OnSuccess: &api.Destination{Function: "sink"},
		OnFailure: &api.Destination{Subject: "test.failures"},
	}}, code)

	sub, err := n.Store.NC.SubscribeSync("test.failures")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()

	var mu sync.Mutex
	var calls []http.Header
	var bodies []string
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		calls = append(calls, r.Header.Clone())
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer cb.Close()

	ctx := context.Background()
	okID, err := c.InvokeAsync(ctx, "flaky", []byte(`{"n":1}`), cb.URL)
	if err != nil {
		t.Fatal(err)
	}
	badID, err := c.InvokeAsync(ctx, "flaky", []byte(`{"fail":true}`), "")
	if err != nil {
		t.Fatal(err)
	}

	// Success destination: the sink function receives the record.
	sinkInv := waitStatus(t, c, okID+".ok", api.AsyncSucceeded)
	var ce struct {
		Type string `json:"type"`
		Data struct {
			RequestContext struct {
				RequestID string `json:"requestId"`
				Condition string `json:"condition"`
				Count     int    `json:"approximateInvokeCount"`
			} `json:"requestContext"`
			RequestPayload  json.RawMessage `json:"requestPayload"`
			ResponsePayload json.RawMessage `json:"responsePayload"`
		} `json:"data"`
	}
	if err := json.Unmarshal(sinkInv.Result, &ce); err != nil {
		t.Fatalf("sink got %s: %v", sinkInv.Result, err)
	}
	if ce.Type != async.TypeSuccess || ce.Data.RequestContext.RequestID != okID || ce.Data.RequestContext.Condition != "Success" ||
		ce.Data.RequestContext.Count != 1 || string(ce.Data.RequestPayload) != `{"n":1}` || string(ce.Data.ResponsePayload) != `{"n":1}` {
		t.Errorf("success destination got %s", sinkInv.Result)
	}

	// Failure destination: a subject.
	msg, err := sub.NextMsg(20 * time.Second)
	if err != nil {
		t.Fatalf("no failure event on test.failures: %v", err)
	}
	if !bytes.Contains(msg.Data, []byte(badID)) || !bytes.Contains(msg.Data, []byte("RetriesExhausted")) || !bytes.Contains(msg.Data, []byte("poison event")) {
		t.Errorf("failure event = %s", msg.Data)
	}

	// Callback.
	nodetest.Eventually(t, 10*time.Second, "the callback", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) == 1
	})
	mu.Lock()
	defer mu.Unlock()
	if calls[0].Get(api.HeaderInvocationID) != okID || calls[0].Get("X-Function-Status") != "200" || bodies[0] != `{"n":1}` {
		t.Errorf("callback: headers %v body %q", calls[0], bodies[0])
	}
}

// TestAsyncIsShared checks that two nodes on one NATS server share the
// queue: work enqueued on one may run on either, and each exactly once in
// the absence of failures.
func TestAsyncIsShared(t *testing.T) {
	a := nodetest.Start(t, node.Config{NATSListen: "127.0.0.1:0"})
	b := nodetest.Start(t, node.Config{NATSURL: a.NATSURL()})
	nodetest.Deploy(t, a, api.Function{Name: "echo", Memory: 16}, examples.EchoWAT)
	nodetest.Eventually(t, 10*time.Second, "b to see echo", func() bool {
		_, err := b.Reg.Get("echo")
		return err == nil
	})
	c := nodetest.Client(a)
	ids := map[string]bool{}
	for i := range 50 {
		target := a
		if i%2 == 1 {
			target = b
		}
		id, err := nodetest.Client(target).InvokeAsync(context.Background(), "echo", []byte(`{}`), "")
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	for id := range ids {
		waitStatus(t, c, id, api.AsyncSucceeded)
	}
	_ = nats.ErrTimeout
}

// TestStopHandsWorkBack: a node that stops hands back the invocations it
// had fetched but not started, so that another node runs them at once
// instead of after the ack wait (two minutes here).
func TestStopHandsWorkBack(t *testing.T) {
	cfg := async.Config{AckWait: 2 * time.Minute, Workers: 16}
	a := nodetest.Start(t, node.Config{NATSListen: "127.0.0.1:0", Async: cfg})
	bDir := t.TempDir()
	b := nodetest.Start(t, node.Config{NATSURL: a.NATSURL(), DataDir: bDir, Async: cfg})
	ctx := context.Background()
	// a runs none: it is the NATS server, which the test keeps.
	if err := a.Async.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	nodetest.Deploy(t, a, api.Function{Name: "sleep", Memory: 64, Timeout: "5s", Max: 2}, testutil.BuildWasm(t, "./internal/node/testdata/sleep"))
	nodetest.Eventually(t, 10*time.Second, "b to see the function", func() bool {
		_, err := b.Reg.Get("sleep")
		return err == nil
	})
	c := nodetest.Client(b)
	var ids []string
	for range 24 {
		id, err := c.InvokeAsync(ctx, "sleep", []byte(`{"ms":150}`), "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	nodetest.Eventually(t, time.Minute, "the first invocation", func() bool {
		inv, err := c.Invocation(ctx, ids[0])
		return err == nil && inv.Status == api.AsyncSucceeded
	})
	// b holds most of the rest, fetched ahead of its two instances. A third
	// node takes over when b's queue stops.
	// It starts with b's compiled code (wazero's cache), as compiling
	// again under -race takes most of a minute.
	dDir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dDir, "wasm-cache"), os.DirFS(filepath.Join(bDir, "wasm-cache"))); err != nil {
		t.Fatal(err)
	}
	d := nodetest.Start(t, node.Config{NATSURL: a.NATSURL(), DataDir: dDir, Async: cfg})
	stopped := time.Now()
	if err := b.Async.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	dc := nodetest.Client(d)
	nodetest.Eventually(t, time.Minute, "every invocation", func() bool {
		for _, id := range ids {
			if inv, err := dc.Invocation(ctx, id); err != nil || inv.Status != api.AsyncSucceeded {
				return false
			}
		}
		return true
	})
	t.Logf("%d invocations done %v after the stop", len(ids), time.Since(stopped).Round(time.Millisecond))
}

// TestPendingInvocationIsTracked checks that an accepted invocation no worker
// has finished yet is reported as queued: accepting writes only the event,
// and the status comes from the event's message in the queue.
func TestPendingInvocationIsTracked(t *testing.T) {
	n := startNode(t)
	nodetest.Deploy(t, n, api.Function{Name: "echo", Memory: 16}, examples.EchoWAT)
	// With the workers stopped, what is enqueued stays in the queue.
	if err := n.Async.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, id := range []string{"", "with.dots.in-it", "plain-id_1"} {
		req := &invoke.Request{Function: "echo", Payload: []byte(`{}`), ID: id, Source: "test"}
		got, err := n.Async.Enqueue(ctx, req)
		if err != nil {
			t.Fatalf("Enqueue(%q): %v", id, err)
		}
		inv, err := n.Async.Invocation(ctx, got)
		if err != nil {
			t.Fatalf("Invocation(%q): %v", got, err)
		}
		if inv.ID != got || inv.Status != api.AsyncQueued || inv.Function != "echo" || inv.Source != "test" || inv.Enqueued.IsZero() {
			t.Errorf("Invocation(%q) = %+v, want echo queued from test", got, inv)
		}
	}
	// Ids that differ only where the subject token is escaped stay apart.
	if _, err := n.Async.Invocation(ctx, "with~dots~in-it"); !errors.Is(err, function.ErrNotFound) {
		t.Errorf("Invocation of an id never enqueued: err = %v, want function.ErrNotFound", err)
	}
}
