package apigw

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

var binaryBody = []byte{0x89, 'P', 'N', 'G', 0x00, 0xff, 0xfe, '\n', 0x80}

func newHTTPRequest(t *testing.T) *http.Request {
	t.Helper()
	r := httptest.NewRequest("POST", "https://api.example.com:8443/users/a%2Fb/files?x=1&x=2&y=caf%C3%A9&empty=", bytes.NewReader(binaryBody))
	r.RemoteAddr = "203.0.113.9:51234"
	r.Header.Set("Content-Type", "image/png")
	r.Header.Set("User-Agent", "curl/8.0")
	r.Header.Add("X-Multi", "one")
	r.Header.Add("X-Multi", "two")
	r.Header.Add("Cookie", "a=1; b=2")
	r.Header.Add("Cookie", "c=3")
	r.Header.Set("X-Forwarded-For", "10.9.9.9") // spoofed: peer is not trusted
	r.Header.Set("X-Forwarded-Port", "1")
	r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8443}))
	return r
}

func TestNewRequestRoundTripThroughAWSTypes(t *testing.T) {
	r := newHTTPRequest(t)
	now := time.Date(2020, 3, 12, 19, 3, 58, 123e6, time.FixedZone("CET", 3600))
	claims := ClaimStrings(map[string]any{"sub": "u1", "exp": float64(1700000000), "groups": []any{"admin", "dev"}, "email_verified": true})
	ev := NewRequest(r, binaryBody, "POST /users/{id}/files", map[string]string{"id": "a/b"},
		WithRequestID("req-1"), WithAPIID("api1"), WithAccountID("000000000000"), WithTime(now),
		WithAuthorizer(&Authorizer{JWT: &JWTAuthorizer{Claims: claims, Scopes: []string{"read"}}}),
	)
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("unmarshal into aws-lambda-go type: %v", err)
	}
	want := events.APIGatewayV2HTTPRequest{
		Version:        "2.0",
		RouteKey:       "POST /users/{id}/files",
		RawPath:        "/users/a%2Fb/files",
		RawQueryString: "x=1&x=2&y=caf%C3%A9&empty=",
		Cookies:        []string{"a=1", "b=2", "c=3"},
		Headers: map[string]string{
			"content-type":      "image/png",
			"user-agent":        "curl/8.0",
			"x-multi":           "one,two",
			"host":              "api.example.com:8443",
			"x-forwarded-for":   "203.0.113.9",
			"x-forwarded-proto": "https",
			"x-forwarded-port":  "8443",
		},
		QueryStringParameters: map[string]string{"x": "1,2", "y": "café", "empty": ""},
		PathParameters:        map[string]string{"id": "a/b"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			RouteKey:     "POST /users/{id}/files",
			AccountID:    "000000000000",
			Stage:        "$default",
			RequestID:    "req-1",
			APIID:        "api1",
			DomainName:   "api.example.com",
			DomainPrefix: "api",
			Time:         "12/Mar/2020:18:03:58 +0000",
			TimeEpoch:    now.UnixMilli(),
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: "POST", Path: "/users/a/b/files", Protocol: "HTTP/1.1", SourceIP: "203.0.113.9", UserAgent: "curl/8.0",
			},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{
				JWT: &events.APIGatewayV2HTTPRequestContextAuthorizerJWTDescription{
					Claims: map[string]string{"sub": "u1", "exp": "1700000000", "groups": "[admin dev]", "email_verified": "true"},
					Scopes: []string{"read"},
				},
			},
		},
		Body:            base64.StdEncoding.EncodeToString(binaryBody),
		IsBase64Encoded: true,
	}
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.MarshalIndent(got, "", " ")
		wj, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("event mismatch\n got: %s\nwant: %s", gj, wj)
	}
	// Fields AWS omits when empty must be absent, not null.
	for _, k := range []string{`"stageVariables"`} {
		if bytes.Contains(raw, []byte(k)) {
			t.Errorf("event JSON contains %s: %s", k, raw)
		}
	}
}

