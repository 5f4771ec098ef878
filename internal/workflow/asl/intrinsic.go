package asl

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// This file implements the intrinsic functions of JSONPath states
// ("States.Format('{}', $.x)"). Calls are parsed once, when the definition is
// parsed, and evaluated against a state's roots.

// intrinsicArg is one argument: a literal, a path, or a nested call.
type intrinsicArg struct {
	lit     any
	isLit   bool
	path    *jsonPath
	call    *intrinsicCall
	rawText string
}

type intrinsicCall struct {
	name string // without the "States." prefix
	args []intrinsicArg
	src  string
}

// arity: min and max number of arguments (-1: unbounded).
var intrinsicArity = map[string][2]int{
	"Format":         {1, -1},
	"StringToJson":   {1, 1},
	"JsonToString":   {1, 1},
	"Array":          {0, -1},
	"ArrayPartition": {2, 2},
	"ArrayContains":  {2, 2},
	"ArrayRange":     {3, 3},
	"ArrayGetItem":   {2, 2},
	"ArrayLength":    {1, 1},
	"ArrayUnique":    {1, 1},
	"Base64Encode":   {1, 1},
	"Base64Decode":   {1, 1},
	"Hash":           {2, 2},
	"JsonMerge":      {3, 3},
	"MathRandom":     {2, 3},
	"MathAdd":        {2, 2},
	"StringSplit":    {2, 2},
	"UUID":           {0, 0},
}

// isIntrinsic reports whether a ".$" value is written as a function call.
func isIntrinsic(s string) bool { return strings.HasPrefix(s, "States.") }

func parseIntrinsic(src string) (*intrinsicCall, error) {
	p := &intrinsicParser{src: src}
	call, err := p.call()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos != len(src) {
		return nil, fmt.Errorf("unexpected text after call: %q", src[p.pos:])
	}
	return call, nil
}

type intrinsicParser struct {
	src string
	pos int
}

func (p *intrinsicParser) space() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n') {
		p.pos++
	}
}

func (p *intrinsicParser) call() (*intrinsicCall, error) {
	start := p.pos
	if !strings.HasPrefix(p.src[p.pos:], "States.") {
		return nil, fmt.Errorf("expected 'States.' at %d", p.pos)
	}
	p.pos += len("States.")
	nameStart := p.pos
	for p.pos < len(p.src) && isVarChar(p.src[p.pos]) {
		p.pos++
	}
	name := p.src[nameStart:p.pos]
	ar, ok := intrinsicArity[name]
	if !ok {
		return nil, fmt.Errorf("unknown intrinsic function 'States.%s'", name)
	}
	p.space()
	if p.pos >= len(p.src) || p.src[p.pos] != '(' {
		return nil, fmt.Errorf("expected '(' after States.%s", name)
	}
	p.pos++
	c := &intrinsicCall{name: name}
	p.space()
	if p.pos < len(p.src) && p.src[p.pos] == ')' {
		p.pos++
	} else {
		for {
			p.space()
			arg, err := p.arg()
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, arg)
			p.space()
			if p.pos >= len(p.src) {
				return nil, fmt.Errorf("unterminated call to States.%s", name)
			}
			if p.src[p.pos] == ',' {
				p.pos++
				continue
			}
			if p.src[p.pos] == ')' {
				p.pos++
				break
			}
			return nil, fmt.Errorf("unexpected %q in arguments of States.%s", p.src[p.pos], name)
		}
	}
	if len(c.args) < ar[0] || (ar[1] >= 0 && len(c.args) > ar[1]) {
		return nil, fmt.Errorf("States.%s called with %d argument(s)", name, len(c.args))
	}
	if name == "Format" && c.args[0].isLit {
		if _, ok := c.args[0].lit.(string); !ok {
			return nil, fmt.Errorf("the first argument of States.Format must be a string")
		}
	}
	c.src = p.src[start:p.pos]
	return c, nil
}

