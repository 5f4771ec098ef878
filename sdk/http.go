package sdk

import (
	"context"
	"encoding/json"
)

// HTTPInfo describes the HTTP request that caused an invocation of
// /function/{name}/...: the body is the event, this is the rest. (The name
// HTTPRequest is the function that returns it.)
type HTTPInfo struct {
	Method string
	// Path is the part after the function's name: "/a/b" for
	// /function/hello/a/b, "" or "/" for /function/hello.
	Path string
	// Query is the raw query string, without '?'.
	Query string
	// Header has canonical names ("X-Test"); http.Header(info.Header)
	// converts it for code that wants net/http's methods.
	Header Header
}

// Header is the request's header, as net/http's http.Header (the same
// type underneath). The SDK does not use net/http itself: it would make
// every wasm module about 2 MB larger.
type Header map[string][]string

// Get returns the first value of name (case-insensitive), or "".
func (h Header) Get(name string) string {
	if v := h[canonicalHeader(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of name (case-insensitive).
func (h Header) Values(name string) []string { return h[canonicalHeader(name)] }

// httpWire is the wire form both runtimes send (runtime.HTTPInfo).
type httpWire struct {
	Method string              `json:"method"`
	Path   string              `json:"path"`
	Query  string              `json:"query,omitempty"`
	Header map[string][]string `json:"headers,omitempty"`
}

// HTTPRequest returns the HTTP request behind the invocation ctx belongs
// to, or nil when the invocation did not come over HTTP (an async call, a
// trigger, a workflow) or ctx is not an invocation's. The caller may keep
// it but must not modify it: every call returns the same value.
func HTTPRequest(ctx context.Context) *HTTPInfo {
	inv, ok := ctx.Value(ctxKey{}).(*invocation)
	if !ok {
		return nil
	}
	inv.httpOnce.Do(func() { inv.http = decodeHTTP(loadHTTP(inv)) })
	return inv.http
}

func decodeHTTP(raw string) *HTTPInfo {
	if raw == "" {
		return nil
	}
	var hi httpWire
	if err := json.Unmarshal([]byte(raw), &hi); err != nil || hi.Method == "" {
		return nil
	}
	h := make(Header, len(hi.Header))
	for k, v := range hi.Header {
		h[canonicalHeader(k)] = v
	}
	return &HTTPInfo{Method: hi.Method, Path: hi.Path, Query: hi.Query, Header: h}
}