func TestHandlerRoundTrip(t *testing.T) {
	// A handler written against aws-lambda-go: echoes the decoded body back
	// as binary, sets cookies and multi-value headers.
	handler := func(req events.APIGatewayV2HTTPRequest) events.APIGatewayV2HTTPResponse {
		body := []byte(req.Body)
		if req.IsBase64Encoded {
			body, _ = base64.StdEncoding.DecodeString(req.Body)
		}
		return events.APIGatewayV2HTTPResponse{
			StatusCode:        201,
			Headers:           map[string]string{"Content-Type": "application/octet-stream", "X-Id": req.PathParameters["id"], "X-Both": "single"},
			MultiValueHeaders: map[string][]string{"X-Many": {"1", "2"}, "x-both": {"multi"}},
			Cookies:           []string{"session=abc; HttpOnly", "theme=dark"},
			Body:              base64.StdEncoding.EncodeToString(body),
			IsBase64Encoded:   true,
		}
	}
	r := newHTTPRequest(t)
	ev := NewRequest(r, binaryBody, "POST /users/{id}/files", map[string]string{"id": "a/b"})
	raw, _ := json.Marshal(ev)
	var in events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatal(err)
	}
	out, _ := json.Marshal(handler(in))

	rec := httptest.NewRecorder()
	rec.Header().Set("X-Request-Id", "kept")
	if err := WriteResponse(rec, out); err != nil {
		t.Fatalf("WriteResponse: %v", err)
	}
	if rec.Code != 201 {
		t.Errorf("status = %d, want 201", rec.Code)
	}
	if !bytes.Equal(rec.Body.Bytes(), binaryBody) {
		t.Errorf("body = %x, want %x", rec.Body.Bytes(), binaryBody)
	}
	h := rec.Header()
	checks := map[string][]string{
		"Content-Type":   {"application/octet-stream"},
		"X-Id":           {"a/b"},
		"X-Many":         {"1", "2"},
		"X-Both":         {"multi"},
		"Set-Cookie":     {"session=abc; HttpOnly", "theme=dark"},
		"Content-Length": {"9"},
		"X-Request-Id":   {"kept"},
	}
	for k, want := range checks {
		if got := h.Values(k); !slices.Equal(got, want) {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
}

func TestNewRequestBodyEncoding(t *testing.T) {
	tests := []struct {
		name, ctype string
		body        []byte
		wantB64     bool
	}{
		{"json", "application/json; charset=utf-8", []byte(`{"a":1}`), false},
		{"text", "text/plain", []byte("héllo"), false},
		{"form", "application/x-www-form-urlencoded", []byte("a=1"), false},
		{"problem json", "application/problem+json", []byte(`{}`), false},
		{"atom xml", "application/atom+xml", []byte(`<a/>`), false},
		{"xml", "application/xml", []byte(`<a/>`), false},
		{"js", "application/javascript", []byte(`x()`), false},
		{"upper case", "TEXT/HTML", []byte(`<p>`), false},
		{"octet", "application/octet-stream", []byte("abc"), true},
		{"missing type", "", []byte("abc"), true},
		{"invalid utf8 text", "text/plain", []byte{0xff, 0xfe}, true},
		{"image", "image/png", binaryBody, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", bytes.NewReader(tc.body))
			if tc.ctype != "" {
				r.Header.Set("Content-Type", tc.ctype)
			}
			ev := NewRequest(r, tc.body, "$default", nil)
			if ev.IsBase64Encoded != tc.wantB64 {
				t.Fatalf("isBase64Encoded = %v, want %v", ev.IsBase64Encoded, tc.wantB64)
			}
			got := []byte(ev.Body)
			if tc.wantB64 {
				got, _ = base64.StdEncoding.DecodeString(ev.Body)
			}
			if !bytes.Equal(got, tc.body) {
				t.Fatalf("body = %q, want %q", got, tc.body)
			}
		})
	}
	t.Run("empty body", func(t *testing.T) {
		ev := NewRequest(httptest.NewRequest("GET", "/", nil), nil, "$default", nil)
		raw, _ := json.Marshal(ev)
		if ev.IsBase64Encoded || bytes.Contains(raw, []byte(`"body"`)) {
			t.Fatalf("empty body event: %s", raw)
		}
	})
}

