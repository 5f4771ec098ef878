package asl

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// This file implements the JSONPath dialect of the States Language: the
// subset of Jayway JsonPath that AWS Step Functions accepts, plus the two
// ASL roots "$$" (context object) and "$name" (a workflow variable).
//
// A path is "definite" when it can select at most one node (only names and
// indexes); a definite path that matches nothing is an error, an indefinite
// one (wildcards, slices, filters, unions, recursive descent) always yields a
// list, possibly empty. Error texts follow Jayway's, since AWS surfaces them
// in causes.

type rootKind uint8

const (
	rootInput   rootKind = iota // $
	rootContext                 // $$
	rootVar                     // $name
)

type segKind uint8

const (
	segName segKind = iota
	segIndex
	segWildcard
	segSlice
	segUnionNames
	segUnionIndexes
	segFilter
	segDescend // recursive descent; name == "" means every node
)

type pathSeg struct {
	kind    segKind
	name    string
	index   int
	names   []string
	indexes []int
	slice   [3]*int
	filter  filterNode
}

type jsonPath struct {
	src      string
	root     rootKind
	varName  string
	segs     []pathSeg
	definite bool
}

// roots supplies the documents a path can start from.
type roots struct {
	input   any
	context func() any
	vars    func(name string) (any, bool)
}

// pathError reports a definite path that selected nothing.
type pathError struct{ msg string }

func (e *pathError) Error() string { return e.msg }

// parsePath compiles a JSONPath. It accepts "$", "$$" and "$var" roots.
func parsePath(src string) (*jsonPath, error) {
	p := &jsonPath{src: src, definite: true}
	if !strings.HasPrefix(src, "$") {
		return nil, fmt.Errorf("path %q must start with '$'", src)
	}
	i := 1
	switch {
	case strings.HasPrefix(src, "$$"):
		p.root = rootContext
		i = 2
	case len(src) > 1 && isVarStart(src[1]):
		p.root = rootVar
		j := 1
		for j < len(src) && isVarChar(src[j]) {
			j++
		}
		p.varName = src[1:j]
		i = j
	}
	for i < len(src) {
		seg, next, err := parseSeg(src, i)
		if err != nil {
			return nil, fmt.Errorf("invalid path %q: %w", src, err)
		}
		switch seg.kind {
		case segName, segIndex:
		default:
			p.definite = false
		}
		p.segs = append(p.segs, seg)
		i = next
	}
	return p, nil
}

func isVarStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isVarChar(c byte) bool { return isVarStart(c) || (c >= '0' && c <= '9') }

// isReference reports whether the path holds only names and indexes, as
// ResultPath requires.
func (p *jsonPath) isReference() bool {
	if p.root != rootInput {
		return false
	}
	for _, s := range p.segs {
		if s.kind != segName && s.kind != segIndex {
			return false
		}
	}
	return true
}

func parseSeg(src string, i int) (pathSeg, int, error) {
	switch src[i] {
	case '.':
		if i+1 < len(src) && src[i+1] == '.' {
			// recursive descent: ..name, ..*, ..[...]
			j := i + 2
			if j < len(src) && src[j] == '*' {
				return pathSeg{kind: segDescend}, j + 1, nil
			}
			if j < len(src) && src[j] == '[' {
				return pathSeg{kind: segDescend}, j, nil
			}
			name, next := readName(src, j)
			if name == "" {
				return pathSeg{}, 0, fmt.Errorf("empty name after '..' at %d", i)
			}
			return pathSeg{kind: segDescend, name: name}, next, nil
		}
		j := i + 1
		if j < len(src) && src[j] == '*' {
			return pathSeg{kind: segWildcard}, j + 1, nil
		}
		name, next := readName(src, j)
		if name == "" {
			return pathSeg{}, 0, fmt.Errorf("empty property name at %d", i)
		}
		return pathSeg{kind: segName, name: name}, next, nil
	case '[':
		return parseBracket(src, i)
	}
	return pathSeg{}, 0, fmt.Errorf("unexpected %q at %d", src[i], i)
}

func readName(src string, i int) (string, int) {
	j := i
	for j < len(src) && src[j] != '.' && src[j] != '[' {
		j++
	}
	return src[i:j], j
}

