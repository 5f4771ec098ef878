package lambdaapi_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/lambdaapi"
	"github.com/nimbus-run/nimbus/internal/runtime"
)

// fakeInvoker answers by payload: "fail" -> function error, "timeout",
// "throttle", "block" (until ctx ends), "biglogs"; else an echo.
type fakeInvoker struct {
	mu   sync.Mutex
	reqs []invoke.Request
}

func (f *fakeInvoker) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, *req)
	f.mu.Unlock()
	if _, err := (fakeCatalog{}).Resolve(req.Function, req.Qualifier); err != nil {
		return nil, err
	}
	rec := &function.Record{ID: req.ID, Function: req.Function, Version: "$LATEST", Logs: "log line\n",
		DurationMS: 1.5, BilledMS: 2, MemoryMB: 128, MaxMemoryMB: 20.3, ColdStart: true, InitMS: 4.25}
	resp := &invoke.Response{Record: rec}
	p := string(req.Payload)
	switch {
	case strings.Contains(p, "fail"):
		resp.Err = &runtime.FunctionError{Type: "MyError", Message: "it failed", Trace: []string{"main.go:1"}}
		return resp, fmt.Errorf("%s: %w: it failed", req.Function, function.ErrFunction)
	case strings.Contains(p, "timeout"):
		return resp, fmt.Errorf("%s timed out: %w", req.Function, function.ErrTimeout)
	case strings.Contains(p, "throttle"):
		return resp, fmt.Errorf("%s is at its max concurrency: %w", req.Function, function.ErrThrottled)
	case strings.Contains(p, "block"):
		<-ctx.Done()
		return resp, fmt.Errorf("canceled: %w", function.ErrTimeout)
	case strings.Contains(p, "biglogs"):
		rec.Logs = strings.Repeat("é", 3000) // 6000 bytes of two-byte runes
	}
	resp.Payload = req.Payload
	return resp, nil
}

func (f *fakeInvoker) last() invoke.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		return invoke.Request{}
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fakeInvoker) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

type fakeCatalog struct{}

func (fakeCatalog) Resolve(name, qualifier string) (*function.Spec, error) {
	if name == "echo" && (qualifier == "" || qualifier == "$LATEST" || qualifier == "live") {
		return &function.Spec{Name: name, Timeout: function.Duration(time.Second), Version: "$LATEST"}, nil
	}
	return nil, fmt.Errorf("%q: %w", name, function.ErrNotFound)
}

func newTestAPI(t testing.TB, cfg lambdaapi.InvokeAPIConfig) (http.Handler, *lambdaapi.InvokeAPI, *fakeInvoker) {
	inv := &fakeInvoker{}
	a := lambdaapi.NewInvokeAPI(cfg, inv, fakeCatalog{}, nil, nil)
	mux := http.NewServeMux()
	mux.Handle(lambdaapi.InvokePattern, a)
	t.Cleanup(func() { a.Stop(context.Background()) })
	return mux, a, inv
}

type call struct {
	method, fn, query, body string
	header                  map[string]string
}

