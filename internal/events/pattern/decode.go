package pattern

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// decodeEvent parses a JSON object into the same map[string]any that
// encoding/json.Unmarshal produces (float64 numbers, []any arrays).
//
// It exists for speed: matching runs once per event per rule set, and
// encoding/json's reflective decoder dominated the cost. It accepts exactly
// the JSON that encoding/json accepts (FuzzDecode holds it to that) and
// defers to encoding/json for strings with escapes or non-ASCII bytes, the
// rare and subtle case.
func decodeEvent(b []byte) (map[string]any, error) {
	return decodeEventPaths(b, nil)
}

// decodeEventPaths is decodeEvent keeping only what lies on the paths of t
// (all of the event when t is nil): a Set's rules read nothing else, and an
// event's other fields (ids, times, most of its data) are then checked as
// JSON but neither copied nor allocated. Array elements stay on the path of
// their array, as pattern evaluation sees them.
func decodeEventPaths(b []byte, t *pathTable) (map[string]any, error) {
	d := decoder{b: b, t: t, node: -1}
	d.ws()
	if d.i >= len(d.b) || d.b[d.i] != '{' {
		if d.i < len(d.b) && d.b[d.i] == 'n' {
			return nil, errors.New("event is null, not a JSON object")
		}
		// Let encoding/json phrase the error for anything else.
		var obj map[string]any
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, err
		}
		return nil, errors.New("event is not a JSON object")
	}
	v, err := d.value()
	if err != nil {
		return nil, err
	}
	d.ws()
	if d.i != len(d.b) {
		return nil, d.errorf("invalid character %q after top-level value", d.b[d.i])
	}
	return v.(map[string]any), nil
}

// maxDepth mirrors encoding/json's nesting limit, so hostile input cannot
// exhaust the stack.
const maxDepth = 10000

type decoder struct {
	b     []byte
	i     int
	depth int
	t     *pathTable // nil: keep everything
	node  int        // path of the value being decoded, -1 for the root
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

func (d *decoder) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) value() (any, error) {
	d.ws()
	if d.i >= len(d.b) {
		return nil, d.errorf("unexpected end of input")
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object()
	case c == '[':
		return d.array()
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.lit("true")
	case c == 'f':
		return false, d.lit("false")
	case c == 'n':
		return nil, d.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	default:
		return nil, d.errorf("invalid character %q looking for a value", c)
	}
}

func (d *decoder) lit(s string) error {
	if len(d.b)-d.i < len(s) || string(d.b[d.i:d.i+len(s)]) != s {
		return d.errorf("invalid literal, want %s", s)
	}
	d.i += len(s)
	return nil
}

func (d *decoder) enter() error {
	d.depth++
	if d.depth > maxDepth {
		return d.errorf("exceeded max depth")
	}
	return nil
}

func (d *decoder) object() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.i++ // '{'
	obj := make(map[string]any)
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		d.depth--
		return obj, nil
	}
	for {
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, d.errorf("expected a string key")
		}
		k, child, keep, err := d.key()
		if err != nil {
			return nil, err
		}
		d.ws()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, d.errorf("expected ':' after object key")
		}
		d.i++
		if keep {
			parent := d.node
			d.node = child
			v, err := d.value()
			d.node = parent
			if err != nil {
				return nil, err
			}
			obj[k] = v
		} else if err := d.skip(); err != nil {
			return nil, err
		}
		d.ws()
		if d.i >= len(d.b) {
			return nil, d.errorf("unexpected end of object")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			d.depth--
			return obj, nil
		default:
			return nil, d.errorf("expected ',' or '}' in object")
		}
	}
}

// key reads an object key and says whether its value is kept: always
// without a path table, else when the key continues a path of the table
// (child). A plain ASCII key is looked up in its bytes and comes back as the
// table's own string, so keys cost no allocation; others are decoded
// exactly (escapes, invalid UTF-8) before the lookup.
func (d *decoder) key() (k string, child int, keep bool, err error) {
	if d.t == nil {
		k, err = d.str()
		return k, -1, err == nil, err
	}
	start := d.i
	if err := d.skipString(); err != nil {
		return "", 0, false, err
	}
	raw := d.b[start+1 : d.i-1]
	plain := true
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		child, keep = d.t.kids[d.node+1][string(raw)]
		if keep {
			k = d.t.key[child]
		}
		return k, child, keep, nil
	}
	end := d.i
	d.i = start
	k, err = d.str()
	d.i = end
	if err != nil {
		return "", 0, false, err
	}
	child, keep = d.t.kids[d.node+1][k]
	return k, child, keep, nil
}