func TestSourceIP(t *testing.T) {
	trustedNet := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name, remote, xff string
		trusted           []netip.Prefix
		want, wantXFF     string
	}{
		{name: "peer", remote: "198.51.100.1:1", want: "198.51.100.1", wantXFF: "198.51.100.1"},
		{name: "untrusted xff ignored", remote: "198.51.100.1:1", xff: "1.2.3.4", trusted: trustedNet, want: "198.51.100.1", wantXFF: "198.51.100.1"},
		{name: "trusted proxy", remote: "10.0.0.5:1", xff: "1.2.3.4", trusted: trustedNet, want: "1.2.3.4", wantXFF: "1.2.3.4, 10.0.0.5"},
		{name: "chain of proxies", remote: "10.0.0.5:1", xff: "6.6.6.6, 1.2.3.4, 10.1.1.1", trusted: trustedNet, want: "1.2.3.4", wantXFF: "6.6.6.6, 1.2.3.4, 10.1.1.1, 10.0.0.5"},
		{name: "garbage stops walk", remote: "10.0.0.5:1", xff: "1.2.3.4, junk", trusted: trustedNet, want: "10.0.0.5", wantXFF: "1.2.3.4, junk, 10.0.0.5"},
		{name: "ipv6 peer", remote: "[2001:db8::1]:443", want: "2001:db8::1", wantXFF: "2001:db8::1"},
		{name: "mapped ipv4", remote: "[::ffff:192.0.2.1]:1", want: "192.0.2.1", wantXFF: "192.0.2.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			ev := NewRequest(r, nil, "$default", nil, WithTrustedProxies(tc.trusted))
			if got := ev.RequestContext.HTTP.SourceIP; got != tc.want {
				t.Errorf("sourceIp = %q, want %q", got, tc.want)
			}
			if got := ev.Headers["x-forwarded-for"]; got != tc.wantXFF {
				t.Errorf("x-forwarded-for = %q, want %q", got, tc.wantXFF)
			}
		})
	}
	t.Run("proto", func(t *testing.T) {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Forwarded-Proto", "https")
		r.TLS = nil
		if got := NewRequest(r, nil, "$default", nil).Headers["x-forwarded-proto"]; got != "http" {
			t.Errorf("untrusted x-forwarded-proto kept: %q", got)
		}
		r.RemoteAddr = "10.0.0.1:1"
		if got := NewRequest(r, nil, "$default", nil, WithTrustedProxies(trustedNet)).Headers["x-forwarded-proto"]; got != "https" {
			t.Errorf("trusted x-forwarded-proto = %q, want https", got)
		}
		r.TLS = &tls.ConnectionState{}
		r.Header.Del("X-Forwarded-Proto")
		if got := NewRequest(r, nil, "$default", nil).Headers["x-forwarded-proto"]; got != "https" {
			t.Errorf("TLS x-forwarded-proto = %q, want https", got)
		}
	})
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantStatus int
		wantBody   string
		wantHeader map[string][]string
	}{
		{name: "object without statusCode is the body", in: `{"message":"hi"}`, wantStatus: 200, wantBody: `{"message":"hi"}`, wantHeader: map[string][]string{"Content-Type": {"application/json"}}},
		{name: "string is unquoted", in: `"Hello from Lambda!"`, wantStatus: 200, wantBody: "Hello from Lambda!", wantHeader: map[string][]string{"Content-Type": {"application/json"}}},
		{name: "number", in: ` 42 `, wantStatus: 200, wantBody: "42"},
		{name: "array", in: `[1,2]`, wantStatus: 200, wantBody: "[1,2]"},
		{name: "null", in: `null`, wantStatus: 200, wantBody: "null"},
		{name: "empty", in: ``, wantStatus: 200, wantBody: ""},
		{name: "statusCode wrong case is body", in: `{"StatusCode":404}`, wantStatus: 200, wantBody: `{"StatusCode":404}`},
		{name: "minimal object", in: `{"statusCode":404}`, wantStatus: 404, wantBody: ""},
		{name: "string status", in: `{"statusCode":"302","headers":{"Location":"/x"}}`, wantStatus: 302, wantHeader: map[string][]string{"Location": {"/x"}}},
		{name: "text body keeps type", in: `{"statusCode":200,"headers":{"content-type":"text/html"},"body":"<p>"}`, wantStatus: 200, wantBody: "<p>", wantHeader: map[string][]string{"Content-Type": {"text/html"}}},
		{name: "default content type", in: `{"statusCode":200,"body":"x"}`, wantStatus: 200, wantBody: "x", wantHeader: map[string][]string{"Content-Type": {"application/json"}}},
		{name: "scalar header values", in: `{"statusCode":200,"headers":{"X-N":5,"X-B":true,"X-Null":null}}`, wantStatus: 200, wantHeader: map[string][]string{"X-N": {"5"}, "X-B": {"true"}, "X-Null": nil}},
		{name: "hop headers dropped", in: `{"statusCode":200,"headers":{"Content-Length":"999","Transfer-Encoding":"chunked","Connection":"close"},"body":"ab"}`, wantStatus: 200, wantBody: "ab", wantHeader: map[string][]string{"Content-Length": nil, "Transfer-Encoding": nil, "Connection": nil}},
		{name: "null fields", in: `{"statusCode":204,"headers":null,"body":null,"cookies":null,"isBase64Encoded":null}`, wantStatus: 204},
		{name: "base64", in: `{"statusCode":200,"body":"aGk=","isBase64Encoded":true}`, wantStatus: 200, wantBody: "hi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := ParseResponse([]byte(tc.in))
			if err != nil {
				t.Fatalf("ParseResponse(%s): %v", tc.in, err)
			}
			if res.StatusCode != tc.wantStatus || string(res.Body) != tc.wantBody {
				t.Fatalf("got %d %q, want %d %q", res.StatusCode, res.Body, tc.wantStatus, tc.wantBody)
			}
			for k, want := range tc.wantHeader {
				if got := res.Header.Values(k); !slices.Equal(got, want) {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestParseResponseMalformed(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"not json", `hello`, "not valid JSON"},
		{"truncated", `{"statusCode":200`, "not valid JSON"},
		{"status null", `{"statusCode":null}`, "null"},
		{"status float", `{"statusCode":200.5}`, "not an integer"},
		{"status range", `{"statusCode":99}`, "outside"},
		{"status 1xx", `{"statusCode":101}`, "outside"},
		{"status bool", `{"statusCode":true}`, "not an integer"},
		{"body object", `{"statusCode":200,"body":{"a":1}}`, "body must be a string"},
		{"bad base64", `{"statusCode":200,"body":"!!","isBase64Encoded":true}`, "base64"},
		{"b64 string", `{"statusCode":200,"isBase64Encoded":"yes"}`, "true or false"},
		{"header injection", `{"statusCode":200,"headers":{"X":"a\r\nSet-Cookie: evil"}}`, "line break"},
		{"bad header name", `{"statusCode":200,"headers":{"Bad Name":"x"}}`, "valid HTTP token"},
		{"header object value", `{"statusCode":200,"headers":{"X":{"a":1}}}`, "string, number or boolean"},
		{"headers array", `{"statusCode":200,"headers":[1]}`, "headers must map"},
		{"multi not array", `{"statusCode":200,"multiValueHeaders":{"X":"a"}}`, "arrays of strings"},
		{"cookies not array", `{"statusCode":200,"cookies":"a=b"}`, "array of strings"},
		{"cookie injection", `{"statusCode":200,"cookies":["a=b\nX: y"]}`, "line break"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := WriteResponse(rec, []byte(tc.in))
			if !errors.Is(err, ErrMalformedResponse) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteResponse(%s) = %v, want ErrMalformedResponse containing %q", tc.in, err, tc.want)
			}
			if rec.Code != 200 || rec.Body.Len() != 0 || len(rec.Header()) != 0 || rec.Flushed {
				t.Fatalf("WriteResponse wrote something on error")
			}
		})
	}
}

