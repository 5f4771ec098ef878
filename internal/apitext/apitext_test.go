package apitext

import (
	"bytes"
	"reflect"
	"testing"
)

// TestRoundTrip writes requests and answers and reads them back: bodies
// may hold anything, blank lines included.
func TestRoundTrip(t *testing.T) {
	req := &Request{Method: "PUT", Path: "/api/v1/buckets/b/objects/k", Query: "x=1",
		Header: map[string]string{"Content-Type": "text/plain", "X-Empty": ""}, Body: []byte("a\n\nb")}
	wire, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(wire, []byte("PUT /api/v1/buckets/b/objects/k?x=1\n")) || !bytes.HasSuffix(wire, []byte("\n\na\n\nb")) {
		t.Fatalf("request %q", wire)
	}
	got, err := ParseRequest(wire)
	if err != nil || !reflect.DeepEqual(got, req) {
		t.Fatalf("parsed %+v (%v), want %+v", got, err, req)
	}

	ans := AppendResponse([]byte("kept"), 404, map[string]string{"Content-Type": "application/json", "Bad": "a\nb"}, []byte("{\"a\":\n\n1}"))
	status, head, body, err := ParseResponse(ans[len("kept"):])
	if err != nil || status != 404 || string(body) != "{\"a\":\n\n1}" {
		t.Fatalf("answer %q: %d %q %v", ans, status, body, err)
	}
	if h := Headers(head); !reflect.DeepEqual(h, map[string]string{"Content-Type": "application/json"}) {
		t.Fatalf("headers %q, want Content-Type only (a value with a line break is left out)", h)
	}
}

// TestRefused checks what the framing cannot carry or does not parse.
func TestRefused(t *testing.T) {
	for _, h := range []map[string]string{{"X-Meta": "a\nb"}, {"X-Meta": "a\rb"}, {"X\nY": "v"}, {"X:Y": "v"}} {
		if _, err := (&Request{Method: "GET", Path: "/", Header: h}).Append(nil); err == nil {
			t.Errorf("header %q: framed, want an error", h)
		}
	}
	for _, bad := range []string{"", "GET /", " /x\n\n", "GET /x\nno colon\n\n", "GET /x\n: v\n\n", "GET /x\nA: b\n"} {
		if _, err := ParseRequest([]byte(bad)); err == nil {
			t.Errorf("request %q: parsed, want an error", bad)
		}
	}
	for _, bad := range []string{"", "200", "abc\n\n", "200\nno-colon\n\n", "200\nA: b\n"} {
		if _, _, _, err := ParseResponse([]byte(bad)); err == nil {
			t.Errorf("answer %q: parsed, want an error", bad)
		}
	}
}

// FuzzParseRequest checks that a request that parses is written back to
// the same request.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte("POST /api/v1/tables/t/get\nContent-Type: application/json\n\n{\"key\":{}}"))
	f.Add([]byte("GET /x?y=1\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		wire, err := r.Append(nil)
		if err != nil {
			return // a name with a colon ("a:b: v") or a value with a CR parses, but cannot be written
		}
		again, err := ParseRequest(wire)
		if err != nil || !reflect.DeepEqual(again, r) {
			t.Fatalf("%q parsed to %+v, written %q, read back %+v (%v)", b, r, wire, again, err)
		}
	})
}
