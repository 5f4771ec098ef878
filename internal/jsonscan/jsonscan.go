// Package jsonscan walks the members of a JSON object without decoding it:
// the fast paths of the data service's puts read a few members of a
// document that is known to be valid (json.Valid accepted it), where
// decoding it whole was their largest cost.
package jsonscan

import "bytes"

// Members calls f with the name (still quoted and escaped) and the raw
// value of each member of obj, a valid JSON document, in order, until f
// returns false. It reports false when obj is not an object or f returned
// false. Given anything else it may call f with nonsense, or report false
// at what is not a member, but it does not fail otherwise.
func Members(obj []byte, f func(name, val []byte) bool) bool {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return false
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return true
	}
	for i < len(obj) {
		// A member: "name" : value
		if obj[i] != '"' {
			return false
		}
		kend := skipString(obj, i)
		name := obj[i:kend]
		if i = skipWS(obj, kend); i >= len(obj) || obj[i] != ':' {
			return false
		}
		if i = skipWS(obj, i+1); i >= len(obj) {
			return false
		}
		vend := skipValue(obj, i)
		if !f(name, obj[i:vend]) {
			return false
		}
		i = skipWS(obj, vend)
		if i >= len(obj) || obj[i] == '}' {
			return true
		}
		i = skipWS(obj, i+1) // past ','
	}
	return true
}

// PlainMembers is Members with each name unquoted, for callers that match
// names exactly: it reports false at a name holding an escape, which such
// a caller cannot match without decoding it (and then decodes the
// document some other way).
func PlainMembers(obj []byte, f func(name, val []byte) bool) bool {
	return Members(obj, func(name, val []byte) bool {
		name = name[1 : len(name)-1]
		return bytes.IndexByte(name, '\\') < 0 && f(name, val)
	})
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] ('"').
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}