func (p *intrinsicParser) arg() (intrinsicArg, error) {
	if p.pos >= len(p.src) {
		return intrinsicArg{}, fmt.Errorf("missing argument")
	}
	rest := p.src[p.pos:]
	switch {
	case rest[0] == '\'':
		var b strings.Builder
		for j := p.pos + 1; j < len(p.src); j++ {
			c := p.src[j]
			if c == '\\' && j+1 < len(p.src) {
				n := p.src[j+1]
				switch n {
				case '\'', '\\':
					b.WriteByte(n)
					j++
					continue
				case '{', '}':
					// keep the escape: States.Format needs to see it
					b.WriteByte('\\')
					b.WriteByte(n)
					j++
					continue
				}
			}
			if c == '\'' {
				p.pos = j + 1
				return intrinsicArg{lit: b.String(), isLit: true}, nil
			}
			b.WriteByte(c)
		}
		return intrinsicArg{}, fmt.Errorf("unterminated string literal")
	case strings.HasPrefix(rest, "States."):
		c, err := p.call()
		if err != nil {
			return intrinsicArg{}, err
		}
		return intrinsicArg{call: c}, nil
	case rest[0] == '$':
		start := p.pos
		depth := 0
		var quote byte
		for p.pos < len(p.src) {
			c := p.src[p.pos]
			if quote != 0 {
				if c == '\\' {
					// A trailing backslash must not step past the end.
					p.pos = min(p.pos+2, len(p.src))
					continue
				}
				if c == quote {
					quote = 0
				}
				p.pos++
				continue
			}
			if c == '\'' || c == '"' {
				quote = c
			} else if c == '[' || c == '(' {
				depth++
			} else if c == ']' || (c == ')' && depth > 0) {
				depth--
			} else if depth == 0 && (c == ',' || c == ')' || c == ' ') {
				break
			}
			p.pos++
		}
		text := p.src[start:p.pos]
		path, err := parsePath(text)
		if err != nil {
			return intrinsicArg{}, err
		}
		return intrinsicArg{path: path, rawText: text}, nil
	}
	for _, kw := range []struct {
		s string
		v any
	}{{"true", true}, {"false", false}, {"null", nil}} {
		if strings.HasPrefix(rest, kw.s) {
			p.pos += len(kw.s)
			return intrinsicArg{lit: kw.v, isLit: true}, nil
		}
	}
	start := p.pos
	for p.pos < len(p.src) && strings.IndexByte("0123456789.eE+-", p.src[p.pos]) >= 0 {
		p.pos++
	}
	text := p.src[start:p.pos]
	if text == "" {
		return intrinsicArg{}, fmt.Errorf("unexpected %q at %d", p.src[p.pos], p.pos)
	}
	if _, err := strconv.ParseFloat(text, 64); err != nil {
		return intrinsicArg{}, fmt.Errorf("bad number %q", text)
	}
	return intrinsicArg{lit: json.Number(text), isLit: true}, nil
}

// intrinsicEnv is what a call may read: the roots and a random source.
type intrinsicEnv struct {
	roots *roots
	rand  func() uint64
}

func intrinsicFail(format string, args ...any) error {
	return &stateFailure{name: ErrIntrinsicFailure, msg: fmt.Sprintf(format, args...)}
}

func (c *intrinsicCall) eval(env *intrinsicEnv) (any, error) {
	args := make([]any, len(c.args))
	for i, a := range c.args {
		switch {
		case a.call != nil:
			v, err := a.call.eval(env)
			if err != nil {
				return nil, err
			}
			args[i] = v
		case a.path != nil:
			v, err := a.path.eval(env.roots)
			if err != nil {
				return nil, &stateFailure{name: ErrRuntime, msg: fmt.Sprintf(
					"The JsonPath argument '%s' of the intrinsic function '%s' could not be found: %s", a.rawText, c.src, err)}
			}
			args[i] = v
		default:
			args[i] = a.lit
		}
	}
	v, err := callIntrinsic(c.name, args, env)
	if err != nil {
		if _, ok := err.(*stateFailure); ok {
			return nil, err
		}
		return nil, intrinsicFail("Invalid arguments in States.%s: %s", c.name, err)
	}
	return v, nil
}