func (d *decoder) array() (any, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	d.i++ // '['
	arr := []any{}
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		d.depth--
		return arr, nil
	}
	for {
		v, err := d.value()
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
		d.ws()
		if d.i >= len(d.b) {
			return nil, d.errorf("unexpected end of array")
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			d.depth--
			return arr, nil
		default:
			return nil, d.errorf("expected ',' or ']' in array")
		}
	}
}

func (d *decoder) str() (string, error) {
	start := d.i
	d.i++ // opening quote
	simple := true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if simple {
				return string(d.b[start+1 : d.i-1]), nil
			}
			// Escapes, invalid UTF-8 and surrogates follow encoding/json's
			// exact rules by letting it decode this one token.
			var s string
			if err := json.Unmarshal(d.b[start:d.i], &s); err != nil {
				return "", err
			}
			return s, nil
		case c == '\\':
			simple = false
			d.i += 2
		case c < 0x20:
			return "", d.errorf("control character in string")
		case c >= utf8.RuneSelf:
			simple = false
			d.i++
		default:
			d.i++
		}
	}
	return "", d.errorf("unterminated string")
}

func (d *decoder) number() (any, error) {
	start, err := d.numberEnd()
	if err != nil {
		return nil, err
	}
	f, err := strconv.ParseFloat(string(d.b[start:d.i]), 64)
	if err != nil {
		return nil, d.errorf("number %s out of range", d.b[start:d.i])
	}
	return f, nil
}

// numberEnd moves past a number token, checking its syntax, and returns
// where it started.
func (d *decoder) numberEnd() (int, error) {
	start := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	if d.i < len(d.b) && d.b[d.i] == '0' {
		d.i++
	} else if digits() == 0 {
		return 0, d.errorf("invalid number")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return 0, d.errorf("invalid number: no digits after '.'")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return 0, d.errorf("invalid number: no digits in exponent")
		}
	}
	return start, nil
}

// skip checks the next value as encoding/json would decode it into an any,
// without building it.
func (d *decoder) skip() error {
	d.ws()
	if d.i >= len(d.b) {
		return d.errorf("unexpected end of input")
	}
	switch c := d.b[d.i]; {
	case c == '{', c == '[':
		if err := d.enter(); err != nil {
			return err
		}
		d.i++
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		d.ws()
		if d.i < len(d.b) && d.b[d.i] == end {
			d.i++
			d.depth--
			return nil
		}
		for {
			if c == '{' {
				d.ws()
				if d.i >= len(d.b) || d.b[d.i] != '"' {
					return d.errorf("expected a string key")
				}
				if err := d.skipString(); err != nil {
					return err
				}
				d.ws()
				if d.i >= len(d.b) || d.b[d.i] != ':' {
					return d.errorf("expected ':' after object key")
				}
				d.i++
			}
			if err := d.skip(); err != nil {
				return err
			}
			d.ws()
			if d.i >= len(d.b) {
				return d.errorf("unexpected end of container")
			}
			switch d.b[d.i] {
			case ',':
				d.i++
			case end:
				d.i++
				d.depth--
				return nil
			default:
				return d.errorf("expected ',' or %q", end)
			}
		}
	case c == '"':
		return d.skipString()
	case c == 't':
		return d.lit("true")
	case c == 'f':
		return d.lit("false")
	case c == 'n':
		return d.lit("null")
	case c == '-' || c >= '0' && c <= '9':
		start := d.i
		if _, err := d.numberEnd(); err != nil {
			return err
		}
		// Decoding into an any turns a number into a float64, which
		// encoding/json refuses for one out of range. Without an exponent
		// and with fewer than 300 digits a number cannot be.
		lit := d.b[start:d.i]
		if len(lit) >= 300 || bytes.ContainsAny(lit, "eE") {
			if _, err := strconv.ParseFloat(string(lit), 64); err != nil {
				return d.errorf("number %s out of range", lit)
			}
		}
		return nil
	default:
		return d.errorf("invalid character %q looking for a value", c)
	}
}

// skipString checks a string token as encoding/json's scanner does: valid
// escapes, no control characters; invalid UTF-8 is accepted (and replaced
// when decoded).
func (d *decoder) skipString() error {
	d.i++ // opening quote
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			return nil
		case c == '\\':
			if d.i+1 >= len(d.b) {
				return d.errorf("unterminated string")
			}
			switch d.b[d.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.i += 2
			case 'u':
				if len(d.b)-d.i < 6 {
					return d.errorf("unterminated string")
				}
				for _, h := range d.b[d.i+2 : d.i+6] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return d.errorf("invalid \\u escape")
					}
				}
				d.i += 6
			default:
				return d.errorf("invalid escape in string")
			}
		case c < 0x20:
			return d.errorf("control character in string")
		default:
			d.i++
		}
	}
	return d.errorf("unterminated string")
}
