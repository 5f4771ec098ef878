//go:build !wasip1

package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
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