func TestWriteResponseNoBodyStatuses(t *testing.T) {
	for _, status := range []int{204, 304} {
		rec := httptest.NewRecorder()
		raw, _ := json.Marshal(map[string]any{"statusCode": status, "body": "ignored"})
		if err := WriteResponse(rec, raw); err != nil {
			t.Fatalf("status %d: %v", status, err)
		}
		if rec.Code != status || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") != "" {
			t.Fatalf("status %d: got %d body %q headers %v", status, rec.Code, rec.Body.Bytes(), rec.Header())
		}
	}
}

func TestWriteResponseOverRealServer(t *testing.T) {
	// Binary body and repeated Set-Cookie survive a real HTTP round trip.
	res := events.APIGatewayV2HTTPResponse{
		StatusCode: 200, Cookies: []string{"a=1", "b=2"},
		Body: base64.StdEncoding.EncodeToString(binaryBody), IsBase64Encoded: true,
		Headers: map[string]string{"content-type": "application/octet-stream"},
	}
	raw, _ := json.Marshal(res)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := WriteResponse(w, raw); err != nil {
			t.Error(err)
		}
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if !bytes.Equal(buf.Bytes(), binaryBody) {
		t.Errorf("body = %x, want %x", buf.Bytes(), binaryBody)
	}
	if got := resp.Header.Values("Set-Cookie"); !slices.Equal(got, []string{"a=1", "b=2"}) {
		t.Errorf("Set-Cookie = %q", got)
	}
}

