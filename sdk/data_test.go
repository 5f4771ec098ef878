//go:build !wasip1

package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecodeHTTP(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want *HTTPInfo
	}{
		{"none", "", nil},
		{"garbage", "{", nil},
		{"request", `{"method":"POST","path":"/a/b","query":"x=1","headers":{"x-test":["yes"]}}`,
			&HTTPInfo{Method: "POST", Path: "/a/b", Query: "x=1", Header: Header{"X-Test": {"yes"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := decodeHTTP(tc.raw)
			if (got == nil) != (tc.want == nil) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got == nil {
				return
			}
			if got.Method != tc.want.Method || got.Path != tc.want.Path || got.Query != tc.want.Query || got.Header.Get("X-TEST") != "yes" {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if v := http.Header(got.Header).Get("x-test"); v != "yes" {
				t.Errorf("as http.Header: Get = %q, want yes", v)
			}
		})
	}
}

func TestCanonicalHeader(t *testing.T) {
	for _, s := range []string{"x-test", "CONTENT-TYPE", "x-nimbus-meta-owner", "etag", "A"} {
		if got, want := canonicalHeader(s), http.CanonicalHeaderKey(s); got != want {
			t.Errorf("canonicalHeader(%q) = %q, want %q", s, got, want)
		}
	}
}

// TestRoundTripNative checks the process build's transport: the node URL
// and credential from the environment, and error answers as *APIError.
func TestRoundTripNative(t *testing.T) {
	var gotAuth, gotPath, gotBody string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		b, _ := io.ReadAll(r.Body)
		gotBody = string(b)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/tables/users/get":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"error":{"code":"AccessDenied","message":"function f may not use table users: add it to uses.tables in its spec"}}`)
		default:
			io.WriteString(w, `{"revision":7}`)
		}
	}))
	defer srv.Close()
	t.Setenv(envAPI, srv.URL)
	t.Setenv(envToken, "nmbf_test")
	ctx := context.Background()

	rev, err := Table("orders").Put(ctx, map[string]string{"id": "1"}, IfAbsent())
	if err != nil || rev != 7 {
		t.Fatalf("Put = %d, %v; want 7, nil", rev, err)
	}
	if gotAuth != "Bearer nmbf_test" || gotPath != "/api/v1/tables/orders/items" {
		t.Errorf("request: auth %q path %q", gotAuth, gotPath)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal([]byte(gotBody), &body); err != nil || string(body["if_absent"]) != "true" || string(body["item"]) != `{"id":"1"}` {
		t.Errorf("body = %s, want the item and if_absent", gotBody)
	}

	_, err = Table("users").Get(ctx, map[string]string{"id": "1"})
	var ae *APIError
	if !errors.Is(err, ErrAccessDenied) || !errors.As(err, &ae) || ae.Status != http.StatusForbidden || errorType(ae) != "AccessDenied" {
		t.Errorf("Get of a denied table: err = %v, want AccessDenied (403) typed AccessDenied", err)
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("AccessDenied must not match ErrNotFound")
	}

	t.Setenv(envAPI, "")
	if _, err := Table("orders").Get(ctx, map[string]string{"id": "1"}); err == nil {
		t.Errorf("Get without NIMBUS_API: no error")
	}
}

// TestTextEnvelope checks the nimbus.api_v2 envelope as the wasm build
// uses it (internal/apitext has the framing's own tests): the request
// bytes, and answers that keep none of the buffer they were read from,
// with headers parsed on demand and looked up by any case.
func TestTextEnvelope(t *testing.T) {
	req := &apiRequest{Method: "PUT", Path: "/api/v1/buckets/b/objects/k", Query: "x=1",
		Header: map[string]string{"Content-Type": "text/plain"}, Body: []byte("a\n\nb")}
	got, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "PUT /api/v1/buckets/b/objects/k?x=1\nContent-Type: text/plain\n\na\n\nb"; string(got) != want {
		t.Fatalf("request %q, want %q", got, want)
	}

	wire := []byte("404\nContent-Type: application/json\nX-Empty: \n\n{\"a\":\n\n1}")
	resp, err := parseTextResponse(wire)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 404 || resp.header("content-type") != "application/json" || resp.headers()["X-Empty"] != "" || len(resp.headers()) != 2 || string(resp.Body) != "{\"a\":\n\n1}" {
		t.Fatalf("answer %+v", resp)
	}
	wire[len(wire)-1] = 'x'
	if resp.Body[len(resp.Body)-1] != '}' {
		t.Fatal("the body aliases the buffer it was parsed from")
	}
	if _, err := parseTextResponse([]byte("200\nA: b\n")); err == nil || !strings.Contains(err.Error(), "nimbus.api_v2") {
		t.Errorf("a cut-short answer: %v, want an error naming nimbus.api_v2", err)
	}
}

