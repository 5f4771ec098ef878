package cors

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // "" means valid
	}{
		{"star", Config{AllowOrigins: []string{"*"}}, ""},
		{"exact and wildcard", Config{AllowOrigins: []string{"https://app.example.com", "https://*.example.com:8443", "null"}, AllowCredentials: true}, ""},
		{"star with credentials", Config{AllowOrigins: []string{"*"}, AllowCredentials: true}, "cannot be used with origin"},
		{"empty", Config{}, "empty"},
		{"path", Config{AllowOrigins: []string{"https://app.example.com/"}}, "no path"},
		{"no scheme", Config{AllowOrigins: []string{"app.example.com"}}, "scheme://host"},
		{"inner wildcard", Config{AllowOrigins: []string{"https://a.*.com"}}, "first label"},
		{"bare wildcard", Config{AllowOrigins: []string{"https://*"}}, "first label"},
		{"bad method", Config{AllowOrigins: []string{"*"}, AllowMethods: []string{"GET POST"}}, "not an HTTP token"},
		{"bad header", Config{AllowOrigins: []string{"*"}, AllowHeaders: []string{"x:y"}}, "not an HTTP token"},
		{"max age", Config{AllowOrigins: []string{"*"}, MaxAge: 48 * time.Hour}, "max age"},
		{"negative max age", Config{AllowOrigins: []string{"*"}, MaxAge: -time.Second}, "max age"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func mustPolicy(t *testing.T, cfg Config) *Policy {
	t.Helper()
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPreflight(t *testing.T) {
	strict := mustPolicy(t, Config{
		AllowOrigins: []string{"https://app.example.com", "https://*.example.org"},
		AllowMethods: []string{"put", "DELETE"}, AllowHeaders: []string{"Content-Type", "X-Token"},
		AllowCredentials: true, MaxAge: 10 * time.Minute,
	})
	open := mustPolicy(t, Config{AllowOrigins: []string{"*"}, AllowMethods: []string{"*"}, AllowHeaders: []string{"*"}})
	tests := []struct {
		name        string
		p           *Policy
		origin      string
		method      string
		headers     string
		wantStatus  int
		wantHeaders map[string]string // "" value means absent
	}{
		{name: "allowed", p: strict, origin: "https://app.example.com", method: "PUT", headers: "content-type, x-token", wantStatus: 204,
			wantHeaders: map[string]string{
				"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Credentials": "true",
				"Access-Control-Allow-Methods": "PUT, DELETE", "Access-Control-Allow-Headers": "content-type, x-token",
				"Access-Control-Max-Age": "600",
			}},
		{name: "wildcard subdomain", p: strict, origin: "https://a.b.example.org", method: "DELETE", wantStatus: 204,
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": "https://a.b.example.org"}},
		{name: "safelisted method not listed", p: strict, origin: "https://app.example.com", method: "POST", headers: "X-Token", wantStatus: 204},
		{name: "origin case-insensitive host", p: strict, origin: "https://APP.example.com", method: "PUT", wantStatus: 204},
		{name: "wildcard needs a label", p: strict, origin: "https://example.org", method: "PUT", wantStatus: 403,
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "wrong scheme", p: strict, origin: "http://app.example.com", method: "PUT", wantStatus: 403},
		{name: "wrong port", p: strict, origin: "https://app.example.com:8443", method: "PUT", wantStatus: 403},
		{name: "suffix trick", p: strict, origin: "https://evilexample.org", method: "PUT", wantStatus: 403},
		{name: "method not allowed", p: strict, origin: "https://app.example.com", method: "PATCH", wantStatus: 403,
			wantHeaders: map[string]string{"Access-Control-Allow-Methods": ""}},
		{name: "header not allowed", p: strict, origin: "https://app.example.com", method: "PUT", headers: "X-Other", wantStatus: 403},
		{name: "null origin refused", p: strict, origin: "null", method: "PUT", wantStatus: 403},
		{name: "open echoes method and headers", p: open, origin: "https://x.test", method: "PATCH", headers: "X-A,X-B", wantStatus: 204,
			wantHeaders: map[string]string{
				"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "PATCH", "Access-Control-Allow-Headers": "x-a, x-b",
				"Access-Control-Allow-Credentials": "", "Access-Control-Max-Age": "",
			}},
		{name: "malformed origin", p: open, origin: "not an origin", method: "GET", wantStatus: 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("OPTIONS", "/x", nil)
			r.Header.Set("Origin", tc.origin)
			r.Header.Set("Access-Control-Request-Method", tc.method)
			if tc.headers != "" {
				r.Header.Set("Access-Control-Request-Headers", tc.headers)
			}
			rec := httptest.NewRecorder()
			if !tc.p.Handle(rec, r) {
				t.Fatal("preflight not handled")
			}
			if rec.Code != tc.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tc.wantStatus)
			}
			for k, want := range tc.wantHeaders {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if tc.wantStatus == 403 && rec.Header().Get("Access-Control-Allow-Origin") != "" {
				t.Error("refused preflight carries Allow-Origin")
			}
			if vary := rec.Header().Values("Vary"); !slices.Contains(vary, "Origin") {
				t.Errorf("Vary = %q, want Origin in it", vary)
			}
		})
	}
}

func TestActualRequest(t *testing.T) {
	strict := mustPolicy(t, Config{AllowOrigins: []string{"https://app.example.com"}, ExposeHeaders: []string{"X-Total"}, AllowCredentials: true})
	open := mustPolicy(t, Config{AllowOrigins: []string{"*"}})
	tests := []struct {
		name, method, origin string
		p                    *Policy
		want                 map[string]string
		wantVary             bool
	}{
		{name: "allowed", p: strict, method: "GET", origin: "https://app.example.com", wantVary: true,
			want: map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Access-Control-Allow-Credentials": "true", "Access-Control-Expose-Headers": "X-Total"}},
		{name: "not allowed", p: strict, method: "GET", origin: "https://evil.com", wantVary: true,
			want: map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": ""}},
		{name: "no origin", p: strict, method: "GET", wantVary: true, want: map[string]string{"Access-Control-Allow-Origin": ""}},
		{name: "open", p: open, method: "POST", origin: "https://any.test", want: map[string]string{"Access-Control-Allow-Origin": "*"}},
		{name: "options without request method is not preflight", p: open, method: "OPTIONS", origin: "https://any.test", want: map[string]string{"Access-Control-Allow-Origin": "*"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/x", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			rec := httptest.NewRecorder()
			if tc.p.Handle(rec, r) {
				t.Fatal("actual request handled as preflight")
			}
			for k, want := range tc.want {
				if got := rec.Header().Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if got := slices.Contains(rec.Header().Values("Vary"), "Origin"); got != tc.wantVary {
				t.Errorf("Vary: Origin present = %v, want %v", got, tc.wantVary)
			}
		})
	}
}

func TestMiddlewareOverridesHandlerCORS(t *testing.T) {
	p := mustPolicy(t, Config{AllowOrigins: []string{"https://app.example.com"}})
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Credentials", "true")
		w.Header()["Vary"] = []string{"Accept"}
		w.WriteHeader(201)
		_, _ = w.Write([]byte("ok"))
	})
	h := p.Middleware(inner)

	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Origin", "https://app.example.com")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 201 || rec.Body.String() != "ok" {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "https://app.example.com" {
		t.Errorf("Allow-Origin = %q", got)
	}
	if got := rec.Header().Get("Access-Control-Allow-Credentials"); got != "" {
		t.Errorf("handler's Allow-Credentials leaked: %q", got)
	}
	if got := rec.Header().Values("Vary"); !slices.Equal(got, []string{"Accept", "Origin"}) {
		t.Errorf("Vary = %q", got)
	}

	r = httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Origin", "https://evil.com")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("disallowed origin got Allow-Origin %q from the handler", got)
	}

	r = httptest.NewRequest("OPTIONS", "/", nil)
	r.Header.Set("Origin", "https://app.example.com")
	r.Header.Set("Access-Control-Request-Method", "GET")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != 204 || rec.Body.Len() != 0 {
		t.Fatalf("preflight reached the handler: %d %q", rec.Code, rec.Body.String())
	}
}

func BenchmarkHandle(b *testing.B) {
	p, _ := New(Config{AllowOrigins: []string{"https://a.example.com", "https://*.example.org"}, AllowCredentials: true})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Origin", "https://x.example.org")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		p.Handle(w, r)
	}
}

func FuzzHandle(f *testing.F) {
	f.Add("https://a.example.org", "PUT", "x-a, X-B", true)
	f.Add("null", "GET", "", false)
	f.Add("http://[::1]:80", "", ",,", true)
	f.Add("https://*.example.org", "DELETE", "content-type", true)
	p, _ := New(Config{AllowOrigins: []string{"https://*.example.org", "http://[::1]:80"}, AllowMethods: []string{"PUT"}, AllowHeaders: []string{"X-A"}, AllowCredentials: true})
	f.Fuzz(func(t *testing.T, origin, method, headers string, preflight bool) {
		verb := "GET"
		if preflight {
			verb = "OPTIONS"
		}
		r := httptest.NewRequest(verb, "/", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", method)
		r.Header.Set("Access-Control-Request-Headers", headers)
		rec := httptest.NewRecorder()
		p.Handle(rec, r)
		// With credentials on, the only Allow-Origin ever sent is the
		// request's own origin, and only for an allowed one.
		if got := rec.Header().Get("Access-Control-Allow-Origin"); got != "" && (got != origin || !p.originAllowed(origin)) {
			t.Fatalf("Allow-Origin %q for origin %q", got, origin)
		}
	})
}
