package lambdaapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rtClient plays the runtime side of the API.
type rtClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newServer(t *testing.T, cfg RuntimeServerConfig) (*RuntimeServer, *rtClient) {
	t.Helper()
	s, err := NewRuntimeServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, &rtClient{t: t, base: "http://" + s.Addr() + "/" + RuntimeAPIVersion + "/runtime/", hc: &http.Client{}}
}

func (c *rtClient) do(method, path string, body []byte, hdr map[string]string) (*http.Response, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

type invokeResult struct {
	resp *Response
	err  error
}

func invokeAsync(s *RuntimeServer, ctx context.Context, inv *Invocation) <-chan invokeResult {
	ch := make(chan invokeResult, 1)
	go func() {
		r, err := s.Invoke(ctx, inv)
		ch <- invokeResult{r, err}
	}()
	return ch
}

func wantStatus(t *testing.T, resp *http.Response, body []byte, status int, errType string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, status)
	}
	if errType == "" {
		return
	}
	var e struct{ ErrorMessage, ErrorType string }
	if err := json.Unmarshal(body, &e); err != nil || e.ErrorType != errType || e.ErrorMessage == "" {
		t.Fatalf("body = %s, want errorType %q and a message", body, errType)
	}
}

func TestNextHeadersAndResponse(t *testing.T) {
	s, c := newServer(t, RuntimeServerConfig{FunctionARN: "arn:aws:lambda:us-east-1:000000000000:function:f"})
	deadline := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	ch := invokeAsync(s, context.Background(), &Invocation{
		ID: "req-1", Payload: []byte(`{"a":1}`), Deadline: deadline,
		TraceID: "Root=1-abc", ClientContext: `{"client":{}}`, Identity: `{"cognitoIdentityId":"x"}`,
	})
	resp, body := c.do("GET", "invocation/next", nil, nil)
	select {
	case <-s.Ready():
	default:
		t.Fatal("Ready not closed after the first /next")
	}
	if string(body) != `{"a":1}` {
		t.Errorf("payload = %s", body)
	}
	for h, want := range map[string]string{
		HeaderRequestID:       "req-1",
		HeaderDeadlineMS:      strings.TrimSpace(jsonNum(deadline.UnixMilli())),
		HeaderFunctionARN:     "arn:aws:lambda:us-east-1:000000000000:function:f",
		HeaderTraceID:         "Root=1-abc",
		HeaderClientContext:   `{"client":{}}`,
		HeaderCognitoIdentity: `{"cognitoIdentityId":"x"}`,
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("%s = %q, want %q", h, got, want)
		}
	}
	resp, body = c.do("POST", "invocation/req-1/response", []byte(`"ok"`), nil)
	wantStatus(t, resp, body, http.StatusAccepted, "")
	r := <-ch
	if r.err != nil || string(r.resp.Payload) != `"ok"` || r.resp.Err != nil {
		t.Fatalf("Invoke = %+v, %v", r.resp, r.err)
	}
}

func jsonNum(v int64) string { b, _ := json.Marshal(v); return string(b) }

