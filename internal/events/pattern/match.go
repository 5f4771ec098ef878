package pattern

import (
	"encoding/json"
	"net/netip"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Match reports whether the JSON event matches the pattern. An event that is
// not a JSON object matches nothing.
func (p *Pattern) Match(event []byte) bool {
	obj, err := decodeEvent(event)
	if err != nil {
		return false
	}
	return p.MatchValue(obj)
}

// MatchValue is Match for an event already decoded as by encoding/json into
// map[string]any. Numbers may also be json.Number or any Go integer or float
// type, so callers holding typed values need not round-trip through JSON.
func (p *Pattern) MatchValue(event map[string]any) bool {
	return matchNode(p.root, event)
}

func matchNode(n *node, obj map[string]any) bool {
	for i := range n.fields {
		f := &n.fields[i]
		v, ok := obj[f.key]
		if f.child != nil {
			if !matchChild(f.child, v) {
				return false
			}
			continue
		}
		if !matchLeaf(f.matchers, v, ok) {
			return false
		}
	}
	for _, alts := range n.or {
		matched := false
		for _, a := range alts {
			if matchNode(a, obj) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

// matchChild evaluates a nested pattern object against the event value at
// the same place. An array of objects matches when one element matches as a
// whole, which is what keeps sibling fields in the same array element.
func matchChild(child *node, v any) bool {
	switch v := v.(type) {
	case map[string]any:
		return matchNode(child, v)
	case []any:
		sawContainer := false
		for _, e := range v {
			switch e.(type) {
			case map[string]any, []any:
				sawContainer = true
				if matchChild(child, e) {
					return true
				}
			}
		}
		if sawContainer {
			return false
		}
		return matchNode(child, nil)
	default:
		// Absent, or a scalar where an object was expected: no field below
		// exists, which only {"exists": false} accepts.
		return matchNode(child, nil)
	}
}

func matchLeaf(ms []matcher, v any, present bool) bool {
	if present {
		switch v := v.(type) {
		case map[string]any:
			// Not a leaf value: falls through to absence.
		case []any:
			if found, matched := matchArray(ms, v); found {
				return matched
			}
		default:
			return matchAny(ms, v)
		}
	}
	for i := range ms {
		if ms[i].kind == kExists && !ms[i].b {
			return true
		}
	}
	return false
}

// matchArray flattens nested arrays of scalars; found reports whether any
// leaf value was seen at all.
func matchArray(ms []matcher, arr []any) (found, matched bool) {
	for _, e := range arr {
		switch e := e.(type) {
		case map[string]any:
			continue
		case []any:
			f, m := matchArray(ms, e)
			if m {
				return true, true
			}
			found = found || f
		default:
			found = true
			if matchAny(ms, e) {
				return true, true
			}
		}
	}
	return found, false
}

func matchAny(ms []matcher, v any) bool {
	for i := range ms {
		if ms[i].matchScalar(v) {
			return true
		}
	}
	return false
}

// matchScalar decides one present leaf value.
func (m *matcher) matchScalar(v any) bool {
	switch m.kind {
	case kString:
		s, ok := v.(string)
		return ok && s == m.s
	case kNumber:
		f, ok := toFloat(v)
		return ok && f == m.n
	case kBool:
		b, ok := v.(bool)
		return ok && b == m.b
	case kNull:
		return v == nil
	case kPrefix:
		s, ok := v.(string)
		return ok && strings.HasPrefix(s, m.s)
	case kPrefixFold:
		s, ok := v.(string)
		return ok && hasPrefixFold(s, m.s)
	case kSuffix:
		s, ok := v.(string)
		return ok && strings.HasSuffix(s, m.s)
	case kSuffixFold:
		s, ok := v.(string)
		return ok && hasSuffixFold(s, m.s)
	case kEqualsFold:
		s, ok := v.(string)
		return ok && strings.EqualFold(s, m.s)
	case kWildcard:
		s, ok := v.(string)
		return ok && matchWildcard(m.wild, s)
	case kAnythingBut:
		for i := range m.inner {
			if m.inner[i].matchScalar(v) {
				return false
			}
		}
		return true
	case kNumeric:
		f, ok := toFloat(v)
		if !ok {
			return false
		}
		for _, c := range m.conds {
			if !c.holds(f) {
				return false
			}
		}
		return true
	case kExists:
		return m.b
	case kCIDR:
		s, ok := v.(string)
		if !ok {
			return false
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return false
		}
		return m.prefix.Contains(a.Unmap())
	}
	return false
}

func (c numCond) holds(f float64) bool {
	switch c.op {
	case "<":
		return f < c.n
	case "<=":
		return f <= c.n
	case "=":
		return f == c.n
	case ">":
		return f > c.n
	case ">=":
		return f >= c.n
	}
	return false
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case int32:
		return float64(n), true
	case int16:
		return float64(n), true
	case int8:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint64:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint8:
		return float64(n), true
	case float32:
		return float64(n), true
	}
	return 0, false
}

func matchWildcard(parts []wildPart, s string) bool {
	if len(parts) == 1 {
		return s == parts[0].lit
	}
	if !strings.HasPrefix(s, parts[0].lit) {
		return false
	}
	s = s[len(parts[0].lit):]
	last := parts[len(parts)-1].lit
	// Leftmost placement of each middle literal is optimal for '*'-only
	// globs: it leaves the longest tail for what follows.
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p.lit)
		if i < 0 {
			return false
		}
		s = s[i+len(p.lit):]
	}
	return strings.HasSuffix(s, last)
}

func hasPrefixFold(s, prefix string) bool {
	for prefix != "" {
		if s == "" {
			return false
		}
		pr, pn := utf8.DecodeRuneInString(prefix)
		sr, sn := utf8.DecodeRuneInString(s)
		if !runeEqualFold(pr, sr) {
			return false
		}
		prefix, s = prefix[pn:], s[sn:]
	}
	return true
}

func hasSuffixFold(s, suffix string) bool {
	for suffix != "" {
		if s == "" {
			return false
		}
		pr, pn := utf8.DecodeLastRuneInString(suffix)
		sr, sn := utf8.DecodeLastRuneInString(s)
		if !runeEqualFold(pr, sr) {
			return false
		}
		suffix, s = suffix[:len(suffix)-pn], s[:len(s)-sn]
	}
	return true
}

// runeEqualFold is the per-rune comparison strings.EqualFold uses (simple
// Unicode case folding), so prefix/suffix agree with equals-ignore-case.
func runeEqualFold(a, b rune) bool {
	if a == b {
		return true
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		return a == b
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}
