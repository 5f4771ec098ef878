//go:build !wasip1

package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