func do(h http.Handler, c call) *httptest.ResponseRecorder {
	if c.method == "" {
		c.method = "POST"
	}
	target := "/2015-03-31/functions/" + url.PathEscape(c.fn) + "/invocations"
	if c.query != "" {
		target += "?" + c.query
	}
	r := httptest.NewRequest(c.method, target, strings.NewReader(c.body))
	for k, v := range c.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestInvokeAPIRequests(t *testing.T) {
	h, _, inv := newTestAPI(t, lambdaapi.InvokeAPIConfig{Dev: true, MaxPayload: 64 << 10, MaxEventPayload: 1 << 10})
	tests := []struct {
		name       string
		call       call
		status     int
		errType    string // X-Amzn-ErrorType
		funcErr    string // X-Amz-Function-Error
		bodyHas    string
		invokedAs  string // function:qualifier the invoker saw
		headerWant map[string]string
	}{
		{name: "name", call: call{fn: "echo", body: `{"a":1}`}, status: 200, bodyHas: `{"a":1}`, invokedAs: "echo:",
			headerWant: map[string]string{"X-Amz-Executed-Version": "$LATEST", "Content-Type": "application/json"}},
		{name: "empty body", call: call{fn: "echo"}, status: 200, invokedAs: "echo:"},
		{name: "name:qualifier", call: call{fn: "echo:live", body: `{}`}, status: 200, invokedAs: "echo:live"},
		{name: "qualifier parameter", call: call{fn: "echo", query: "Qualifier=live", body: `{}`}, status: 200, invokedAs: "echo:live"},
		{name: "full ARN", call: call{fn: "arn:aws:lambda:eu-west-1:123456789012:function:echo", body: `{}`}, status: 200, invokedAs: "echo:"},
		{name: "full ARN with qualifier", call: call{fn: "arn:aws-cn:lambda:cn-north-1:123456789012:function:echo:$LATEST", body: `{}`}, status: 200, invokedAs: "echo:$LATEST"},
		{name: "partial ARN", call: call{fn: "123456789012:function:echo", body: `{}`}, status: 200, invokedAs: "echo:"},
		{name: "qualifiers disagree", call: call{fn: "echo:live", query: "Qualifier=1", body: `{}`}, status: 400, errType: "InvalidParameterValueException"},
		{name: "ARN of another service", call: call{fn: "arn:aws:s3:::bucket", body: `{}`}, status: 400, errType: "InvalidParameterValueException"},
		{name: "bad name", call: call{fn: "a b", body: `{}`}, status: 400, errType: "InvalidParameterValueException"},
		{name: "too many colons", call: call{fn: "a:b:c", body: `{}`}, status: 400, errType: "InvalidParameterValueException"},
		{name: "unknown function", call: call{fn: "nope", body: `{}`}, status: 404, errType: "ResourceNotFoundException", bodyHas: `"Message":`},
		{name: "not JSON", call: call{fn: "echo", body: `{`}, status: 400, errType: "InvalidRequestContentException"},
		{name: "GET", call: call{method: "GET", fn: "echo"}, status: 405, errType: "MethodNotAllowedException"},
		{name: "gzip", call: call{fn: "echo", body: `{}`, header: map[string]string{"Content-Encoding": "gzip"}}, status: 415, errType: "UnsupportedMediaTypeException"},
		{name: "too large", call: call{fn: "echo", body: `"` + strings.Repeat("x", 65<<10) + `"`}, status: 413, errType: "RequestTooLargeException"},
		{name: "event too large", call: call{fn: "echo", body: `"` + strings.Repeat("x", 2<<10) + `"`, header: map[string]string{"X-Amz-Invocation-Type": "Event"}}, status: 413, errType: "RequestTooLargeException"},
		{name: "bad invocation type", call: call{fn: "echo", body: `{}`, header: map[string]string{"X-Amz-Invocation-Type": "Later"}}, status: 400, errType: "InvalidParameterValueException"},
		{name: "bad log type", call: call{fn: "echo", body: `{}`, header: map[string]string{"X-Amz-Log-Type": "All"}}, status: 400, errType: "InvalidParameterValueException"},
		{name: "client context not base64", call: call{fn: "echo", body: `{}`, header: map[string]string{"X-Amz-Client-Context": "%%%"}}, status: 400, errType: "InvalidRequestContentException"},
		{name: "client context not an object", call: call{fn: "echo", body: `{}`, header: map[string]string{"X-Amz-Client-Context": base64.StdEncoding.EncodeToString([]byte(`[1]`))}}, status: 400, errType: "InvalidRequestContentException"},
		{name: "function error", call: call{fn: "echo", body: `{"fail":1}`}, status: 200, funcErr: "Unhandled",
			bodyHas: `{"errorType":"MyError","errorMessage":"it failed","stackTrace":["main.go:1"]}`},
		{name: "timeout", call: call{fn: "echo", body: `{"timeout":1}`}, status: 200, funcErr: "Unhandled",
			bodyHas: `"errorType":"Sandbox.Timedout"`},
		{name: "throttled", call: call{fn: "echo", body: `{"throttle":1}`}, status: 429, errType: "TooManyRequestsException",
			bodyHas: `"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded"`, headerWant: map[string]string{"Retry-After": "1"}},
		{name: "dry run", call: call{fn: "echo", header: map[string]string{"X-Amz-Invocation-Type": "DryRun"}}, status: 204},
		{name: "dry run unknown", call: call{fn: "nope", header: map[string]string{"X-Amz-Invocation-Type": "DryRun"}}, status: 404, errType: "ResourceNotFoundException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := inv.count()
			w := do(h, tt.call)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", w.Code, tt.status, w.Body)
			}
			if got := w.Header().Get("X-Amzn-ErrorType"); got != tt.errType {
				t.Errorf("X-Amzn-ErrorType = %q, want %q", got, tt.errType)
			}
			if got := w.Header().Get("X-Amz-Function-Error"); got != tt.funcErr {
				t.Errorf("X-Amz-Function-Error = %q, want %q", got, tt.funcErr)
			}
			if w.Header().Get("X-Amzn-RequestId") == "" {
				t.Error("no X-Amzn-RequestId")
			}
			if !strings.Contains(w.Body.String(), tt.bodyHas) {
				t.Errorf("body = %s, want it to contain %s", w.Body, tt.bodyHas)
			}
			if tt.errType != "" {
				var eb map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb["Type"] == nil || (eb["message"] == nil && eb["Message"] == nil) {
					t.Errorf("error body %s is not {Type, message}: %v", w.Body, err)
				}
			}
			for k, v := range tt.headerWant {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.invokedAs != "" {
				if inv.count() != before+1 {
					t.Fatal("the invoker was not called")
				}
				last := inv.last()
				if got := last.Function + ":" + last.Qualifier; got != tt.invokedAs {
					t.Errorf("invoked %q, want %q", got, tt.invokedAs)
				}
				if last.ID != w.Header().Get("X-Amzn-RequestId") {
					t.Errorf("invocation id %q is not the request id %q", last.ID, w.Header().Get("X-Amzn-RequestId"))
				}
			}
		})
	}
}