func parseBracket(src string, i int) (pathSeg, int, error) {
	j := skipSpace(src, i+1)
	if j >= len(src) {
		return pathSeg{}, 0, fmt.Errorf("unterminated '['")
	}
	switch c := src[j]; {
	case c == '*':
		j = skipSpace(src, j+1)
		if j >= len(src) || src[j] != ']' {
			return pathSeg{}, 0, fmt.Errorf("expected ']' after '*'")
		}
		return pathSeg{kind: segWildcard}, j + 1, nil
	case c == '\'' || c == '"':
		var names []string
		for {
			name, next, err := readQuoted(src, j)
			if err != nil {
				return pathSeg{}, 0, err
			}
			names = append(names, name)
			j = skipSpace(src, next)
			if j < len(src) && src[j] == ',' {
				j = skipSpace(src, j+1)
				continue
			}
			break
		}
		if j >= len(src) || src[j] != ']' {
			return pathSeg{}, 0, fmt.Errorf("expected ']' after property name")
		}
		if len(names) == 1 {
			return pathSeg{kind: segName, name: names[0]}, j + 1, nil
		}
		return pathSeg{kind: segUnionNames, names: names}, j + 1, nil
	case c == '?':
		j = skipSpace(src, j+1)
		if j >= len(src) || src[j] != '(' {
			return pathSeg{}, 0, fmt.Errorf("expected '(' after '?'")
		}
		fp := &filterParser{src: src, pos: j + 1}
		node, err := fp.parseOr()
		if err != nil {
			return pathSeg{}, 0, err
		}
		k := skipSpace(src, fp.pos)
		if k >= len(src) || src[k] != ')' {
			return pathSeg{}, 0, fmt.Errorf("expected ')' to close filter")
		}
		k = skipSpace(src, k+1)
		if k >= len(src) || src[k] != ']' {
			return pathSeg{}, 0, fmt.Errorf("expected ']' to close filter")
		}
		return pathSeg{kind: segFilter, filter: node}, k + 1, nil
	}
	// numbers: index, union of indexes, or slice
	end := strings.IndexByte(src[j:], ']')
	if end < 0 {
		return pathSeg{}, 0, fmt.Errorf("unterminated '['")
	}
	body := strings.TrimSpace(src[j : j+end])
	next := j + end + 1
	if strings.Contains(body, ":") {
		parts := strings.Split(body, ":")
		if len(parts) > 3 {
			return pathSeg{}, 0, fmt.Errorf("bad slice %q", body)
		}
		var seg pathSeg
		seg.kind = segSlice
		for k, part := range parts {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			n, err := strconv.Atoi(part)
			if err != nil {
				return pathSeg{}, 0, fmt.Errorf("bad slice %q", body)
			}
			seg.slice[k] = &n
		}
		if seg.slice[2] != nil && *seg.slice[2] == 0 {
			return pathSeg{}, 0, fmt.Errorf("slice step cannot be zero")
		}
		return seg, next, nil
	}
	parts := strings.Split(body, ",")
	idx := make([]int, 0, len(parts))
	for _, part := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return pathSeg{}, 0, fmt.Errorf("bad array index %q", body)
		}
		idx = append(idx, n)
	}
	if len(idx) == 1 {
		return pathSeg{kind: segIndex, index: idx[0]}, next, nil
	}
	return pathSeg{kind: segUnionIndexes, indexes: idx}, next, nil
}

