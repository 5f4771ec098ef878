package pattern

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"sort"
	"strings"
)

// Pattern is a compiled event pattern. It is immutable and safe for
// concurrent use.
type Pattern struct {
	root   *node
	source string
}

// node is one pattern object: every field must match and, for each "$or"
// group, at least one alternative must match the same event object.
type node struct {
	fields []field
	or     [][]*node
}

// field is one key of a pattern object: either a nested object (child) or a
// leaf list of matchers, any of which may match.
type field struct {
	key      string
	child    *node
	matchers []matcher
}

type kind uint8

const (
	kString kind = iota
	kNumber
	kBool
	kNull
	kPrefix
	kPrefixFold
	kSuffix
	kSuffixFold
	kEqualsFold
	kWildcard
	kAnythingBut
	kNumeric
	kExists
	kCIDR
)

// matcher is one element of a leaf array. A flat struct with a kind switch
// rather than an interface keeps evaluation free of indirect calls.
type matcher struct {
	kind   kind
	s      string
	n      float64
	b      bool // kBool value; kExists: whether the field must exist
	inner  []matcher
	conds  []numCond
	prefix netip.Prefix
	wild   []wildPart
}

type numCond struct {
	op string
	n  float64
}

// Error is a compile error. Path names the offending field ("detail.price",
// "$or[1].source"), empty for the pattern as a whole.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "pattern: " + e.Msg
	}
	return e.Path + ": " + e.Msg
}

func errAt(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Compile parses and validates an EventBridge-style pattern.
//
// # Errors
//
// Every error is an *Error naming the path of the offending field.
func Compile(src []byte) (*Pattern, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	// Numbers stay text until validated, so a number too large for float64
	// is reported instead of silently becoming +Inf.
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &Error{Msg: "invalid JSON: " + err.Error()}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &Error{Msg: "invalid JSON: trailing data after the pattern"}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Msg: "a pattern must be a JSON object"}
	}
	root, err := compileObject("", obj)
	if err != nil {
		return nil, err
	}
	return &Pattern{root: root, source: string(src)}, nil
}

