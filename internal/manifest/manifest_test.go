package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/internal/function"
)

func TestParse(t *testing.T) {
	good := `
functions:
  hello:
    runtime: wasm
    code: ./hello.wasm
    memory: 64
    timeout: 2s
    max: 50
    env: {GREETING: hi}
  worker:
    code: ./build/worker
`
	m, err := Parse([]byte(good), "/app")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := m.Names(), []string{"hello", "worker"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("names = %v, want %v", got, want)
	}
	s := m.Functions["hello"].Spec("hello", "sha256:"+strings.Repeat("a", 64))
	if s.MemoryMB != 64 || s.Max != 50 || s.Timeout.String() != "2s" || s.Env["GREETING"] != "hi" {
		t.Errorf("hello spec = %+v", s)
	}
	if got := m.CodePath("hello"); got != "/app/hello.wasm" {
		t.Errorf("CodePath = %q", got)
	}
	if r := m.Functions["worker"].Spec("worker", "").Runtime; r != function.RuntimeProcess {
		t.Errorf("worker runtime = %q, want process (code is not .wasm)", r)
	}

	bad := []struct{ name, yaml, want string }{
		{"empty", "", "empty"},
		{"no functions", "functions: {}", "functions: declare at least one"},
		{"unknown key", "functions:\n  f:\n    code: a.wasm\n    memroy: 64\n", "line 4: unknown key memroy"},
		{"unknown top key", "function:\n  f: {code: a.wasm}\n", "unknown key function"},
		{"bad name", "functions:\n  'bad name':\n    code: a.wasm\n", "functions.bad name.name"},
		{"no code", "functions:\n  f:\n    memory: 64\n", "functions.f.code: is required"},
		{"memory range", "functions:\n  f: {code: a.wasm, memory: 999999}\n", "functions.f.memory"},
		{"bad timeout", "functions:\n  f: {code: a.wasm, timeout: soon}\n", "bad duration"},
		{"min over max", "functions:\n  f: {code: a.wasm, min: 5, max: 2}\n", "functions.f.min"},
		{"bad runtime", "functions:\n  f: {code: a.wasm, runtime: java}\n", "functions.f.runtime"},
		{"not yaml", "functions: [", "not valid YAML"},
		{"nil function", "functions:\n  f:\n", "functions.f: is empty"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, function.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("functions:\n  f: {code: a.wasm, memory: 64, timeout: 2s}\n"))
	f.Add([]byte("functions:\n  f:\n    code: x\n    env: {A: b}\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, "/d")
		if err != nil {
			if !errors.Is(err, function.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// Whatever parses must give valid specs.
		for _, n := range m.Names() {
			s := m.Functions[n].Spec(n, "sha256:"+strings.Repeat("0", 64))
			if err := s.Validate(); err != nil {
				t.Fatalf("parsed manifest yields invalid spec %s: %v", n, err)
			}
		}
	})
}

func TestParseAPI(t *testing.T) {
	doc := `
functions:
  users: {code: ./users}
  my-authorizer: {code: ./authz}
auth:
  main-jwt: {type: jwt, issuer: https://id.example.com, audience: [api], jwks: ./jwks.json, clock_skew: 30s}
  hs: {type: jwt, audience: [api], secret_env: JWT_SECRET}
  remote: {type: jwt, issuer: https://id.example.com, jwks: https://id.example.com/.well-known/jwks.json}
  keys: {type: api_key}
  authz: {type: function, function: my-authorizer, identity: ["$request.header.Authorization"], ttl: 5m}
cors: {origins: ["https://app.example.com"], methods: [GET, POST], headers: [Authorization], credentials: true, max_age: 10m}
usage_plans:
  basic: {rate: 10, burst: 20, quota_per_day: 1000}
routes:
  - route: GET /users/{id}
    function: users:live
    format: apigw-v2
    auth: main-jwt
    scopes: [read]
    host: api.example.com
    rate: {rps: 100, burst: 200}
    timeout: 10s
  - route: ANY /files/{proxy+}
    function: users
    format: raw
    auth: keys
    cors: {origins: ["*"]}
  - {route: $default, function: users, auth: authz}
`
	m, err := Parse([]byte(doc), "/app")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !m.HasAPI() {
		t.Fatal("HasAPI = false")
	}
	var read []string
	cfg, err := m.APIConfig(func(p string) ([]byte, error) {
		read = append(read, p)
		return []byte(`{"keys":[]}`), nil
	}, func(k string) string { return map[string]string{"JWT_SECRET": "s3cret"}[k] })
	if err != nil {
		t.Fatalf("APIConfig: %v", err)
	}
	if len(read) != 1 || read[0] != "/app/jwks.json" {
		t.Errorf("read files %v, want /app/jwks.json", read)
	}
	j := cfg.Auth["main-jwt"]
	if j.Type != "jwt" || j.Issuer != "https://id.example.com" || j.Audience[0] != "api" || string(j.JWKS) != `{"keys":[]}` || j.ClockSkew != "30s" {
		t.Errorf("main-jwt = %+v", j)
	}
	if cfg.Auth["hs"].HS256Secret != "s3cret" || cfg.Auth["remote"].JWKSURL == "" || len(cfg.Auth["remote"].JWKS) != 0 {
		t.Errorf("hs = %+v, remote = %+v", cfg.Auth["hs"], cfg.Auth["remote"])
	}
	if a := cfg.Auth["authz"]; a.Function != "my-authorizer" || a.TTL != "5m0s" || a.Identity[0] != "$request.header.Authorization" {
		t.Errorf("authz = %+v", a)
	}
	if c := cfg.CORS; c == nil || c.Origins[0] != "https://app.example.com" || !c.Credentials || c.MaxAge != "10m0s" {
		t.Errorf("cors = %+v", c)
	}
	if p := cfg.UsagePlans["basic"]; p.Rate != 10 || p.Burst != 20 || p.QuotaPerDay != 1000 {
		t.Errorf("plan = %+v", p)
	}
	if len(cfg.Routes) != 3 {
		t.Fatalf("routes = %+v", cfg.Routes)
	}
	r := cfg.Routes[0]
	if r.Route != "GET /users/{id}" || r.Function != "users:live" || r.Auth != "main-jwt" || r.Host != "api.example.com" ||
		r.Rate.RPS != 100 || r.Rate.Burst != 200 || r.Timeout != "10s" || r.Scopes[0] != "read" {
		t.Errorf("route 0 = %+v", r)
	}
	if r := cfg.Routes[1]; r.Format != "raw" || r.CORS == nil || r.CORS.Origins[0] != "*" {
		t.Errorf("route 1 = %+v", r)
	}
	if _, err := m.APIConfig(func(string) ([]byte, error) { return []byte("{}"), nil }, func(string) string { return "" }); err == nil ||
		!strings.Contains(err.Error(), "JWT_SECRET is not set") {
		t.Errorf("missing secret env: %v", err)
	}

	// Without API keys the node's API config is left alone; `routes: []`
	// clears it.
	if m, _ := Parse([]byte("functions: {f: {code: a.wasm}}\n"), ""); m.HasAPI() {
		t.Error("a manifest without routes declares the API")
	}
	m, err = Parse([]byte("routes: []\n"), "")
	if err != nil || !m.HasAPI() {
		t.Errorf("routes: [] = %v, HasAPI %v", err, m != nil && m.HasAPI())
	}

	bad := []struct{ name, yaml, want string }{
		{"conflict", "routes:\n  - {route: 'GET /u/{id}', function: f}\n  - {route: 'GET /u/{name}', function: f}\n", "GET /u/{name}"},
		{"bad template", "routes:\n  - {route: GET u, function: f}\n", "routes[0].route"},
		{"no function", "routes:\n  - {route: GET /u}\n", "routes[0].function: is required"},
		{"unknown auth", "routes:\n  - {route: GET /u, function: f, auth: jwt}\n", `routes[0].auth: no authorizer "jwt"`},
		{"unknown route key", "routes:\n  - route: GET /u\n    function: f\n    methd: GET\n", "line 4: unknown key methd"},
		{"bad format", "routes:\n  - {route: GET /u, function: f, format: v1}\n", "routes[0].format"},
		{"jwt without keys", "auth:\n  j: {type: jwt, issuer: x}\nroutes: []\n", "auth.j: a jwt authorizer needs"},
		{"jwt without iss or aud", "auth:\n  j: {type: jwt, jwks: ./k.json}\nroutes: []\n", "auth.j: set issuer or audience"},
		{"bad auth type", "auth:\n  j: {type: oauth}\n", "auth.j.type"},
		{"unknown auth key", "auth:\n  j: {type: jwt, isuer: x}\n", "unknown key isuer"},
		{"negative plan", "usage_plans:\n  p: {rate: -1}\n", "usage_plans.p"},
		{"zero rps", "routes:\n  - {route: GET /u, function: f, rate: {burst: 5}}\n", "routes[0].rate.rps"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, function.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}
