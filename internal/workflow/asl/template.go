package asl

import (
	"fmt"
	"strings"
)

// A template is a JSON value some of whose parts are computed: in JSONPath
// states, object keys ending in ".$" hold a path or an intrinsic call
// (Parameters, ResultSelector, ItemSelector, Assign); in JSONata states, any
// string written "{% expr %}" is an expression (Arguments, Output, Assign,
// Items, ItemSelector, Condition).

type tmplKind uint8

const (
	tmplLiteral tmplKind = iota
	tmplObject
	tmplArray
	tmplPath
	tmplIntrinsic
	tmplExpr
)

type template struct {
	kind  tmplKind
	lit   any
	keys  []string
	vals  []*template
	items []*template
	path  *jsonPath
	call  *intrinsicCall
	expr  *jsonataExpr
	src   string // expression or path as written
	field string // field name for messages ("item.$", "Output", "Assign/x")
}

func (t *template) static() bool { return t.kind == tmplLiteral }

// pathTemplate reads a JSONPath payload template field.
func (p *parser) pathTemplate(o *obj, k string) *template {
	v, ok := o.get(k)
	if !ok {
		return nil
	}
	return p.buildPathTemplate(v, o.field(k), k)
}

func (p *parser) buildPathTemplate(v any, ptr, field string) *template {
	switch x := v.(type) {
	case map[string]any:
		t := &template{kind: tmplObject, field: field}
		dynamic := false
		for _, k := range sortedKeys(x) {
			var child *template
			if strings.HasSuffix(k, ".$") {
				name := strings.TrimSuffix(k, ".$")
				s, ok := x[k].(string)
				var node *template
				var err error
				if ok {
					node, err = pathOrIntrinsic(s)
				}
				if !ok || err != nil {
					p.fail("SCHEMA_VALIDATION_FAILED", ptr+"/"+k, "The value for the field '%s' must be a valid JSONPath or a valid intrinsic function call", k)
					continue
				}
				node.field = k
				child = node
				k = name
				dynamic = true
			} else {
				child = p.buildPathTemplate(x[k], ptr+"/"+k, k)
				if !child.static() {
					dynamic = true
				}
			}
			t.keys = append(t.keys, k)
			t.vals = append(t.vals, child)
		}
		if !dynamic {
			return &template{kind: tmplLiteral, lit: literalOf(t)}
		}
		return t
	case []any:
		t := &template{kind: tmplArray, field: field}
		dynamic := false
		for i, e := range x {
			child := p.buildPathTemplate(e, fmt.Sprintf("%s[%d]", ptr, i), field)
			if !child.static() {
				dynamic = true
			}
			t.items = append(t.items, child)
		}
		if !dynamic {
			return &template{kind: tmplLiteral, lit: x}
		}
		return t
	}
	return &template{kind: tmplLiteral, lit: v}
}

// literalOf rebuilds the plain value of a template with no dynamic parts
// (keys of a static object may have been renamed, so do not reuse the input).
func literalOf(t *template) any {
	switch t.kind {
	case tmplObject:
		m := make(map[string]any, len(t.keys))
		for i, k := range t.keys {
			m[k] = literalOf(t.vals[i])
		}
		return m
	case tmplArray:
		a := make([]any, len(t.items))
		for i, e := range t.items {
			a[i] = literalOf(e)
		}
		return a
	}
	return t.lit
}

// pathOrIntrinsic compiles the value of a ".$" field or an ErrorPath.
func pathOrIntrinsic(s string) (*template, error) {
	if isIntrinsic(s) {
		call, err := parseIntrinsic(s)
		if err != nil {
			return nil, err
		}
		return &template{kind: tmplIntrinsic, call: call, src: s}, nil
	}
	path, err := parsePath(s)
	if err != nil {
		return nil, err
	}
	return &template{kind: tmplPath, path: path, src: s}, nil
}

// jsonataTemplate reads a JSONata-mode field.
func (p *parser) jsonataTemplate(o *obj, k string) *template {
	v, ok := o.get(k)
	if !ok {
		return nil
	}
	return p.buildJSONataTemplate(v, o.field(k), k)
}

func (p *parser) buildJSONataTemplate(v any, ptr, field string) *template {
	switch x := v.(type) {
	case string:
		if isJSONataString(x) {
			e := p.expr(ptr, field, x)
			if e == nil {
				return &template{kind: tmplLiteral, lit: x}
			}
			return &template{kind: tmplExpr, expr: e, src: e.src, field: field}
		}
	case map[string]any:
		t := &template{kind: tmplObject, field: field}
		dynamic := false
		for _, k := range sortedKeys(x) {
			child := p.buildJSONataTemplate(x[k], ptr+"/"+k, field+"/"+k)
			if !child.static() {
				dynamic = true
			}
			t.keys = append(t.keys, k)
			t.vals = append(t.vals, child)
		}
		if !dynamic {
			return &template{kind: tmplLiteral, lit: x}
		}
		return t
	case []any:
		t := &template{kind: tmplArray, field: field}
		dynamic := false
		for i, e := range x {
			child := p.buildJSONataTemplate(e, fmt.Sprintf("%s[%d]", ptr, i), field)
			if !child.static() {
				dynamic = true
			}
			t.items = append(t.items, child)
		}
		if !dynamic {
			return &template{kind: tmplLiteral, lit: x}
		}
		return t
	}
	return &template{kind: tmplLiteral, lit: v}
}

// evaluator bundles what templates need at run time.
type evaluator struct {
	roots   roots
	jenv    *jsonataEnv
	intrEnv *intrinsicEnv
}

func (ev *evaluator) eval(t *template) (any, error) {
	switch t.kind {
	case tmplLiteral:
		return t.lit, nil
	case tmplObject:
		m := make(map[string]any, len(t.keys))
		for i, k := range t.keys {
			v, err := ev.eval(t.vals[i])
			if err != nil {
				return nil, err
			}
			m[k] = v
		}
		return m, nil
	case tmplArray:
		a := make([]any, len(t.items))
		for i, e := range t.items {
			v, err := ev.eval(e)
			if err != nil {
				return nil, err
			}
			a[i] = v
		}
		return a, nil
	case tmplPath:
		v, err := t.path.eval(&ev.roots)
		if err != nil {
			where := "input"
			switch t.path.root {
			case rootContext:
				where = "context object"
			case rootVar:
				return nil, runtimeFail("The JsonPath argument for the field '%s' could not be found: %s", t.field, err)
			}
			doc := ev.roots.input
			if t.path.root == rootContext && ev.roots.context != nil {
				doc = ev.roots.context()
			}
			return nil, runtimeFail("The JsonPath argument for the field '%s' could not be found in the %s '%s'", t.field, where, encodeString(doc))
		}
		return v, nil
	case tmplIntrinsic:
		return t.call.eval(ev.intrEnv)
	case tmplExpr:
		return ev.evalExpr(t.expr, t.field)
	}
	return nil, fmt.Errorf("unknown template kind %d", t.kind)
}

func (ev *evaluator) evalExpr(e *jsonataExpr, field string) (any, error) {
	v, err := e.eval(ev.jenv)
	if err == errUndefined {
		return nil, queryFail("The JSONata expression '%s' specified for the field '%s' returned nothing (undefined).", e.src, field)
	}
	if err != nil {
		return nil, queryFail("The JSONata expression '%s' specified for the field '%s' threw an error during evaluation: %v", e.src, field, err)
	}
	return v, nil
}
