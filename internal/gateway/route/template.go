// Package route owns user route keys and the table that matches requests to
// them: parsing "GET /users/{id}", "ANY /files/{proxy+}" and "$default",
// rejecting conflicting routes, and picking the one route a request goes to
// by a fixed precedence. It does not know what a route's target is, how the
// request is turned into an event, or how auth, CORS and limits apply.
//
// # Precedence
//
// Match tries host scopes in this order: routes bound to the exact host, then
// wildcard hosts ("*.example.com", longest suffix first), then routes without
// a host. Within one scope:
//
//  1. the path decides first, segment by segment from the left: a static
//     segment beats a {param}, which beats a {greedy+} tail; a dead end backs
//     up and tries the next less specific branch. So the longer match wins:
//     "/files/static/{p+}" beats "/files/{p+}" for /files/static/a;
//  2. among routes with the same path shape, an exact method beats ANY;
//  3. the scope's $default route catches whatever no path route took.
//
// So a host-bound $default wins over a hostless path route: a host with its
// own routes behaves like a separate API, as a custom domain does on AWS.
// A request with a method no route accepts, on a path some route has,
// gets Result.MethodNotAllowed (405) unless a $default takes it.
//
// Paths are matched as received (escaped): segments split on "/", then each
// is percent-decoded, so "%2F" inside a {param} stays in that parameter.
// Paths are not cleaned: "/a/../b" reaches a {proxy+} as "a/../b".
package route

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// DefaultKey is the catch-all route key.
const DefaultKey = "$default"

// MethodAny matches every method that has no route of its own.
const MethodAny = "ANY"

// maxParams bounds the number of path parameters in one template so that
// matching can collect values in a fixed-size array without allocating.
const maxParams = 32

// methods lists the methods a route key may name, in the order used for the
// per-leaf method array. ANY is handled separately.
var methods = [...]string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "POST":
		return 1
	case "PUT":
		return 2
	case "PATCH":
		return 3
	case "DELETE":
		return 4
	case "HEAD":
		return 5
	case "OPTIONS":
		return 6
	}
	return -1
}

// ErrInvalidTemplate is wrapped by every error ParseTemplate returns.
var ErrInvalidTemplate = errors.New("invalid route key")

// SegmentKind says how one path segment of a template matches.
type SegmentKind uint8

const (
	// Static matches one segment equal to Value (after percent-decoding).
	Static SegmentKind = iota
	// Param matches any one non-empty segment and binds it to Value.
	Param
	// Greedy matches the non-empty rest of the path and binds it to Value.
	Greedy
)

// Segment is one path segment of a template. For Static, Value is the
// decoded literal; for Param and Greedy it is the parameter name.
type Segment struct {
	Kind  SegmentKind
	Value string
}

// Template is a parsed route key.
type Template struct {
	// Method is one of GET POST PUT PATCH DELETE HEAD OPTIONS ANY, or "" for
	// $default.
	Method   string
	Segments []Segment
	// Default is true for the $default route.
	Default bool
}

// String returns the canonical route key, e.g. "GET /users/{id}".
func (t Template) String() string {
	if t.Default {
		return DefaultKey
	}
	var b strings.Builder
	b.WriteString(t.Method)
	b.WriteByte(' ')
	if len(t.Segments) == 0 {
		b.WriteByte('/')
	}
	for _, s := range t.Segments {
		b.WriteByte('/')
		switch s.Kind {
		case Static:
			b.WriteString(escapeSegment(s.Value))
		case Param:
			b.WriteString("{" + s.Value + "}")
		case Greedy:
			b.WriteString("{" + s.Value + "+}")
		}
	}
	return b.String()
}

// ParamNames returns the parameter names in path order.
func (t Template) ParamNames() []string {
	var names []string
	for _, s := range t.Segments {
		if s.Kind != Static {
			names = append(names, s.Value)
		}
	}
	return names
}