func skipSpace(s string, i int) int {
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

// readQuoted reads a quoted property name starting at the quote. A backslash
// escapes only the quote character itself (and a backslash before it), as in
// Jayway; any other backslash is kept literally.
func readQuoted(src string, i int) (string, int, error) {
	if i >= len(src) || (src[i] != '\'' && src[i] != '"') {
		// "$['a', ]" or "$['a'," : a union needs a quoted name after each comma.
		return "", 0, fmt.Errorf("expected a quoted property name")
	}
	q := src[i]
	var b strings.Builder
	for j := i + 1; j < len(src); j++ {
		c := src[j]
		if c == '\\' && j+1 < len(src) && src[j+1] == q {
			b.WriteByte(q)
			j++
			continue
		}
		if c == q {
			return b.String(), j + 1, nil
		}
		b.WriteByte(c)
	}
	return "", 0, fmt.Errorf("unterminated quoted name")
}

// eval evaluates the path. A definite path returns the node or a *pathError;
// an indefinite path returns a []any.
func (p *jsonPath) eval(r *roots) (any, error) {
	var doc any
	switch p.root {
	case rootInput:
		doc = r.input
	case rootContext:
		if r.context != nil {
			doc = r.context()
		}
	case rootVar:
		v, ok := any(nil), false
		if r.vars != nil {
			v, ok = r.vars(p.varName)
		}
		if !ok {
			return nil, &pathError{fmt.Sprintf("Undefined variable '%s'", p.varName)}
		}
		doc = v
	}
	if p.definite {
		return p.evalDefinite(doc)
	}
	nodes := []any{doc}
	for _, s := range p.segs {
		nodes = applySeg(s, nodes, r)
	}
	if nodes == nil {
		nodes = []any{}
	}
	return nodes, nil
}

func (p *jsonPath) rootText() string {
	switch p.root {
	case rootContext:
		return "$$"
	case rootVar:
		return "$" + p.varName
	}
	return "$"
}

func (p *jsonPath) evalDefinite(doc any) (any, error) {
	cur := doc
	var norm strings.Builder
	norm.WriteString(p.rootText())
	for i, s := range p.segs {
		last := i == len(p.segs)-1
		switch s.kind {
		case segName:
			fmt.Fprintf(&norm, "['%s']", s.name)
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, &pathError{missingMsg(last, norm.String())}
			}
			v, ok := m[s.name]
			if !ok {
				return nil, &pathError{missingMsg(last, norm.String())}
			}
			cur = v
		case segIndex:
			fmt.Fprintf(&norm, "[%d]", s.index)
			a, ok := cur.([]any)
			if !ok {
				return nil, &pathError{missingMsg(last, norm.String())}
			}
			idx := s.index
			if idx < 0 {
				idx += len(a)
			}
			if idx < 0 || idx >= len(a) {
				return nil, &pathError{missingMsg(last, norm.String())}
			}
			cur = a[idx]
		}
	}
	return cur, nil
}

func missingMsg(last bool, norm string) string {
	if last {
		return "No results for path: " + norm
	}
	return "Missing property in path " + norm
}

func applySeg(s pathSeg, nodes []any, r *roots) []any {
	var out []any
	for _, n := range nodes {
		switch s.kind {
		case segName:
			if m, ok := n.(map[string]any); ok {
				if v, ok := m[s.name]; ok {
					out = append(out, v)
				}
			}
		case segIndex:
			if a, ok := n.([]any); ok {
				idx := s.index
				if idx < 0 {
					idx += len(a)
				}
				if idx >= 0 && idx < len(a) {
					out = append(out, a[idx])
				}
			}
		case segUnionIndexes:
			if a, ok := n.([]any); ok {
				for _, idx := range s.indexes {
					if idx < 0 {
						idx += len(a)
					}
					if idx >= 0 && idx < len(a) {
						out = append(out, a[idx])
					}
				}
			}
		case segUnionNames:
			if m, ok := n.(map[string]any); ok {
				for _, name := range s.names {
					if v, ok := m[name]; ok {
						out = append(out, v)
					}
				}
			}
		case segWildcard:
			out = append(out, children(n)...)
		case segSlice:
			if a, ok := n.([]any); ok {
				out = append(out, sliceOf(a, s.slice)...)
			}
		case segFilter:
			for _, c := range children(n) {
				if truthy(s.filter.eval(c, r)) {
					out = append(out, c)
				}
			}
		case segDescend:
			out = append(out, descend(n, s.name)...)
		}
	}
	return out
}

func children(n any) []any {
	switch x := n.(type) {
	case []any:
		return x
	case map[string]any:
		out := make([]any, 0, len(x))
		for _, k := range sortedKeys(x) {
			out = append(out, x[k])
		}
		return out
	}
	return nil
}

// descend collects, depth first, every value under n named name (or every
// value when name is empty).
func descend(n any, name string) []any {
	var out []any
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(x) {
				if name == "" || k == name {
					out = append(out, x[k])
				}
			}
			for _, k := range sortedKeys(x) {
				walk(x[k])
			}
		case []any:
			for _, e := range x {
				if name == "" {
					out = append(out, e)
				}
			}
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(n)
	return out
}