func argString(args []any, i int) (string, error) {
	s, ok := args[i].(string)
	if !ok {
		return "", fmt.Errorf("argument %d must be a string, got %s", i+1, typeName(args[i]))
	}
	return s, nil
}

func argArray(args []any, i int) ([]any, error) {
	a, ok := args[i].([]any)
	if !ok {
		return nil, fmt.Errorf("argument %d must be an array, got %s", i+1, typeName(args[i]))
	}
	return a, nil
}

// argInt accepts integers; like AWS it truncates non-integral numbers.
func argInt(args []any, i int) (int64, error) {
	f, ok := toFloat(args[i])
	if !ok {
		return 0, fmt.Errorf("argument %d must be a number, got %s", i+1, typeName(args[i]))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1<<53 {
		return 0, fmt.Errorf("argument %d is out of range", i+1)
	}
	if n, ok := toInt(args[i]); ok {
		return n, nil
	}
	return int64(f), nil
}

func callIntrinsic(name string, args []any, env *intrinsicEnv) (any, error) {
	switch name {
	case "Format":
		tmpl, err := argString(args, 0)
		if err != nil {
			return nil, err
		}
		return formatTemplate(tmpl, args[1:])
	case "StringToJson":
		s, err := argString(args, 0)
		if err != nil {
			return nil, err
		}
		v, err := decodeJSON([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("argument is not valid JSON: %v", err)
		}
		return v, nil
	case "JsonToString":
		return encodeString(args[0]), nil
	case "Array":
		return append([]any{}, args...), nil
	case "ArrayPartition":
		a, err := argArray(args, 0)
		if err != nil {
			return nil, err
		}
		n, err := argInt(args, 1)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return nil, fmt.Errorf("chunk size must be greater than 0")
		}
		out := []any{}
		for i := 0; i < len(a); i += int(n) {
			end := min(i+int(n), len(a))
			out = append(out, append([]any{}, a[i:end]...))
		}
		return out, nil
	case "ArrayContains":
		a, err := argArray(args, 0)
		if err != nil {
			return nil, err
		}
		for _, e := range a {
			if jsonEqual(e, args[1]) {
				return true, nil
			}
		}
		return false, nil
	case "ArrayRange":
		start, err := argInt(args, 0)
		if err != nil {
			return nil, err
		}
		end, err := argInt(args, 1)
		if err != nil {
			return nil, err
		}
		step, err := argInt(args, 2)
		if err != nil {
			return nil, err
		}
		if step == 0 {
			return nil, fmt.Errorf("step cannot be 0")
		}
		out := []any{}
		for i := start; (step > 0 && i <= end) || (step < 0 && i >= end); i += step {
			if len(out) == 1000 {
				return nil, fmt.Errorf("the range has more than 1000 items")
			}
			out = append(out, intValue(i))
		}
		return out, nil
	case "ArrayGetItem":
		a, err := argArray(args, 0)
		if err != nil {
			return nil, err
		}
		i, err := argInt(args, 1)
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(a)) {
			return nil, fmt.Errorf("index %d is out of bounds for an array of %d item(s)", i, len(a))
		}
		return a[i], nil
	case "ArrayLength":
		a, err := argArray(args, 0)
		if err != nil {
			return nil, err
		}
		return intValue(int64(len(a))), nil
	case "ArrayUnique":
		a, err := argArray(args, 0)
		if err != nil {
			return nil, err
		}
		out := []any{}
	next:
		for _, e := range a {
			for _, seen := range out {
				if jsonEqual(seen, e) {
					continue next
				}
			}
			out = append(out, e)
		}
		return out, nil
	case "Base64Encode":
		s, err := argString(args, 0)
		if err != nil {
			return nil, err
		}
		if len(s) > 10000 {
			return nil, fmt.Errorf("input exceeds 10000 characters")
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "Base64Decode":
		s, err := argString(args, 0)
		if err != nil {
			return nil, err
		}
		if len(s) > 10000 {
			return nil, fmt.Errorf("input exceeds 10000 characters")
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("input is not valid base64: %v", err)
		}
		return string(b), nil
	case "Hash":
		var data string
		if s, ok := args[0].(string); ok {
			data = s
		} else {
			data = encodeString(args[0])
		}
		alg, err := argString(args, 1)
		if err != nil {
			return nil, err
		}
		var h hash.Hash
		switch alg {
		case "MD5":
			h = md5.New()
		case "SHA-1":
			h = sha1.New()
		case "SHA-256":
			h = sha256.New()
		case "SHA-384":
			h = sha512.New384()
		case "SHA-512":
			h = sha512.New()
		default:
			return nil, fmt.Errorf("unsupported hash algorithm %q (use MD5, SHA-1, SHA-256, SHA-384 or SHA-512)", alg)
		}
		h.Write([]byte(data))
		return hex.EncodeToString(h.Sum(nil)), nil
	case "JsonMerge":
		a, ok1 := args[0].(map[string]any)
		b, ok2 := args[1].(map[string]any)
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("the first two arguments must be objects")
		}
		deep, ok := args[2].(bool)
		if !ok {
			return nil, fmt.Errorf("the third argument must be a boolean")
		}
		if deep {
			return nil, fmt.Errorf("deep merge is not supported; the third argument must be false")
		}
		out := cloneMap(a)
		for k, v := range b {
			out[k] = v
		}
		return out, nil
	case "MathRandom":
		lo, err := argInt(args, 0)
		if err != nil {
			return nil, err
		}
		hi, err := argInt(args, 1)
		if err != nil {
			return nil, err
		}
		if hi <= lo {
			return nil, fmt.Errorf("the end (%d) must be greater than the start (%d)", hi, lo)
		}
		var r uint64
		if len(args) == 3 {
			seed, err := argInt(args, 2)
			if err != nil {
				return nil, err
			}
			r = rand.New(rand.NewPCG(uint64(seed), 0)).Uint64()
		} else {
			r = env.rand()
		}
		return intValue(lo + int64(r%uint64(hi-lo))), nil
	case "MathAdd":
		a, err := argInt(args, 0)
		if err != nil {
			return nil, err
		}
		b, err := argInt(args, 1)
		if err != nil {
			return nil, err
		}
		return intValue(a + b), nil
	case "StringSplit":
		s, err := argString(args, 0)
		if err != nil {
			return nil, err
		}
		delims, err := argString(args, 1)
		if err != nil {
			return nil, err
		}
		parts := strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(delims, r) })
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case "UUID":
		return newUUID(env.rand), nil
	}
	return nil, fmt.Errorf("unknown function")
}

// formatTemplate replaces each {} with the next argument. \{ and \} are
// literal braces.
func formatTemplate(tmpl string, args []any) (any, error) {
	var b strings.Builder
	n := 0
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c == '\\' && i+1 < len(tmpl) && (tmpl[i+1] == '{' || tmpl[i+1] == '}' || tmpl[i+1] == '\\') {
			b.WriteByte(tmpl[i+1])
			i++
			continue
		}
		if c == '{' && i+1 < len(tmpl) && tmpl[i+1] == '}' {
			if n >= len(args) {
				return nil, fmt.Errorf("the template has more placeholders than arguments")
			}
			b.WriteString(javaString(args[n]))
			n++
			i++
			continue
		}
		b.WriteByte(c)
	}
	if n != len(args) {
		return nil, fmt.Errorf("the template has %d placeholder(s) for %d argument(s)", n, len(args))
	}
	return b.String(), nil
}

// newUUID builds a version 4 UUID from the execution's random stream.
func newUUID(r func() uint64) string {
	var b [16]byte
	hi, lo := r(), r()
	for i := 0; i < 8; i++ {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
