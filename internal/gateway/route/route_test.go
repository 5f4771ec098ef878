package route

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Template
		wantErr string // substring; "" means success
	}{
		{name: "default", in: "$default", want: Template{Default: true}},
		{name: "root", in: "GET /", want: Template{Method: "GET"}},
		{name: "static", in: "POST /users", want: Template{Method: "POST", Segments: []Segment{{Static, "users"}}}},
		{name: "param", in: "GET /users/{id}", want: Template{Method: "GET", Segments: []Segment{{Static, "users"}, {Param, "id"}}}},
		{name: "greedy", in: "ANY /files/{proxy+}", want: Template{Method: "ANY", Segments: []Segment{{Static, "files"}, {Greedy, "proxy"}}}},
		{name: "escaped static", in: "GET /a%20b", want: Template{Method: "GET", Segments: []Segment{{Static, "a b"}}}},
		{name: "lowercase method", in: "get /x", wantErr: "unknown method"},
		{name: "unknown method", in: "FETCH /x", wantErr: "unknown method"},
		{name: "missing method", in: "/users", wantErr: "missing method"},
		{name: "garbage", in: "users", wantErr: "want \"$default\""},
		{name: "relative path", in: "GET users", wantErr: "must start with '/'"},
		{name: "double slash", in: "GET /a//b", wantErr: "empty segment 2"},
		{name: "trailing slash", in: "GET /a/", wantErr: "empty segment 2"},
		{name: "partial param", in: "GET /a/x{id}", wantErr: "'{' and '}'"},
		{name: "param suffix", in: "GET /a/{id}.json", wantErr: "whole segment"},
		{name: "empty param", in: "GET /a/{}", wantErr: "whole segment"},
		{name: "greedy not last", in: "GET /{p+}/x", wantErr: "must be the last segment"},
		{name: "duplicate param", in: "GET /{id}/{id}", wantErr: "appears twice"},
		{name: "bad param name", in: "GET /{a b}", wantErr: "no spaces"},
		{name: "bad param char", in: "GET /{a/b}", wantErr: "whole segment"},
		{name: "query", in: "GET /a?b", wantErr: "'?'"},
		{name: "bad escape", in: "GET /a%zz", wantErr: "percent-encoding"},
		{name: "two spaces", in: "GET  /a", wantErr: "must start with '/'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseTemplate(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidTemplate) {
					t.Fatalf("ParseTemplate(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTemplate(%q): %v", tc.in, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseTemplate(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
			if rt, err := ParseTemplate(got.String()); err != nil || !reflect.DeepEqual(rt, got) {
				t.Fatalf("round trip of %q via %q = %+v, %v", tc.in, got.String(), rt, err)
			}
		})
	}
}

func mustTable(t testing.TB, routes ...Route) *Table {
	t.Helper()
	for i := range routes {
		if routes[i].Target == nil {
			routes[i].Target = routes[i].Host + "|" + routes[i].Key
		}
	}
	tb, err := New(routes)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tb
}

