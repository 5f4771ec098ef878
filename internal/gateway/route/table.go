package route

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
)

// ErrConflict is wrapped by New when two routes cannot be told apart.
var ErrConflict = errors.New("conflicting routes")

// Route is one user route as declared in a manifest.
type Route struct {
	// Key is the route key, e.g. "GET /users/{id}" or "$default".
	Key string
	// Host binds the route to one host ("api.example.com") or to any
	// subdomain ("*.example.com"). Empty means every host.
	Host string
	// Target is returned by Match; the table never looks inside it.
	Target any
}

// Result is the outcome of Table.Lookup.
type Result struct {
	// Route is the matched route, nil when nothing matched.
	Route *Route
	// Template is the parsed form of Route.Key.
	Template Template
	// Params holds the URL-decoded path parameters; nil when the route
	// has none.
	Params map[string]string
	// MethodNotAllowed is true when no route matched but some route would
	// have matched the path with another method (answer 405, not 404).
	MethodNotAllowed bool
	// Allow lists those methods, sorted, for the Allow header of a 405.
	Allow []string
}

// Table matches requests to routes. It is immutable after New and safe for
// concurrent use; to change routes, build a new Table and swap it in.
type Table struct {
	exact  map[string]*scope
	wild   []wildScope // longest suffix first
	global *scope
	routes []Route
}

type wildScope struct {
	suffix string // ".example.com"
	scope  *scope
}

type scope struct {
	root node
	def  *entry
}

// node is one position in the segment trie.
type node struct {
	static map[string]*node // keyed by decoded segment
	param  *node
	leaf   *leaf // routes that end here
	greedy *leaf // routes whose {name+} tail starts here
}

type leaf struct {
	byMethod [len(methods)]*entry
	any      *entry
}

type entry struct {
	route    *Route
	tmpl     Template
	names    []string // parameter names in path order
	hostDesc string
}

// New builds a table. It rejects invalid keys and hosts, and routes that
// conflict: the same host, method and path shape (parameter names aside),
// e.g. "GET /users/{id}" and "GET /users/{name}". Errors name both routes.
func New(routes []Route) (*Table, error) {
	t := &Table{exact: make(map[string]*scope), global: &scope{}, routes: make([]Route, len(routes))}
	copy(t.routes, routes)
	wild := make(map[string]*scope)
	var errs []error
	for i := range t.routes {
		r := &t.routes[i]
		tmpl, err := ParseTemplate(r.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %d: %w", i+1, err))
			continue
		}
		host, err := normalizeRouteHost(r.Host)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %d (%s): %w", i+1, r.Key, err))
			continue
		}
		var sc *scope
		switch {
		case host == "":
			sc = t.global
		case strings.HasPrefix(host, "*."):
			suffix := host[1:]
			if sc = wild[suffix]; sc == nil {
				sc = &scope{}
				wild[suffix] = sc
				t.wild = append(t.wild, wildScope{suffix: suffix, scope: sc})
			}
		default:
			if sc = t.exact[host]; sc == nil {
				sc = &scope{}
				t.exact[host] = sc
			}
		}
		e := &entry{route: r, tmpl: tmpl, names: tmpl.ParamNames(), hostDesc: host}
		if err := sc.insert(e); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	sort.SliceStable(t.wild, func(i, j int) bool { return len(t.wild[i].suffix) > len(t.wild[j].suffix) })
	return t, nil
}

// Routes returns a copy of the routes the table was built from.
func (t *Table) Routes() []Route {
	out := make([]Route, len(t.routes))
	copy(out, t.routes)
	return out
}

func describe(e *entry) string {
	if e.hostDesc == "" {
		return fmt.Sprintf("%q", e.route.Key)
	}
	return fmt.Sprintf("%q on host %s", e.route.Key, e.hostDesc)
}

func conflict(old, new *entry) error {
	return fmt.Errorf("%w: %s and %s match the same requests (same method and path shape %s)",
		ErrConflict, describe(old), describe(new), new.tmpl.shape())
}

func (s *scope) insert(e *entry) error {
	if e.tmpl.Default {
		if s.def != nil {
			return fmt.Errorf("%w: %s and %s: only one $default route per host", ErrConflict, describe(s.def), describe(e))
		}
		s.def = e
		return nil
	}
	n := &s.root
	var lf **leaf
	for _, seg := range e.tmpl.Segments {
		switch seg.Kind {
		case Static:
			if n.static == nil {
				n.static = make(map[string]*node)
			}
			c := n.static[seg.Value]
			if c == nil {
				c = &node{}
				n.static[seg.Value] = c
			}
			n = c
		case Param:
			if n.param == nil {
				n.param = &node{}
			}
			n = n.param
		case Greedy:
			lf = &n.greedy
		}
	}
	if lf == nil {
		lf = &n.leaf
	}
	if *lf == nil {
		*lf = &leaf{}
	}
	l := *lf
	if e.tmpl.Method == MethodAny {
		if l.any != nil {
			return conflict(l.any, e)
		}
		l.any = e
		return nil
	}
	i := methodIndex(e.tmpl.Method)
	if l.byMethod[i] != nil {
		return conflict(l.byMethod[i], e)
	}
	l.byMethod[i] = e
	return nil
}