func sliceOf(a []any, sl [3]*int) []any {
	n := len(a)
	step := 1
	if sl[2] != nil {
		step = *sl[2]
	}
	norm := func(p *int, def int) int {
		if p == nil {
			return def
		}
		v := *p
		if v < 0 {
			v += n
		}
		if v < 0 {
			v = 0
		}
		if v > n {
			v = n
		}
		return v
	}
	var out []any
	if step > 0 {
		start, end := norm(sl[0], 0), norm(sl[1], n)
		for i := start; i < end; i += step {
			out = append(out, a[i])
		}
		return out
	}
	start, end := norm(sl[0], n-1), -1
	if sl[1] != nil {
		end = norm(sl[1], -1)
	}
	if start >= n {
		start = n - 1
	}
	for i := start; i > end; i += step {
		out = append(out, a[i])
	}
	return out
}

// setPath returns a copy of doc with value stored at the reference path,
// creating intermediate objects as needed.
func setPath(doc any, segs []pathSeg, value any) (any, bool) {
	if len(segs) == 0 {
		return value, true
	}
	s := segs[0]
	switch s.kind {
	case segName:
		var m map[string]any
		switch x := doc.(type) {
		case map[string]any:
			m = cloneMap(x)
		case nil:
			m = map[string]any{}
		default:
			return nil, false
		}
		child, ok := setPath(m[s.name], segs[1:], value)
		if !ok {
			return nil, false
		}
		m[s.name] = child
		return m, true
	case segIndex:
		a, ok := doc.([]any)
		if !ok {
			return nil, false
		}
		idx := s.index
		if idx < 0 {
			idx += len(a)
		}
		if idx < 0 || idx >= len(a) {
			return nil, false
		}
		cp := append([]any(nil), a...)
		child, ok := setPath(cp[idx], segs[1:], value)
		if !ok {
			return nil, false
		}
		cp[idx] = child
		return cp, true
	}
	return nil, false
}

// ---- filter expressions: [?( ... )] ----

type filterNode interface {
	eval(cur any, r *roots) any
}

type filterOr struct{ l, r filterNode }
type filterAnd struct{ l, r filterNode }
type filterNot struct{ x filterNode }
type filterCmp struct {
	op   string
	l, r filterNode
}
type filterRegex struct {
	x  filterNode
	re *regexp.Regexp
}
type filterLit struct{ v any }

// filterRef is @... or $... inside a filter; missing is a distinct value.
type filterRef struct {
	current bool
	path    *jsonPath
}

type missing struct{}

func (f filterOr) eval(c any, r *roots) any  { return truthy(f.l.eval(c, r)) || truthy(f.r.eval(c, r)) }
func (f filterAnd) eval(c any, r *roots) any { return truthy(f.l.eval(c, r)) && truthy(f.r.eval(c, r)) }
func (f filterNot) eval(c any, r *roots) any { return !truthy(f.x.eval(c, r)) }
func (f filterLit) eval(any, *roots) any     { return f.v }
func (f filterRegex) eval(c any, r *roots) any {
	s, ok := f.x.eval(c, r).(string)
	return ok && f.re.MatchString(s)
}

func (f filterRef) eval(c any, r *roots) any {
	rr := r
	if f.current {
		rr = &roots{input: c, context: r.context, vars: r.vars}
	}
	v, err := f.path.eval(rr)
	if err != nil {
		return missing{}
	}
	return v
}

func (f filterCmp) eval(c any, r *roots) any {
	a, b := f.l.eval(c, r), f.r.eval(c, r)
	if _, ok := a.(missing); ok {
		return false
	}
	if _, ok := b.(missing); ok {
		return false
	}
	switch f.op {
	case "==":
		return jsonEqual(a, b)
	case "!=":
		return !jsonEqual(a, b)
	}
	if fa, ok := toFloat(a); ok {
		if fb, ok := toFloat(b); ok {
			switch f.op {
			case "<":
				return fa < fb
			case "<=":
				return fa <= fb
			case ">":
				return fa > fb
			case ">=":
				return fa >= fb
			}
		}
		return false
	}
	sa, ok1 := a.(string)
	sb, ok2 := b.(string)
	if !ok1 || !ok2 {
		return false
	}
	switch f.op {
	case "<":
		return sa < sb
	case "<=":
		return sa <= sb
	case ">":
		return sa > sb
	case ">=":
		return sa >= sb
	}
	return false
}