func TestErrorResponses(t *testing.T) {
	goFrames := `{"errorMessage":"boom","errorType":"errorString","stackTrace":[{"path":"main.go","line":12,"label":"handle"}]}`
	tests := []struct {
		name, body, header string
		want               string // Type: Message
		trace              int
	}{
		{"aws-lambda-go", goFrames, "", "errorString: boom", 1},
		{"python", `{"errorMessage":"bad","errorType":"ValueError","stackTrace":["  File x", "  line 2"]}`, "", "ValueError: bad", 2},
		{"header only", ``, "Runtime.Custom", "Runtime.Custom: ", 0},
		{"not json", `plain failure`, "", "Unhandled: plain failure", 0},
		{"body wins over header", `{"errorMessage":"m","errorType":"T"}`, "H", "T: m", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c := newServer(t, RuntimeServerConfig{})
			ch := invokeAsync(s, context.Background(), &Invocation{ID: "r", Deadline: time.Now().Add(time.Minute)})
			c.do("GET", "invocation/next", nil, nil)
			hdr := map[string]string{}
			if tt.header != "" {
				hdr[HeaderFunctionErrorType] = tt.header
			}
			resp, body := c.do("POST", "invocation/r/error", []byte(tt.body), hdr)
			wantStatus(t, resp, body, http.StatusAccepted, "")
			r := <-ch
			if r.err != nil || r.resp.Err == nil {
				t.Fatalf("Invoke = %+v, %v; want a function error", r.resp, r.err)
			}
			if got := r.resp.Err.Error(); got != tt.want {
				t.Errorf("error = %q, want %q", got, tt.want)
			}
			if len(r.resp.Err.Trace) != tt.trace {
				t.Errorf("trace = %q, want %d lines", r.resp.Err.Trace, tt.trace)
			}
		})
	}
}

func TestResponseErrorTrailer(t *testing.T) {
	s, c := newServer(t, RuntimeServerConfig{})
	ch := invokeAsync(s, context.Background(), &Invocation{ID: "r", Deadline: time.Now().Add(time.Minute)})
	c.do("GET", "invocation/next", nil, nil)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", c.base+"invocation/r/response", pr)
	req.Trailer = http.Header{HeaderFunctionErrorType: nil, HeaderFunctionErrorBody: nil}
	go func() {
		_, _ = pw.Write([]byte("partial"))
		req.Trailer.Set(HeaderFunctionErrorType, "errorString")
		req.Trailer.Set(HeaderFunctionErrorBody, base64.StdEncoding.EncodeToString([]byte(`{"errorMessage":"read failed","errorType":"errorString"}`)))
		pw.Close()
	}()
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := <-ch
	if r.err != nil || r.resp.Err == nil || r.resp.Err.Message != "read failed" {
		t.Fatalf("Invoke = %+v, %v; want the trailer's error", r.resp, r.err)
	}
}

