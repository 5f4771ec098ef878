package apigateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

func TestRoutesAPIGatewayV2(t *testing.T) {
	n := startNode(t, node.Config{})
	res := putAPI(t, n, &api.APIConfig{Routes: []api.Route{
		{Route: "GET /users/{id}", Function: "fn"},
		{Route: "GET /users/me", Function: "fn"},
		{Route: "ANY /files/{proxy+}", Function: "fn"},
		{Route: "POST /bin", Function: "fn"},
		{Route: "POST /raw/{x}", Function: "fn", Format: api.FormatRaw},
	}})
	if res.Change != "created" || res.Config.Revision == 0 {
		t.Fatalf("put = %+v", res)
	}
	base := n.URL()

	t.Run("params query cookies headers", func(t *testing.T) {
		r := do(t, nil, "GET", base+"/users/42?status=201&a=1&a=2", nil,
			"Cookie", "c1=v1; c2=v2", "X-Custom", "yes", "Connection", "keep-alive, X-Hop", "X-Hop", "secret",
			"X-Request-Id", "req-123")
		if r.status != 201 {
			t.Fatalf("status = %d, body %s", r.status, r.body)
		}
		var s seen
		r.json(t, &s)
		if s.RouteKey != "GET /users/{id}" || s.Params["id"] != "42" || s.Method != "GET" || s.RawPath != "/users/42" {
			t.Errorf("event = %+v", s)
		}
		if s.Query["a"] != "1,2" || s.Query["status"] != "201" {
			t.Errorf("query = %v", s.Query)
		}
		if !slices.Equal(s.Cookies, []string{"c1=v1", "c2=v2"}) {
			t.Errorf("cookies = %v", s.Cookies)
		}
		if s.Headers["x-custom"] != "yes" {
			t.Errorf("headers = %v", s.Headers)
		}
		for _, h := range []string{"x-hop", "connection"} {
			if _, ok := s.Headers[h]; ok {
				t.Errorf("hop-by-hop header %s reached the function", h)
			}
		}
		if s.SourceIP != "127.0.0.1" || s.Headers["x-forwarded-for"] != "127.0.0.1" {
			t.Errorf("source ip %q, x-forwarded-for %q", s.SourceIP, s.Headers["x-forwarded-for"])
		}
		if got := r.header.Values("Set-Cookie"); !slices.Equal(got, []string{"session=abc; Path=/; HttpOnly", "theme=dark"}) {
			t.Errorf("Set-Cookie = %q", got)
		}
		if r.header.Get("X-Fixture") != "apigwfn" {
			t.Errorf("response headers = %v", r.header)
		}
		if got := r.header.Get("X-Request-Id"); got != "req-123" {
			t.Errorf("X-Request-Id = %q, want the client's", got)
		}
		if inv := r.header.Get(api.HeaderInvocationID); inv == "" || inv != s.RequestID {
			t.Errorf("invocation id %q, event requestId %q: want equal", inv, s.RequestID)
		}
	})

	t.Run("static beats param", func(t *testing.T) {
		var s seen
		do(t, nil, "GET", base+"/users/me", nil).json(t, &s)
		if s.RouteKey != "GET /users/me" {
			t.Errorf("routeKey = %q", s.RouteKey)
		}
	})

	t.Run("greedy", func(t *testing.T) {
		var s seen
		do(t, nil, "DELETE", base+"/files/a/b%20c/d.txt", nil).json(t, &s)
		if s.RouteKey != "ANY /files/{proxy+}" || s.Params["proxy"] != "a/b c/d.txt" || s.Method != "DELETE" {
			t.Errorf("event = %+v", s)
		}
	})

	t.Run("binary round trip", func(t *testing.T) {
		body := make([]byte, 64<<10)
		rand.Read(body)
		body[0], body[1] = 0, 0xff
		r := do(t, nil, "POST", base+"/bin", body, "Content-Type", "application/octet-stream")
		if r.status != 200 || !bytes.Equal(r.body, body) {
			t.Fatalf("status %d, %d bytes back, equal %v", r.status, len(r.body), bytes.Equal(r.body, body))
		}
		if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
			t.Errorf("content type = %q", ct)
		}
	})

	t.Run("text body is not base64", func(t *testing.T) {
		var s seen
		do(t, nil, "PUT", base+"/files/x", []byte(`{"a":1}`), "Content-Type", "application/json").json(t, &s)
		if s.Body != `{"a":1}` || s.Base64 {
			t.Errorf("body %q base64 %v", s.Body, s.Base64)
		}
	})

	t.Run("raw", func(t *testing.T) {
		// The fixture decodes the raw body as an (empty) event and answers
		// with its description: what matters is that the body went in as
		// is, not wrapped in an event.
		// The result is not mapped either: the response object comes back
		// as the body.
		r := do(t, nil, "POST", base+"/raw/1", []byte(`{"rawPath":"/from-body"}`))
		if r.status != 200 || !strings.Contains(string(r.body), `\"rawPath\":\"/from-body\"`) || !strings.Contains(string(r.body), `"statusCode":200`) {
			t.Errorf("raw: %d %s", r.status, r.body)
		}
	})

	t.Run("not found and method not allowed", func(t *testing.T) {
		r := do(t, nil, "GET", base+"/nope", nil)
		if code, _ := errorCode(t, r); r.status != 404 || code != api.CodeNotFound {
			t.Errorf("unknown path: %d %s", r.status, r.body)
		}
		r = do(t, nil, "DELETE", base+"/users/1", nil)
		if code, _ := errorCode(t, r); r.status != 405 || code != api.CodeMethod || r.header.Get("Allow") != "GET" {
			t.Errorf("wrong method: %d %s Allow=%q", r.status, r.body, r.header.Get("Allow"))
		}
		if r.header.Get("X-Request-Id") == "" {
			t.Error("no X-Request-Id on an error")
		}
	})

	t.Run("reserved paths stay Nimbus's", func(t *testing.T) {
		putAPI(t, n, &api.APIConfig{Routes: []api.Route{{Route: "$default", Function: "fn"}}})
		r := do(t, nil, "GET", base+"/function/", nil)
		if r.status != 404 || bytes.Contains(r.body, []byte("routeKey")) {
			t.Errorf("/function/ went to a user route: %d %s", r.status, r.body)
		}
		if r := do(t, nil, "GET", base+"/healthz", nil); r.status != 200 || !bytes.Contains(r.body, []byte("ok")) {
			t.Errorf("/healthz: %d %s", r.status, r.body)
		}
		var s seen
		do(t, nil, "GET", base+"/anything/else", nil).json(t, &s)
		if s.RouteKey != "$default" {
			t.Errorf("$default: %+v", s)
		}
	})
}