// shape returns the template with parameter names erased: two routes with
// the same method and shape can never be told apart.
func (t Template) shape() string {
	if t.Default {
		return DefaultKey
	}
	var b strings.Builder
	for _, s := range t.Segments {
		b.WriteByte('/')
		switch s.Kind {
		case Static:
			b.WriteString(escapeSegment(s.Value))
		case Param:
			b.WriteString("{}")
		case Greedy:
			b.WriteString("{+}")
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

func templateErr(s, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidTemplate, truncate(s, 120), fmt.Sprintf(format, args...))
}

// ParseTemplate parses a route key: "$default", or a method, one space and a
// path such as "GET /users/{id}" or "ANY /files/{proxy+}".
//
// Path segments are static text, a whole-segment {param}, or a {name+}
// greedy parameter as the last segment. Static text may be percent-encoded.
// Empty segments (a double or trailing slash) are rejected, except the root
// path "/".
func ParseTemplate(s string) (Template, error) {
	if s == DefaultKey {
		return Template{Default: true}, nil
	}
	method, path, ok := strings.Cut(s, " ")
	if !ok {
		if strings.HasPrefix(s, "/") {
			return Template{}, templateErr(s, "missing method: write it as \"GET %s\" or \"ANY %s\"", truncate(s, 60), truncate(s, 60))
		}
		return Template{}, templateErr(s, "want \"$default\" or \"METHOD /path\"")
	}
	if method != MethodAny && methodIndex(method) < 0 {
		return Template{}, templateErr(s, "unknown method %q: want one of GET POST PUT PATCH DELETE HEAD OPTIONS ANY (upper case)", truncate(method, 20))
	}
	if !strings.HasPrefix(path, "/") {
		return Template{}, templateErr(s, "path must start with '/'")
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c <= ' ' || c == 0x7f || c == '?' || c == '#' {
			return Template{}, templateErr(s, "path contains %q at byte %d: paths hold no spaces, control characters, '?' or '#'", string(c), i)
		}
	}
	t := Template{Method: method}
	if path == "/" {
		return t, nil
	}
	parts := strings.Split(path[1:], "/")
	seen := make(map[string]bool)
	for i, p := range parts {
		if p == "" {
			return Template{}, templateErr(s, "empty segment %d (double or trailing slash)", i+1)
		}
		if strings.HasPrefix(p, "{") {
			if !strings.HasSuffix(p, "}") || len(p) < 3 {
				return Template{}, templateErr(s, "segment %q: a parameter must fill the whole segment, like {id}", p)
			}
			name := p[1 : len(p)-1]
			kind := Param
			if strings.HasSuffix(name, "+") {
				kind = Greedy
				name = name[:len(name)-1]
				if i != len(parts)-1 {
					return Template{}, templateErr(s, "greedy parameter {%s+} must be the last segment", name)
				}
			}
			if !validParamName(name) {
				return Template{}, templateErr(s, "parameter name %q: use letters, digits, '_', '-' or '.'", truncate(name, 40))
			}
			if seen[name] {
				return Template{}, templateErr(s, "parameter {%s} appears twice", name)
			}
			seen[name] = true
			if len(seen) > maxParams {
				return Template{}, templateErr(s, "more than %d parameters", maxParams)
			}
			t.Segments = append(t.Segments, Segment{Kind: kind, Value: name})
			continue
		}
		if strings.ContainsAny(p, "{}") {
			return Template{}, templateErr(s, "segment %q: '{' and '}' may only wrap a whole-segment parameter", p)
		}
		lit, err := url.PathUnescape(p)
		if err != nil {
			return Template{}, templateErr(s, "segment %q: bad percent-encoding", p)
		}
		t.Segments = append(t.Segments, Segment{Kind: Static, Value: lit})
	}
	return t, nil
}

func validParamName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// escapeSegment renders a decoded static segment the way it is written in a
// route key; braces are escaped so the result parses back to the same value.
func escapeSegment(s string) string {
	e := url.PathEscape(s)
	e = strings.ReplaceAll(e, "{", "%7B")
	return strings.ReplaceAll(e, "}", "%7D")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