func TestHostileRuntime(t *testing.T) {
	s, c := newServer(t, RuntimeServerConfig{MaxResponseBytes: 1 << 10})
	_, other := newServer(t, RuntimeServerConfig{})

	ch := invokeAsync(s, context.Background(), &Invocation{ID: "mine", Deadline: time.Now().Add(time.Minute)})
	c.do("GET", "invocation/next", nil, nil)

	t.Run("unknown id", func(t *testing.T) {
		resp, body := c.do("POST", "invocation/nope/response", []byte(`1`), nil)
		wantStatus(t, resp, body, http.StatusBadRequest, "InvalidRequestID")
	})
	t.Run("another instance's id", func(t *testing.T) {
		resp, body := other.do("POST", "invocation/mine/response", []byte(`1`), nil)
		wantStatus(t, resp, body, http.StatusBadRequest, "InvalidRequestID")
		resp, body = other.do("POST", "invocation/mine/error", []byte(`{}`), nil)
		wantStatus(t, resp, body, http.StatusBadRequest, "InvalidRequestID")
	})
	t.Run("bad id", func(t *testing.T) {
		resp, body := c.do("POST", "invocation/a%20b/response", nil, nil)
		wantStatus(t, resp, body, http.StatusBadRequest, "InvalidRequestID")
		resp, body = c.do("POST", "invocation/..%2F/response", nil, nil)
		if resp.StatusCode/100 != 4 {
			t.Fatalf("status = %d (%s), want 4xx", resp.StatusCode, body)
		}
	})
	t.Run("wrong method and path", func(t *testing.T) {
		resp, body := c.do("GET", "invocation/mine/response", nil, nil)
		wantStatus(t, resp, body, http.StatusMethodNotAllowed, "MethodNotAllowed")
		resp, body = c.do("POST", "invocation/next", nil, nil)
		wantStatus(t, resp, body, http.StatusMethodNotAllowed, "MethodNotAllowed")
		resp, body = c.do("GET", "nowhere", nil, nil)
		wantStatus(t, resp, body, http.StatusNotFound, "NotFound")
	})
	t.Run("huge body", func(t *testing.T) {
		resp, body := c.do("POST", "invocation/mine/response", bytes.Repeat([]byte("x"), 4<<10), nil)
		wantStatus(t, resp, body, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge")
		r := <-ch
		if r.err != nil || r.resp.Err == nil || r.resp.Err.Type != ErrorTypeResponseTooLarge {
			t.Fatalf("Invoke = %+v, %v; want %s", r.resp, r.err, ErrorTypeResponseTooLarge)
		}
	})
	t.Run("duplicate", func(t *testing.T) {
		resp, body := c.do("POST", "invocation/mine/response", []byte(`1`), nil)
		wantStatus(t, resp, body, http.StatusForbidden, "InvalidStateTransition")
		resp, body = c.do("POST", "invocation/mine/error", []byte(`{}`), nil)
		wantStatus(t, resp, body, http.StatusForbidden, "InvalidStateTransition")
	})
	t.Run("init error after init", func(t *testing.T) {
		resp, body := c.do("POST", "init/error", []byte(`{}`), nil)
		wantStatus(t, resp, body, http.StatusForbidden, "InvalidStateTransition")
	})
}

func TestInitError(t *testing.T) {
	s, c := newServer(t, RuntimeServerConfig{})
	resp, body := c.do("POST", "init/error", []byte(`{"errorMessage":"no config","errorType":"Runtime.ConfigError"}`), nil)
	wantStatus(t, resp, body, http.StatusAccepted, "")
	select {
	case <-s.InitFailed():
	default:
		t.Fatal("InitFailed not closed")
	}
	if got := s.InitError().Error(); got != "Runtime.ConfigError: no config" {
		t.Errorf("InitError = %q", got)
	}
	resp, body = c.do("POST", "init/error", []byte(`{}`), nil)
	wantStatus(t, resp, body, http.StatusForbidden, "InvalidStateTransition")
}

func TestInvokeEnds(t *testing.T) {
	t.Run("ctx before delivery", func(t *testing.T) {
		s, _ := newServer(t, RuntimeServerConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := s.Invoke(ctx, &Invocation{ID: "r"})
		if !errors.Is(err, ErrNotDelivered) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want ErrNotDelivered and DeadlineExceeded", err)
		}
	})
	t.Run("ctx after delivery, late answer refused", func(t *testing.T) {
		s, c := newServer(t, RuntimeServerConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		ch := invokeAsync(s, ctx, &Invocation{ID: "r"})
		resp, _ := c.do("GET", "invocation/next", nil, nil)
		if ms := resp.Header.Get(HeaderDeadlineMS); ms == "" {
			t.Error("no deadline header from ctx's deadline")
		}
		r := <-ch
		if r.err == nil || errors.Is(r.err, ErrNotDelivered) || !errors.Is(r.err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want delivered DeadlineExceeded", r.err)
		}
		resp, body := c.do("POST", "invocation/r/response", []byte(`1`), nil)
		wantStatus(t, resp, body, http.StatusForbidden, "InvalidStateTransition")
	})
	t.Run("close", func(t *testing.T) {
		s, c := newServer(t, RuntimeServerConfig{})
		ch := invokeAsync(s, context.Background(), &Invocation{ID: "r"})
		c.do("GET", "invocation/next", nil, nil)
		_ = s.Close()
		r := <-ch
		if !errors.Is(r.err, ErrClosed) || errors.Is(r.err, ErrNotDelivered) {
			t.Fatalf("err = %v, want delivered ErrClosed", r.err)
		}
		if _, err := s.Invoke(context.Background(), &Invocation{ID: "r2"}); !errors.Is(err, ErrClosed) {
			t.Fatalf("Invoke after Close = %v, want ErrClosed", err)
		}
	})
	t.Run("bad id", func(t *testing.T) {
		s, _ := newServer(t, RuntimeServerConfig{})
		if _, err := s.Invoke(context.Background(), &Invocation{ID: "a/b"}); err == nil {
			t.Fatal("Invoke accepted an id with a slash")
		}
	})
}

func TestConcurrentPollers(t *testing.T) {
	const n = 4
	s, c := newServer(t, RuntimeServerConfig{Concurrency: n})
	// n pollers wait at once; n invocations are in flight together.
	got := make(chan string, n)
	for range n {
		go func() {
			resp, _ := c.do("GET", "invocation/next", nil, nil)
			got <- resp.Header.Get(HeaderRequestID)
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.AwaitPollers(ctx, n); err != nil {
		t.Fatal(err)
	}
	var chans []<-chan invokeResult
	for i := range n {
		chans = append(chans, invokeAsync(s, ctx, &Invocation{ID: string(rune('a' + i))}))
	}
	for range n {
		id := <-got
		resp, body := c.do("POST", "invocation/"+id+"/response", []byte(`"`+id+`"`), nil)
		wantStatus(t, resp, body, http.StatusAccepted, "")
	}
	for i, ch := range chans {
		r := <-ch
		if r.err != nil || string(r.resp.Payload) != `"`+string(rune('a'+i))+`"` {
			t.Errorf("invocation %d = %+v, %v", i, r.resp, r.err)
		}
	}
}

// FuzzRuntimeAPI sends arbitrary requests to a live server that has one
// invocation in flight: the server must not panic and must answer every
// request it refuses with a 4xx.
func FuzzRuntimeAPI(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"GET", "/2018-06-01/runtime/invocation/next", ""},
		{"POST", "/2018-06-01/runtime/invocation/fuzz-1/response", `{"a":1}`},
		{"POST", "/2018-06-01/runtime/invocation/fuzz-1/error", `{"errorMessage":"x","errorType":"y","stackTrace":[{"line":1}]}`},
		{"POST", "/2018-06-01/runtime/invocation/nope/error", `[`},
		{"POST", "/2018-06-01/runtime/init/error", `{"stackTrace":"x"}`},
		{"PUT", "/2018-06-01/runtime/invocation//response", ""},
		{"DELETE", "//2018-06-01/../runtime", ""},
		{"POST", "/2018-06-01/runtime/invocation/a/b/response", "\xff"},
	} {
		f.Add(seed.method, seed.path, []byte(seed.body))
	}
	s := fuzzServer(f)
	hc := &http.Client{Timeout: 2 * time.Second}

	f.Fuzz(func(t *testing.T, method, path string, body []byte) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequest(method, "http://"+s.Addr(), bytes.NewReader(body))
		if err != nil {
			return // not a request a client can send
		}
		req.URL.Opaque = ""
		req.URL.Path = path
		isNext := strings.Contains(path, "next")
		if isNext {
			// /next is a long poll: when it gets an invocation or times
			// out, either is fine.
			rctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			req = req.WithContext(rctx)
		}
		resp, err := hc.Do(req)
		if err != nil {
			if isNext || strings.Contains(err.Error(), "invalid") || strings.Contains(err.Error(), "malformed") {
				return
			}
			t.Fatalf("%s %q: %v", method, path, err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode >= 500 || resp.StatusCode < 200 || resp.StatusCode/100 == 3 {
			t.Fatalf("%s %q: status %d, want 2xx or 4xx", method, path, resp.StatusCode)
		}
	})
}

// fuzzServer is a live server for a fuzz target that always has the
// invocation "fuzz-1" in flight, so the response and error paths are live.
func fuzzServer(f *testing.F) *RuntimeServer {
	s, err := NewRuntimeServer(RuntimeServerConfig{MaxResponseBytes: 64 << 10})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			_, _ = s.Invoke(ctx, &Invocation{ID: "fuzz-1", Payload: []byte(`{}`)})
		}
	}()
	f.Cleanup(func() {
		cancel()
		<-done
		s.Close()
	})
	return s
}