func TestMatchPrecedence(t *testing.T) {
	tb := mustTable(t,
		Route{Key: "GET /pets/dog/1"},
		Route{Key: "GET /pets/dog/{id}"},
		Route{Key: "GET /pets/{proxy+}"},
		Route{Key: "ANY /{proxy+}"},
		Route{Key: "GET /users/me"},
		Route{Key: "GET /users/{id}"},
		Route{Key: "ANY /users/{id}"},
		Route{Key: "DELETE /users/{id}"},
		Route{Key: "GET /users/{id}/posts/{post}"},
		Route{Key: "GET /a/{x}/c"},
		Route{Key: "GET /a/b/{y}"},
		Route{Key: "GET /files/{p+}"},
		Route{Key: "GET /files/static/{p+}"},
		Route{Key: "GET /"},
		Route{Key: "GET /only-get"},
		Route{Key: "$default"},
		Route{Key: "GET /users/me", Host: "api.example.com"},
		Route{Key: "GET /h/{x}", Host: "*.example.com"},
		Route{Key: "GET /h/{x}", Host: "*.eu.example.com"},
		Route{Key: "$default", Host: "shop.example.com"},
	)
	tests := []struct {
		name, method, host, path string
		wantKey, wantHost        string
		wantParams               map[string]string
	}{
		{name: "exact static", method: "GET", path: "/pets/dog/1", wantKey: "GET /pets/dog/1"},
		{name: "param beats greedy", method: "GET", path: "/pets/dog/2", wantKey: "GET /pets/dog/{id}", wantParams: map[string]string{"id": "2"}},
		{name: "greedy with method", method: "GET", path: "/pets/cat/1", wantKey: "GET /pets/{proxy+}", wantParams: map[string]string{"proxy": "cat/1"}},
		{name: "any greedy for other method", method: "POST", path: "/pets/cat/1", wantKey: "ANY /{proxy+}", wantParams: map[string]string{"proxy": "pets/cat/1"}},
		{name: "static beats param", method: "GET", path: "/users/me", wantKey: "GET /users/me"},
		{name: "exact method beats any", method: "GET", path: "/users/42", wantKey: "GET /users/{id}", wantParams: map[string]string{"id": "42"}},
		{name: "any for unlisted method", method: "PUT", path: "/users/42", wantKey: "ANY /users/{id}", wantParams: map[string]string{"id": "42"}},
		{name: "backtrack from static to param on method", method: "DELETE", path: "/users/me", wantKey: "DELETE /users/{id}", wantParams: map[string]string{"id": "me"}},
		{name: "two params", method: "GET", path: "/users/7/posts/9", wantKey: "GET /users/{id}/posts/{post}", wantParams: map[string]string{"id": "7", "post": "9"}},
		{name: "backtrack dead end", method: "GET", path: "/a/b/c", wantKey: "GET /a/b/{y}", wantParams: map[string]string{"y": "c"}},
		{name: "backtrack to param", method: "GET", path: "/a/z/c", wantKey: "GET /a/{x}/c", wantParams: map[string]string{"x": "z"}},
		{name: "longer greedy beats shorter", method: "GET", path: "/files/static/x/y", wantKey: "GET /files/static/{p+}", wantParams: map[string]string{"p": "x/y"}},
		{name: "greedy keeps slashes and decodes", method: "GET", path: "/files/a%20b/c%2Fd", wantKey: "GET /files/{p+}", wantParams: map[string]string{"p": "a b/c/d"}},
		{name: "greedy needs content", method: "GET", path: "/files/", wantKey: "ANY /{proxy+}", wantParams: map[string]string{"proxy": "files/"}},
		{name: "param decoded per segment", method: "GET", path: "/users/a%2Fb", wantKey: "GET /users/{id}", wantParams: map[string]string{"id": "a/b"}},
		{name: "escaped static", method: "GET", path: "/users/%6De", wantKey: "GET /users/me"},
		{name: "root", method: "GET", path: "/", wantKey: "GET /"},
		{name: "default for root with other method", method: "POST", path: "/", wantKey: "$default"},
		{name: "trailing slash is not the route", method: "GET", path: "/only-get/", wantKey: "ANY /{proxy+}", wantParams: map[string]string{"proxy": "only-get/"}},
		{name: "unknown method only any", method: "PROPFIND", path: "/users/1", wantKey: "ANY /users/{id}", wantParams: map[string]string{"id": "1"}},
		{name: "host bound first", method: "GET", host: "API.example.com:8443", path: "/users/me", wantKey: "GET /users/me", wantHost: "api.example.com"},
		{name: "host falls back to global", method: "GET", host: "api.example.com", path: "/users/5", wantKey: "GET /users/{id}", wantParams: map[string]string{"id": "5"}},
		{name: "wildcard host", method: "GET", host: "x.example.com", path: "/h/1", wantKey: "GET /h/{x}", wantHost: "*.example.com", wantParams: map[string]string{"x": "1"}},
		{name: "longer wildcard first", method: "GET", host: "a.eu.example.com", path: "/h/1", wantKey: "GET /h/{x}", wantHost: "*.eu.example.com", wantParams: map[string]string{"x": "1"}},
		{name: "wildcard needs a label", method: "GET", host: "example.com", path: "/h/1", wantKey: "ANY /{proxy+}", wantParams: map[string]string{"proxy": "h/1"}},
		{name: "host default beats global route", method: "GET", host: "shop.example.com", path: "/users/me", wantKey: "$default", wantHost: "shop.example.com"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target, params, key, ok := tb.Match(tc.method, tc.host, tc.path)
			if !ok {
				t.Fatalf("Match(%s %s %s) found nothing, want %q", tc.method, tc.host, tc.path, tc.wantKey)
			}
			if key != tc.wantKey {
				t.Errorf("routeKey = %q, want %q", key, tc.wantKey)
			}
			if want := tc.wantHost + "|" + tc.wantKey; target != want {
				t.Errorf("target = %v, want %v", target, want)
			}
			if !maps.Equal(params, tc.wantParams) {
				t.Errorf("params = %v, want %v", params, tc.wantParams)
			}
		})
	}
}