// MustCompile is Compile for patterns known at build time (tests, examples);
// it panics on error.
func MustCompile(src string) *Pattern {
	p, err := Compile([]byte(src))
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the source the pattern was compiled from.
func (p *Pattern) String() string { return p.source }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func compileObject(path string, obj map[string]any) (*node, error) {
	if len(obj) == 0 {
		if path == "" {
			return nil, errAt(path, "empty pattern: name at least one field")
		}
		return nil, errAt(path, "empty object: name at least one field")
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	// Sorted so that errors and evaluation order do not depend on map order.
	sort.Strings(keys)
	n := &node{}
	for _, k := range keys {
		v := obj[k]
		p := join(path, k)
		if k == "$or" {
			alts, err := compileOr(p, v)
			if err != nil {
				return nil, err
			}
			n.or = append(n.or, alts)
			continue
		}
		switch v := v.(type) {
		case map[string]any:
			child, err := compileObject(p, v)
			if err != nil {
				return nil, err
			}
			n.fields = append(n.fields, field{key: k, child: child})
		case []any:
			ms, err := compileLeaf(p, v)
			if err != nil {
				return nil, err
			}
			n.fields = append(n.fields, field{key: k, matchers: ms})
		default:
			return nil, errAt(p, "expected an array of values or an object, got %s", describe(v))
		}
	}
	return n, nil
}

func compileOr(path string, v any) ([]*node, error) {
	arr, ok := v.([]any)
	if !ok || len(arr) < 2 {
		return nil, errAt(path, "expected an array of at least two objects")
	}
	alts := make([]*node, 0, len(arr))
	for i, a := range arr {
		p := fmt.Sprintf("%s[%d]", path, i)
		obj, ok := a.(map[string]any)
		if !ok {
			return nil, errAt(p, "expected an object, got %s", describe(a))
		}
		n, err := compileObject(p, obj)
		if err != nil {
			return nil, err
		}
		alts = append(alts, n)
	}
	return alts, nil
}

func compileLeaf(path string, arr []any) ([]matcher, error) {
	if len(arr) == 0 {
		return nil, errAt(path, "empty array: list at least one value")
	}
	ms := make([]matcher, 0, len(arr))
	for _, v := range arr {
		m, err := compileValue(path, v)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

func compileValue(path string, v any) (matcher, error) {
	switch v := v.(type) {
	case string:
		return matcher{kind: kString, s: v}, nil
	case json.Number:
		n, err := number(path, v)
		return matcher{kind: kNumber, n: n}, err
	case bool:
		return matcher{kind: kBool, b: v}, nil
	case nil:
		return matcher{kind: kNull}, nil
	case map[string]any:
		return compileOperator(path, v)
	default:
		return matcher{}, errAt(path, "nested arrays are not allowed in a value list")
	}
}

func number(path string, v json.Number) (float64, error) {
	f, err := v.Float64()
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, errAt(path, "number %s out of range", v.String())
	}
	return f, nil
}

func compileOperator(path string, obj map[string]any) (matcher, error) {
	if len(obj) != 1 {
		return matcher{}, errAt(path, "an operator object must have exactly one key, got %d", len(obj))
	}
	for op, arg := range obj {
		switch op {
		case "prefix", "suffix":
			return compileAffix(path, op, arg)
		case "equals-ignore-case":
			s, ok := arg.(string)
			if !ok {
				return matcher{}, errAt(path, "%s: expected a string, got %s", op, describe(arg))
			}
			return matcher{kind: kEqualsFold, s: s}, nil
		case "wildcard":
			s, ok := arg.(string)
			if !ok {
				return matcher{}, errAt(path, "%s: expected a string, got %s", op, describe(arg))
			}
			parts, err := compileWildcard(s)
			if err != nil {
				return matcher{}, errAt(path, "%s: %v", op, err)
			}
			return matcher{kind: kWildcard, s: s, wild: parts}, nil
		case "anything-but":
			return compileAnythingBut(path, arg)
		case "numeric":
			return compileNumeric(path, arg)
		case "exists":
			b, ok := arg.(bool)
			if !ok {
				return matcher{}, errAt(path, "exists: expected true or false, got %s", describe(arg))
			}
			return matcher{kind: kExists, b: b}, nil
		case "cidr":
			s, ok := arg.(string)
			if !ok {
				return matcher{}, errAt(path, "cidr: expected a string, got %s", describe(arg))
			}
			pfx, err := netip.ParsePrefix(s)
			if err != nil {
				return matcher{}, errAt(path, "cidr: invalid prefix %q", s)
			}
			return matcher{kind: kCIDR, s: s, prefix: pfx.Masked()}, nil
		default:
			return matcher{}, errAt(path, "unknown operator %q", op)
		}
	}
	panic("unreachable")
}

func compileAffix(path, op string, arg any) (matcher, error) {
	plain, fold := kPrefix, kPrefixFold
	if op == "suffix" {
		plain, fold = kSuffix, kSuffixFold
	}
	switch a := arg.(type) {
	case string:
		return matcher{kind: plain, s: a}, nil
	case map[string]any:
		s, ok := a["equals-ignore-case"].(string)
		if len(a) != 1 || !ok {
			return matcher{}, errAt(path, `%s: expected a string or {"equals-ignore-case": string}`, op)
		}
		return matcher{kind: fold, s: s}, nil
	default:
		return matcher{}, errAt(path, `%s: expected a string or {"equals-ignore-case": string}, got %s`, op, describe(arg))
	}
}

func compileAnythingBut(path string, arg any) (matcher, error) {
	const what = "anything-but"
	var inner []matcher
	switch a := arg.(type) {
	case string:
		inner = []matcher{{kind: kString, s: a}}
	case json.Number:
		n, err := number(path+": "+what, a)
		if err != nil {
			return matcher{}, err
		}
		inner = []matcher{{kind: kNumber, n: n}}
	case []any:
		if len(a) == 0 {
			return matcher{}, errAt(path, "%s: empty list", what)
		}
		for _, e := range a {
			switch e := e.(type) {
			case string:
				inner = append(inner, matcher{kind: kString, s: e})
			case json.Number:
				n, err := number(path+": "+what, e)
				if err != nil {
					return matcher{}, err
				}
				inner = append(inner, matcher{kind: kNumber, n: n})
			default:
				return matcher{}, errAt(path, "%s: list elements must be strings or numbers, got %s", what, describe(e))
			}
		}
	case map[string]any:
		if len(a) != 1 {
			return matcher{}, errAt(path, "%s: an operator object must have exactly one key, got %d", what, len(a))
		}
		for op, v := range a {
			var k kind
			switch op {
			case "prefix":
				k = kPrefix
			case "suffix":
				k = kSuffix
			case "equals-ignore-case":
				k = kEqualsFold
			case "wildcard":
				k = kWildcard
			default:
				return matcher{}, errAt(path, "%s: unsupported operator %q (want prefix, suffix, equals-ignore-case or wildcard)", what, op)
			}
			strs, err := stringOrList(v)
			if err != nil {
				return matcher{}, errAt(path, "%s: %s: %v", what, op, err)
			}
			for _, s := range strs {
				m := matcher{kind: k, s: s}
				if k == kWildcard {
					parts, err := compileWildcard(s)
					if err != nil {
						return matcher{}, errAt(path, "%s: wildcard: %v", what, err)
					}
					m.wild = parts
				}
				inner = append(inner, m)
			}
		}
	default:
		return matcher{}, errAt(path, "%s: expected a string, number, list or operator object, got %s", what, describe(arg))
	}
	return matcher{kind: kAnythingBut, inner: inner}, nil
}

func stringOrList(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		if len(v) == 0 {
			return nil, errors.New("empty list")
		}
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("expected strings, got %s", describe(e))
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("expected a string or a list of strings, got %s", describe(v))
	}
}

func compileNumeric(path string, arg any) (matcher, error) {
	arr, ok := arg.([]any)
	if !ok || len(arr) == 0 || len(arr)%2 != 0 {
		return matcher{}, errAt(path, "numeric: expected operator/number pairs")
	}
	var conds []numCond
	var lower, upper, eq bool
	for i := 0; i < len(arr); i += 2 {
		op, ok := arr[i].(string)
		if !ok {
			return matcher{}, errAt(path, "numeric: expected operator/number pairs")
		}
		num, ok := arr[i+1].(json.Number)
		if !ok {
			return matcher{}, errAt(path, "numeric: expected a number after %q, got %s", op, describe(arr[i+1]))
		}
		n, err := number(path+": numeric", num)
		if err != nil {
			return matcher{}, err
		}
		switch op {
		case ">", ">=":
			if lower {
				return matcher{}, errAt(path, "numeric: more than one lower bound")
			}
			lower = true
		case "<", "<=":
			if upper {
				return matcher{}, errAt(path, "numeric: more than one upper bound")
			}
			upper = true
		case "=":
			eq = true
		default:
			return matcher{}, errAt(path, "numeric: unknown operator %q (want <, <=, =, >, >=)", op)
		}
		conds = append(conds, numCond{op: op, n: n})
	}
	if eq && len(conds) > 1 {
		return matcher{}, errAt(path, `numeric: "=" cannot be combined with other conditions`)
	}
	return matcher{kind: kNumeric, conds: conds}, nil
}

// wildPart is a literal run of a wildcard pattern; star reports whether a '*'
// precedes it.
type wildPart struct {
	star bool
	lit  string
}

// compileWildcard splits s at unescaped '*'. The result always ends with a
// part; a trailing star is a final part with an empty literal.
func compileWildcard(s string) ([]wildPart, error) {
	var parts []wildPart
	var lit strings.Builder
	star := false
	prevStar := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '*' && s[i+1] != '\\') {
				return nil, errors.New(`a backslash may only escape '*' or '\'`)
			}
			i++
			lit.WriteByte(s[i])
			prevStar = false
		case '*':
			if prevStar {
				return nil, errors.New("consecutive '*' are not allowed")
			}
			parts = append(parts, wildPart{star: star, lit: lit.String()})
			lit.Reset()
			star = true
			prevStar = true
		default:
			lit.WriteByte(c)
			prevStar = false
		}
	}
	parts = append(parts, wildPart{star: star, lit: lit.String()})
	return parts, nil
}

func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("string %q", v)
	case json.Number:
		return "number " + v.String()
	case bool:
		return fmt.Sprintf("%t", v)
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}