func TestInvokeAPIPassesContext(t *testing.T) {
	h, _, inv := newTestAPI(t, lambdaapi.InvokeAPIConfig{Dev: true})
	cc := base64.StdEncoding.EncodeToString([]byte("{\n  \"custom\": {\"a\": \"b\"}\n}"))
	w := do(h, call{fn: "echo", body: `{}`, header: map[string]string{
		"X-Amz-Client-Context": cc,
		"X-Amzn-Trace-Id":      "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
	}})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	last := inv.last()
	if last.ClientContext != `{"custom":{"a":"b"}}` {
		t.Errorf("ClientContext = %q, want the compact JSON", last.ClientContext)
	}
	if last.TraceID != "5759e988bd862e3fe1be46a994272793" {
		t.Errorf("TraceID = %q, want the X-Ray root as a W3C id", last.TraceID)
	}
	if last.Source != "lambda-api" {
		t.Errorf("Source = %q", last.Source)
	}
}

// The tail is framed as Lambda frames an invocation's log, so tools that
// read START/END/REPORT (sam logs, log parsers) work unchanged.
func TestInvokeAPILogTailIsLambdaShaped(t *testing.T) {
	h, _, _ := newTestAPI(t, lambdaapi.InvokeAPIConfig{Dev: true})
	w := do(h, call{fn: "echo", body: `{}`, header: map[string]string{"X-Amz-Log-Type": "Tail"}})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	logs, err := base64.StdEncoding.DecodeString(w.Header().Get("X-Amz-Log-Result"))
	if err != nil {
		t.Fatal(err)
	}
	id := w.Header().Get("X-Amzn-RequestId")
	want := "START RequestId: " + id + " Version: $LATEST\n" +
		"log line\n" +
		"END RequestId: " + id + "\n" +
		"REPORT RequestId: " + id + "\tDuration: 1.50 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 21 MB\tInit Duration: 4.25 ms\t\n"
	if string(logs) != want {
		t.Errorf("tail =\n%q\nwant\n%q", logs, want)
	}
}

func TestInvokeAPILogTailIsBounded(t *testing.T) {
	h, _, _ := newTestAPI(t, lambdaapi.InvokeAPIConfig{Dev: true})
	w := do(h, call{fn: "echo", body: `{"biglogs":1}`, header: map[string]string{"X-Amz-Log-Type": "Tail"}})
	logs, err := base64.StdEncoding.DecodeString(w.Header().Get("X-Amz-Log-Result"))
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) > lambdaapi.LogTailBytes || len(logs) < lambdaapi.LogTailBytes-4 || !utf8.Valid(logs) {
		t.Errorf("tail is %d bytes (valid UTF-8: %v), want at most %d, cut at a character", len(logs), utf8.Valid(logs), lambdaapi.LogTailBytes)
	}
}

func TestInvokeAPIEventRunsInBackground(t *testing.T) {
	h, a, inv := newTestAPI(t, lambdaapi.InvokeAPIConfig{Dev: true, MaxBackground: 1})
	w := do(h, call{fn: "echo", body: `{"block":1}`, header: map[string]string{"X-Amz-Invocation-Type": "Event"}})
	if w.Code != 202 {
		t.Fatalf("Event: %d %s", w.Code, w.Body)
	}
	// The one background slot is taken: the next Event is throttled.
	w = do(h, call{fn: "echo", body: `{}`, header: map[string]string{"X-Amz-Invocation-Type": "Event"}})
	if w.Code != 429 || !strings.Contains(w.Body.String(), "ConcurrentInvocationLimitExceeded") {
		t.Errorf("second Event: %d %s, want 429", w.Code, w.Body)
	}
	for inv.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	if got := inv.last(); got.Source != "lambda-api-event" {
		t.Errorf("Source = %q", got.Source)
	}
	// Stop gives up waiting when its ctx ends, cancels, and still joins.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want the deadline", err)
	}
	w = do(h, call{fn: "echo", body: `{}`, header: map[string]string{"X-Amz-Invocation-Type": "Event"}})
	if w.Code != 503 {
		t.Errorf("Event after Stop: %d, want 503", w.Code)
	}
}