func TestLookupNotFoundAndMethodNotAllowed(t *testing.T) {
	tb := mustTable(t,
		Route{Key: "GET /users/{id}"},
		Route{Key: "DELETE /users/{id}"},
		Route{Key: "POST /users/{id}", Host: "api.example.com"},
		Route{Key: "GET /files/{p+}"},
	)
	tests := []struct {
		name, method, host, path string
		want405                  bool
		allow                    []string
	}{
		{name: "404 unknown path", method: "GET", path: "/nope"},
		{name: "404 relative", method: "GET", path: "nope"},
		{name: "404 empty", method: "GET", path: ""},
		{name: "405", method: "PUT", path: "/users/1", want405: true, allow: []string{"DELETE", "GET"}},
		{name: "405 across scopes", method: "PUT", host: "api.example.com", path: "/users/1", want405: true, allow: []string{"DELETE", "GET", "POST"}},
		{name: "405 greedy", method: "POST", path: "/files/a/b", want405: true, allow: []string{"GET"}},
		{name: "404 needs content", method: "GET", path: "/users/"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := tb.Lookup(tc.method, tc.host, tc.path)
			if res.Route != nil {
				t.Fatalf("matched %q, want none", res.Route.Key)
			}
			if res.MethodNotAllowed != tc.want405 || !reflect.DeepEqual(res.Allow, tc.allow) {
				t.Fatalf("MethodNotAllowed=%v Allow=%v, want %v %v", res.MethodNotAllowed, res.Allow, tc.want405, tc.allow)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		want   []string // substrings of the error
	}{
		{name: "same shape", routes: []Route{{Key: "GET /users/{id}"}, {Key: "GET /users/{name}"}},
			want: []string{`"GET /users/{id}" and "GET /users/{name}"`, "/users/{}"}},
		{name: "duplicate", routes: []Route{{Key: "GET /a"}, {Key: "GET /a"}}, want: []string{`"GET /a" and "GET /a"`}},
		{name: "any twice", routes: []Route{{Key: "ANY /{p+}"}, {Key: "ANY /{q+}"}}, want: []string{`"ANY /{p+}" and "ANY /{q+}"`}},
		{name: "two defaults", routes: []Route{{Key: "$default"}, {Key: "$default"}}, want: []string{"only one $default"}},
		{name: "same host conflict", routes: []Route{{Key: "GET /a", Host: "X.com"}, {Key: "GET /a", Host: "x.com"}}, want: []string{"on host x.com"}},
		{name: "bad key", routes: []Route{{Key: "GET /a"}, {Key: "GIT /b"}}, want: []string{"route 2", "unknown method"}},
		{name: "bad host", routes: []Route{{Key: "GET /a", Host: "a.*.com"}}, want: []string{"wildcard"}},
		{name: "host port", routes: []Route{{Key: "GET /a", Host: "a.com:80"}}, want: []string{"port"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.routes)
			if err == nil {
				t.Fatal("New succeeded, want error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	t.Run("allowed neighbours", func(t *testing.T) {
		_, err := New([]Route{
			{Key: "GET /users/{id}"}, {Key: "POST /users/{name}"}, {Key: "ANY /users/{x}"},
			{Key: "GET /users/me"}, {Key: "GET /users/{id}", Host: "a.com"}, {Key: "GET /users/{p+}"},
			{Key: "$default"}, {Key: "$default", Host: "a.com"},
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
	})
}

func TestMatchDoesNotAllocateWithoutParams(t *testing.T) {
	tb := mustTable(t, Route{Key: "GET /a/b/c"}, Route{Key: "GET /a/{x}/d"})
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, _, ok := tb.Match("GET", "h", "/a/b/c"); !ok {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Fatalf("Match allocated %v times, want 0", allocs)
	}
}

// pathFor builds a request path that the template must match, using vals
// for parameters in order.
func pathFor(tmpl Template, vals []string) (string, map[string]string) {
	var b strings.Builder
	params := map[string]string{}
	i := 0
	for _, s := range tmpl.Segments {
		b.WriteByte('/')
		switch s.Kind {
		case Static:
			b.WriteString(url.PathEscape(s.Value))
		case Param:
			v := vals[i%len(vals)]
			i++
			b.WriteString(url.PathEscape(v))
			params[s.Value] = v
		case Greedy:
			v := vals[i%len(vals)]
			i++
			parts := strings.Split(v, "/")
			for j := range parts {
				parts[j] = url.PathEscape(parts[j])
			}
			b.WriteString(strings.Join(parts, "/"))
			params[s.Value] = v
		}
	}
	if b.Len() == 0 {
		b.WriteByte('/')
	}
	if len(params) == 0 {
		params = nil
	}
	return b.String(), params
}

func FuzzParseTemplate(f *testing.F) {
	for _, s := range []string{"$default", "GET /", "GET /users/{id}", "ANY /files/{proxy+}", "POST /a%20b/{x}/{y+}", "GET /{a}/{a}", "PUT /{", "DELETE /}{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := ParseTemplate(s)
		if err != nil {
			return
		}
		again, err := ParseTemplate(tmpl.String())
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", tmpl.String(), s, err)
		}
		if !reflect.DeepEqual(again, tmpl) {
			t.Fatalf("round trip %q -> %+v -> %q -> %+v", s, tmpl, tmpl.String(), again)
		}
	})
}

func FuzzMatch(f *testing.F) {
	f.Add("GET /users/{id}", "42", "GET", "/users/42")
	f.Add("ANY /files/{proxy+}", "a/b c/%", "POST", "/files/x")
	f.Add("GET /a%2Fb/{x}", "é", "GET", "/a%2fb/%zz")
	f.Add("$default", "x", "PATCH", "//")
	f.Fuzz(func(t *testing.T, key, val, method, path string) {
		// Arbitrary lookups on a fixed table must not panic.
		fixed := mustTable(t, Route{Key: "GET /users/{id}"}, Route{Key: "ANY /files/{p+}"}, Route{Key: "GET /a/b"}, Route{Key: "$default", Host: "*.x.com"})
		fixed.Lookup(method, path, path)

		tmpl, err := ParseTemplate(key)
		if err != nil {
			return
		}
		if val == "" || strings.Contains(val, "/") && !strings.Contains(key, "+}") {
			val = "v" + strings.ReplaceAll(val, "/", "_")
		}
		vals := []string{val}
		for _, s := range tmpl.Segments {
			if s.Kind == Param && strings.Contains(val, "/") {
				vals = []string{strings.ReplaceAll(val, "/", "_")}
			}
		}
		tb, err := New([]Route{{Key: key, Target: key}})
		if err != nil {
			t.Fatalf("New(%q): %v", key, err)
		}
		m := tmpl.Method
		if m == "" || m == MethodAny {
			m = "GET"
		}
		p, wantParams := pathFor(tmpl, vals)
		if tmpl.Default {
			p, wantParams = "/"+url.PathEscape(val), nil
		}
		target, params, rk, ok := tb.Match(m, "example.com", p)
		if !ok || rk != key || target != key {
			t.Fatalf("route %q did not match generated path %q (%v %q)", key, p, ok, rk)
		}
		if !maps.Equal(params, wantParams) {
			t.Fatalf("route %q path %q: params %v, want %v", key, p, params, wantParams)
		}
	})
}

// build1000 returns 1,000 routes in the shapes real APIs use: resources,
// nested resources with params, a few greedy tails, all methods.
func build1000() []Route {
	var routes []Route
	verbs := []string{"GET", "POST", "PUT", "DELETE"}
	for i := 0; len(routes) < 1000; i++ {
		res := fmt.Sprintf("res%d", i)
		for _, v := range verbs {
			routes = append(routes,
				Route{Key: fmt.Sprintf("%s /v1/%s/{id}", v, res)},
				Route{Key: fmt.Sprintf("%s /v1/%s/{id}/items/{item}", v, res)},
			)
		}
		routes = append(routes, Route{Key: fmt.Sprintf("GET /v1/%s", res)}, Route{Key: fmt.Sprintf("ANY /static/%s/{p+}", res)})
	}
	routes = append(routes[:999], Route{Key: "$default"})
	for i := range routes {
		routes[i].Target = i
	}
	return routes
}

func BenchmarkMatch1000(b *testing.B) {
	tb, err := New(build1000())
	if err != nil {
		b.Fatal(err)
	}
	paths := []struct{ m, p string }{
		{"GET", "/v1/res57/abc123/items/xyz"},
		{"DELETE", "/v1/res99/abc123"},
		{"GET", "/static/res3/css/site.css"},
		{"GET", "/v1/res100"},
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p := paths[i%len(paths)]
		if _, _, _, ok := tb.Match(p.m, "api.example.com", p.p); !ok {
			b.Fatal("no match")
		}
	}
}