func TestPutAPIValidates(t *testing.T) {
	n := startNode(t, node.Config{})
	c := nodetest.Client(n)
	ctx := context.Background()
	putAPI(t, n, &api.APIConfig{Routes: []api.Route{{Route: "GET /a", Function: "fn"}}})

	bad := []struct {
		name  string
		cfg   api.APIConfig
		field string
		want  string
	}{
		{"conflict", api.APIConfig{Routes: []api.Route{{Route: "GET /users/{id}", Function: "fn"}, {Route: "GET /users/{name}", Function: "fn"}}},
			"routes", "GET /users/{name}"},
		{"bad template", api.APIConfig{Routes: []api.Route{{Route: "GET users", Function: "fn"}}}, "routes[0].route", ""},
		{"unknown function", api.APIConfig{Routes: []api.Route{{Route: "GET /a", Function: "nope"}}}, "routes[0].function", "nope"},
		{"unknown auth", api.APIConfig{Routes: []api.Route{{Route: "GET /a", Function: "fn", Auth: "jwt1"}}}, "routes[0].auth", "jwt1"},
		{"bad format", api.APIConfig{Routes: []api.Route{{Route: "GET /a", Function: "fn", Format: "v1"}}}, "routes[0].format", ""},
		{"jwt without key", api.APIConfig{Auth: map[string]api.AuthConfig{"j": {Type: "jwt", Issuer: "x"}}}, "auth.j", ""},
		{"bad cors", api.APIConfig{CORS: &api.CORSConfig{Origins: []string{"*"}, Credentials: true}}, "cors", ""},
		{"bad rate", api.APIConfig{Routes: []api.Route{{Route: "GET /a", Function: "fn", Rate: &api.RateLimit{RPS: -1}}}}, "routes[0].rate", ""},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PutAPI(ctx, &tc.cfg)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || ae.Code != api.CodeInvalid {
				t.Fatalf("PUT = %v, want 400 InvalidRequest", err)
			}
			if ae.Field != tc.field || !strings.Contains(ae.Message, tc.want) {
				t.Errorf("field %q message %q, want field %q containing %q", ae.Field, ae.Message, tc.field, tc.want)
			}
		})
	}
	// Nothing changed.
	rl, err := c.Routes(ctx)
	if err != nil || len(rl.Routes) != 1 || rl.Routes[0].Route != "GET /a" {
		t.Fatalf("routes after failed PUTs = %+v, %v", rl, err)
	}
	// The same document again is unchanged.
	if res := putAPI(t, n, &api.APIConfig{Routes: []api.Route{{Route: "GET /a", Function: "fn"}}}); res.Change != "unchanged" {
		t.Errorf("change = %q, want unchanged", res.Change)
	}
}