// TestDecodeItem checks the member-picking decoder of put and get answers
// against encoding/json, escaped names (which it hands to encoding/json)
// included.
func TestDecodeItem(t *testing.T) {
	for _, body := range []string{
		`{"item":{"id":"a","n":[1,2,{"x":"}"}]},"revision":42,"updated":"2026-11-27T21:00:00.123456789Z"}`,
		`{"revision":7}`,
		`{ "item" : {"id":"\"quoted\""} , "revision" : 3 }`,
		`{"\u0069tem":{"id":"a"},"revision":5}`,
		`{"item":{"id":"a"},"revision":1,"extra":[true,null]}`,
	} {
		var got, want Item
		if err := decodeItem([]byte(body), &got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if err := json.Unmarshal([]byte(body), &want); err != nil {
			t.Fatal(err)
		}
		if string(compact(t, got.Data)) != string(compact(t, want.Data)) || got.Revision != want.Revision || !got.Updated.Equal(want.Updated) {
			t.Errorf("%s: got %+v, want %+v", body, got, want)
		}
	}
	for _, bad := range []string{`{"revision":-1}`, `{"item":`, `[1]`, `{"updated":5}`, `{"revision":1,"item"}`, `{"revision" 1}`} {
		var it Item
		if err := decodeItem([]byte(bad), &it); err == nil {
			t.Errorf("%s: decoded %+v, want an error", bad, it)
		}
	}
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	if len(b) == 0 {
		return nil
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestAPIConn checks the process build's HTTP/1.1 client against net/http's
// server: answers with a length, chunked, to HEAD, with Connection: close,
// cut short; a canceled call; the Unix socket; and that connections are
// kept between calls.
func TestAPIConn(t *testing.T) {
	var dials atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("part one, "))
			w.(http.Flusher).Flush() // no length known: chunked
			w.Write([]byte("part two"))
		case "/head":
			w.Header().Set("Content-Length", "12345")
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/short":
			w.Header().Set("Content-Length", "100")
			io.WriteString(w, "not a hundred bytes")
		case "/slow":
			<-r.Context().Done()
		default:
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Got", r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Authorization")+" "+r.Header.Get("X-Test")+" "+string(b))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	sock := "@nimbus-sdk-test-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer uln.Close()
	go srv.Config.Serve(uln)
	srv.Start()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()
	call := func(network, method, path string, body string) (*apiResponse, error) {
		return roundTripConn(ctx, endpoint{network, map[string]string{"tcp": addr, "unix": sock}[network]}, "tok",
			&apiRequest{Method: method, Path: path, Query: "q=1", Header: map[string]string{"X-Test": "yes"}, Body: []byte(body)})
	}

	for _, network := range []string{"tcp", "unix"} {
		for i := range 3 {
			resp, err := call(network, "PUT", "/echo", "body"+strconv.Itoa(i))
			if want := "PUT /echo?q=1 Bearer tok yes body" + strconv.Itoa(i); err != nil || resp.Status != 200 || resp.Header["X-Got"] != want {
				t.Fatalf("%s call %d: %+v, %v; want X-Got %q", network, i, resp, err, want)
			}
		}
	}
	if n := dials.Load(); n != 2 {
		t.Errorf("%d connections for 6 calls, want one per network", n)
	}
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			if resp, err := call(network, "GET", "/chunked", ""); err != nil || string(resp.Body) != "part one, part two" {
				t.Errorf("chunked: %+v, %v", resp, err)
			}
			if resp, err := call(network, "HEAD", "/head", ""); err != nil || resp.Header["Content-Length"] != "12345" || len(resp.Body) != 0 {
				t.Errorf("HEAD: %+v, %v; want the length in the header and no body", resp, err)
			}
			if resp, err := call(network, "GET", "/close", ""); err != nil || string(resp.Body) != "bye" {
				t.Errorf("close: %+v, %v", resp, err)
			}
			if _, err := call(network, "GET", "/short", ""); !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("an answer cut short: err = %v, want ErrUnexpectedEOF", err)
			}
			if resp, err := call(network, "GET", "/echo", ""); err != nil || resp.Status != 200 {
				t.Errorf("after failures: %+v, %v", resp, err)
			}
			big := strings.Repeat("x", 1<<20) // written apart from the head
			if resp, err := call(network, "PUT", "/echo", big); err != nil || !strings.HasSuffix(resp.Header["X-Got"], " "+big) {
				t.Errorf("a 1 MiB body: %v", err)
			}
			at := endpoint{network, map[string]string{"tcp": addr, "unix": sock}[network]}
			cctx, cancel := context.WithCancel(ctx)
			time.AfterFunc(50*time.Millisecond, cancel)
			if _, err := roundTripConn(cctx, at, "tok", &apiRequest{Method: "GET", Path: "/slow"}); !errors.Is(err, context.Canceled) {
				t.Errorf("canceled call: err = %v, want context.Canceled", err)
			}
			dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			if _, err := roundTripConn(dctx, at, "tok", &apiRequest{Method: "GET", Path: "/slow"}); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("call past its deadline: err = %v, want a deadline error", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the call past its deadline took %s", d)
			}
			if _, err := call(network, "GET", "/echo", ""); err != nil {
				t.Errorf("after a canceled call: %v", err)
			}
		})
	}
	bad := &apiRequest{Method: "GET", Path: "/echo", Header: map[string]string{"X-Bad": "a\r\nInjected: 1"}}
	if _, err := roundTripConn(ctx, endpoint{"tcp", addr}, "tok", bad); err == nil {
		t.Errorf("a header value with a line break was sent")
	}
}