func truthy(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case missing, nil:
		return false
	}
	return true // an existing node
}

type filterParser struct {
	src string
	pos int
}

func (p *filterParser) peek(s string) bool {
	p.pos = skipSpace(p.src, p.pos)
	return strings.HasPrefix(p.src[p.pos:], s)
}

func (p *filterParser) parseOr() (filterNode, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.peek("||") {
		p.pos += 2
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = filterOr{l, r}
	}
	return l, nil
}

func (p *filterParser) parseAnd() (filterNode, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.peek("&&") {
		p.pos += 2
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = filterAnd{l, r}
	}
	return l, nil
}

func (p *filterParser) parseUnary() (filterNode, error) {
	if p.peek("!") && !p.peek("!=") {
		p.pos++
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return filterNot{x}, nil
	}
	if p.peek("(") {
		p.pos++
		x, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if !p.peek(")") {
			return nil, fmt.Errorf("expected ')' in filter")
		}
		p.pos++
		return x, nil
	}
	l, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	for _, op := range []string{"==", "!=", "<=", ">=", "<", ">", "=~"} {
		if p.peek(op) {
			p.pos += len(op)
			if op == "=~" {
				p.pos = skipSpace(p.src, p.pos)
				if p.pos >= len(p.src) || p.src[p.pos] != '/' {
					return nil, fmt.Errorf("expected /regex/ after =~")
				}
				end := strings.IndexByte(p.src[p.pos+1:], '/')
				if end < 0 {
					return nil, fmt.Errorf("unterminated regex")
				}
				pat := p.src[p.pos+1 : p.pos+1+end]
				p.pos += end + 2
				if p.pos < len(p.src) && p.src[p.pos] == 'i' {
					pat = "(?i)" + pat
					p.pos++
				}
				re, err := regexp.Compile(pat)
				if err != nil {
					return nil, fmt.Errorf("bad regex: %w", err)
				}
				return filterRegex{l, re}, nil
			}
			r, err := p.parseOperand()
			if err != nil {
				return nil, err
			}
			return filterCmp{op, l, r}, nil
		}
	}
	return l, nil
}

func (p *filterParser) parseOperand() (filterNode, error) {
	p.pos = skipSpace(p.src, p.pos)
	if p.pos >= len(p.src) {
		return nil, fmt.Errorf("unexpected end of filter")
	}
	c := p.src[p.pos]
	switch {
	case c == '@' || c == '$':
		start := p.pos
		p.pos++
		if c == '$' && p.pos < len(p.src) && p.src[p.pos] == '$' {
			p.pos++
		}
		for p.pos < len(p.src) {
			ch := p.src[p.pos]
			if ch == '.' || isVarChar(ch) || ch == '-' {
				p.pos++
				continue
			}
			if ch == '[' {
				depth := 0
				for p.pos < len(p.src) {
					if p.src[p.pos] == '[' {
						depth++
					} else if p.src[p.pos] == ']' {
						depth--
						if depth == 0 {
							p.pos++
							break
						}
					}
					p.pos++
				}
				continue
			}
			break
		}
		text := p.src[start:p.pos]
		cur := c == '@'
		if cur {
			text = "$" + text[1:]
		}
		path, err := parsePath(text)
		if err != nil {
			return nil, err
		}
		return filterRef{current: cur, path: path}, nil
	case c == '\'' || c == '"':
		s, next, err := readQuoted(p.src, p.pos)
		if err != nil {
			return nil, err
		}
		p.pos = next
		return filterLit{s}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := p.pos
		p.pos++
		for p.pos < len(p.src) && strings.IndexByte("0123456789.eE+-", p.src[p.pos]) >= 0 {
			p.pos++
		}
		text := p.src[start:p.pos]
		if _, err := strconv.ParseFloat(text, 64); err != nil {
			return nil, fmt.Errorf("bad number %q in filter", text)
		}
		return filterLit{jsonNumber(text)}, nil
	}
	for _, kw := range []struct {
		s string
		v any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if strings.HasPrefix(p.src[p.pos:], kw.s) {
			p.pos += len(kw.s)
			return filterLit{kw.v}, nil
		}
	}
	return nil, fmt.Errorf("unexpected %q in filter", c)
}