func TestClaimStrings(t *testing.T) {
	got := ClaimStrings(map[string]any{
		"s": "x", "n": float64(1.5), "big": float64(1e21), "b": false, "nil": nil,
		"arr": []any{"a", float64(2)}, "obj": map[string]any{"k": "v"},
	})
	want := map[string]string{"s": "x", "n": "1.5", "big": "1000000000000000000000", "b": "false", "nil": "", "arr": "[a 2]", "obj": `{"k":"v"}`}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ClaimStrings = %v, want %v", got, want)
	}
}

func FuzzWriteResponse(f *testing.F) {
	for _, s := range []string{
		`{"statusCode":200,"headers":{"a":"b"},"multiValueHeaders":{"c":["d"]},"cookies":["x=y"],"body":"aGk=","isBase64Encoded":true}`,
		`"str"`, `{"a":1}`, `[]`, `null`, ``, `{"statusCode":"404"}`, `{"statusCode":1e3}`, `{"statusCode":204,"body":"x"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rec := httptest.NewRecorder()
		err := WriteResponse(rec, in)
		if err != nil {
			if !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("error %v does not wrap ErrMalformedResponse", err)
			}
			return
		}
		if rec.Code < 200 || rec.Code > 599 {
			t.Fatalf("status %d", rec.Code)
		}
		for k, vs := range rec.Header() {
			if !validHeaderName(k) {
				t.Fatalf("invalid header name %q written", k)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("header %q value %q has a line break", k, v)
				}
			}
		}
	})
}

func BenchmarkNewRequest(b *testing.B) {
	r := httptest.NewRequest("GET", "https://api.example.com/users/42?x=1", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Authorization", "Bearer x")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		ev := NewRequest(r, nil, "GET /users/{id}", map[string]string{"id": "42"}, WithRequestID("r"))
		if _, err := json.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}