type fakeAsync struct{ got *invoke.Request }

func (f *fakeAsync) Enqueue(_ context.Context, req *invoke.Request) (string, error) {
	f.got = req
	return "queued-" + req.ID, nil
}

func TestInvokeAPIEventWithQueue(t *testing.T) {
	q := &fakeAsync{}
	inv := &fakeInvoker{}
	a := lambdaapi.NewInvokeAPI(lambdaapi.InvokeAPIConfig{Dev: true}, inv, fakeCatalog{}, nil, q)
	mux := http.NewServeMux()
	mux.Handle(lambdaapi.InvokePattern, a)
	w := do(mux, call{fn: "echo:live", body: `{"x":1}`, header: map[string]string{"X-Amz-Invocation-Type": "Event"}})
	if w.Code != 202 || q.got == nil || q.got.Qualifier != "live" || string(q.got.Payload) != `{"x":1}` {
		t.Fatalf("Event with a queue: %d, enqueued %+v", w.Code, q.got)
	}
	if id := w.Header().Get("X-Amzn-RequestId"); id != "queued-"+q.got.ID {
		t.Errorf("X-Amzn-RequestId = %q, want the queue's id", id)
	}
	if inv.count() != 0 {
		t.Error("the invoker ran an Event that was queued")
	}
}

type fakeCreds map[string]string

func (f fakeCreds) Lookup(id string) (string, bool) { s, ok := f[id]; return s, ok }

// FuzzInvokeAPI throws hostile requests at the handler: it must never panic
// and answer only 2xx or 4xx (the fake engine has no 5xx outcomes).
func FuzzInvokeAPI(f *testing.F) {
	f.Add("POST", "echo", "", `{"a":1}`, "", "", "", "", "", true)
	f.Add("POST", "arn:aws:lambda:us-east-1:1:function:echo:$LATEST", "Qualifier=%24LATEST", `{"fail":1}`, "RequestResponse", "Tail", "", "", "", true)
	f.Add("POST", "echo", "", `{"block":0}`, "Event", "", "", "", "", true)
	f.Add("POST", "echo", "", ``, "DryRun", "", "e30=", "", "", false)
	f.Add("PUT", "echo:1:2", "Qualifier=x&Qualifier=y", `[`, "x", "y", "!!", "gzip", "", false)
	f.Add("POST", "echo", "", `{}`, "", "", "", "", "AWS4-HMAC-SHA256 Credential=K/20240101/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("0", 64), false)
	f.Add("POST", "echo", "", `{}`, "", "", "", "", "Bearer admin", false)
	f.Fuzz(func(t *testing.T, method, fn, query, body, invType, logType, clientCtx, contentEnc, authz string, dev bool) {
		u, err := url.Parse("/2015-03-31/functions/" + url.PathEscape(fn) + "/invocations")
		if err != nil {
			return
		}
		u.RawQuery = query
		req := &http.Request{
			Method: method, URL: u, Host: "127.0.0.1:8080", RequestURI: u.RequestURI(), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Body: io.NopCloser(bytes.NewReader([]byte(body))), ContentLength: int64(len(body)),
		}
		for k, v := range map[string]string{
			"X-Amz-Invocation-Type": invType, "X-Amz-Log-Type": logType, "X-Amz-Client-Context": clientCtx,
			"Content-Encoding": contentEnc, "Authorization": authz, "X-Amz-Date": "20240101T000000Z",
		} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		inv := &fakeInvoker{}
		a := lambdaapi.NewInvokeAPI(lambdaapi.InvokeAPIConfig{
			Dev: dev, AdminToken: "admin", MaxPayload: 1 << 20, MaxEventPayload: 1 << 10, MaxBackground: 4,
			Now: func() time.Time { return time.Date(2024, 1, 1, 0, 5, 0, 0, time.UTC) },
		}, inv, fakeCatalog{}, fakeCreds{"K": "secret"}, nil)
		mux := http.NewServeMux()
		mux.Handle(lambdaapi.InvokePattern, a)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		// Background Events of "block" end when Stop cancels them.
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		a.Stop(ctx)
		cancel()
		if w.Code >= 500 || w.Code < 200 || (w.Code >= 300 && w.Code < 400) {
			t.Fatalf("status %d for %s %q: %s", w.Code, method, u, w.Body)
		}
		if w.Code >= 400 && w.Code != 404 && w.Code != 405 && w.Header().Get("X-Amzn-ErrorType") == "" {
			// 404/405 may come from the mux itself for paths that do not match.
			t.Fatalf("error %d without X-Amzn-ErrorType: %s", w.Code, w.Body)
		}
	})
}