// normalizeRouteHost lower-cases and checks a route's host.
func normalizeRouteHost(h string) (string, error) {
	if h == "" {
		return "", nil
	}
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	rest := h
	if strings.HasPrefix(h, "*.") {
		rest = h[2:]
	}
	if rest == "" || strings.Contains(rest, "*") {
		return "", fmt.Errorf("host %q: a wildcard is allowed only as the first label, like *.example.com", h)
	}
	if strings.Contains(rest, ":") {
		return "", fmt.Errorf("host %q: leave out the port", h)
	}
	for _, label := range strings.Split(rest, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("host %q: empty or overlong label", h)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return "", fmt.Errorf("host %q: label %q holds %q", h, label, string(c))
			}
		}
	}
	return h, nil
}

// requestHost strips the port and a trailing dot and lower-cases, without
// allocating when the host is already in that form.
func requestHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.HasSuffix(h, "]") {
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
	}
	h = strings.TrimSuffix(h, ".")
	for i := 0; i < len(h); i++ {
		if c := h[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// Match finds the route for a request. path is the escaped path as received
// (r.URL.EscapedPath()); host may carry a port. params holds the decoded
// path parameters (nil when the route has none).
func (t *Table) Match(method, host, path string) (target any, params map[string]string, routeKey string, ok bool) {
	res := t.Lookup(method, host, path)
	if res.Route == nil {
		return nil, nil, "", false
	}
	return res.Route.Target, res.Params, res.Route.Key, true
}

// Lookup is Match with the details needed to answer 404 versus 405.
func (t *Table) Lookup(method, host, path string) Result {
	var st matchState
	if len(path) == 0 || path[0] != '/' {
		return Result{}
	}
	st.method = methodIndex(method)
	rest := path[1:]
	h := ""
	if len(t.exact) > 0 || len(t.wild) > 0 {
		h = requestHost(host)
	}
	// A scope's own $default beats less specific scopes (see package doc),
	// so each scope is finished before the next is tried.
	if sc := t.exact[h]; sc != nil && h != "" {
		if e := st.inScope(sc, rest); e != nil {
			return st.result(e)
		}
	}
	for i := range t.wild {
		w := &t.wild[i]
		if len(h) > len(w.suffix) && strings.HasSuffix(h, w.suffix) {
			if e := st.inScope(w.scope, rest); e != nil {
				return st.result(e)
			}
		}
	}
	if e := st.inScope(t.global, rest); e != nil {
		return st.result(e)
	}
	if st.pathMatched {
		return Result{MethodNotAllowed: true, Allow: st.allowList()}
	}
	return Result{}
}

func (st *matchState) inScope(sc *scope, rest string) *entry {
	if e := st.walk(&sc.root, rest, 0); e != nil {
		return e
	}
	return sc.def
}

// matchState carries one lookup's scratch space; its arrays live on the
// caller's stack so a match allocates nothing but the params map.
type matchState struct {
	method      int
	vals        [maxParams]string // raw segment values of params, in path order
	pathMatched bool
	allowed     [len(methods) + 1]bool // last slot: ANY
}

// walk descends the trie; rest is the escaped path after the segment that
// led to n. depth counts params bound so far.
func (st *matchState) walk(n *node, rest string, depth int) *entry {
	if rest == "" {
		// End of path: only routes that end here match (a greedy tail
		// needs at least one character).
		return st.pick(n.leaf)
	}
	seg, tail, hasTail := strings.Cut(rest, "/")
	if n.static != nil && seg != "" {
		key := seg
		valid := true
		if strings.IndexByte(seg, '%') >= 0 {
			dec, err := url.PathUnescape(seg)
			key, valid = dec, err == nil
		}
		if c := n.static[key]; valid && c != nil {
			if e := st.next(c, tail, hasTail, depth); e != nil {
				return e
			}
		}
	}
	if n.param != nil && seg != "" && depth < maxParams {
		st.vals[depth] = seg
		if e := st.next(n.param, tail, hasTail, depth+1); e != nil {
			return e
		}
	}
	if n.greedy != nil && depth < maxParams {
		st.vals[depth] = rest
		if e := st.pick(n.greedy); e != nil {
			return e
		}
	}
	return nil
}

// next continues after a consumed segment. "/a" consumed as the last
// segment ends the path; "/a/" leaves an empty segment, which only a greedy
// tail could take, and a greedy tail needs more than nothing.
func (st *matchState) next(n *node, tail string, hasTail bool, depth int) *entry {
	if !hasTail {
		return st.pick(n.leaf)
	}
	if tail == "" {
		return nil
	}
	return st.walk(n, tail, depth)
}

func (st *matchState) pick(l *leaf) *entry {
	if l == nil {
		return nil
	}
	if st.method >= 0 {
		if e := l.byMethod[st.method]; e != nil {
			return e
		}
	}
	if l.any != nil {
		return l.any
	}
	for i, e := range l.byMethod {
		if e != nil {
			st.pathMatched = true
			st.allowed[i] = true
		}
	}
	return nil
}

func (st *matchState) allowList() []string {
	var out []string
	for i, ok := range st.allowed[:len(methods)] {
		if ok {
			out = append(out, methods[i])
		}
	}
	sort.Strings(out)
	return out
}

func (st *matchState) result(e *entry) Result {
	res := Result{Route: e.route, Template: e.tmpl}
	if len(e.names) == 0 {
		return res
	}
	res.Params = make(map[string]string, len(e.names))
	for i, name := range e.names {
		v := st.vals[i]
		if strings.IndexByte(v, '%') >= 0 {
			if dec, err := url.PathUnescape(v); err == nil {
				v = dec
			}
		}
		res.Params[name] = v
	}
	return res
}
