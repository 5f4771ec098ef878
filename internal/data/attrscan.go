package data

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// topLevel finds the values of the members named in names in a JSON
// object that is known to be valid (json.Valid or json.Compact accepted
// it): vals[i] is the raw value of names[i], nil when absent. As with
// json.Unmarshal into a map, a name given twice takes its last value, and
// member names are compared after unescaping.
//
// A put reads its item's key and TTL attributes with it instead of
// decoding the item into a map, the largest cost of a put after the write
// itself. ok is false when obj is not an object.
func topLevel(obj []byte, names []string, vals []json.RawMessage) (ok bool) {
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
		kend := skipString(obj, i)
		name := obj[i:kend]
		i = skipWS(obj, kend)
		i = skipWS(obj, i+1) // ':'
		vend := skipValue(obj, i)
		val := obj[i:vend]
		for j, n := range names {
			if n != "" && nameIs(name, n) {
				vals[j] = val
			}
		}
		i = skipWS(obj, vend)
		if i >= len(obj) || obj[i] == '}' {
			break
		}
		i = skipWS(obj, i+1) // ','
	}
	return true
}

// nameIs reports whether the quoted JSON string q decodes to s.
func nameIs(q []byte, s string) bool {
	raw := q[1 : len(q)-1]
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			var u string
			return json.Unmarshal(q, &u) == nil && u == s
		}
	}
	return string(raw) == s
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

// parseKeyValueFast is ParseKeyValue for the common cases (a string
// without escapes, a number), without json.Unmarshal's reflection; the
// result is the same. raw is a value of a valid JSON document.
func parseKeyValueFast(raw json.RawMessage) (KeyValue, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		s := raw[1 : len(raw)-1]
		plain := true
		for _, c := range s {
			if c == '\\' || c == '"' || c < 0x20 || c >= utf8.RuneSelf {
				plain = false
				break
			}
		}
		if plain {
			return KeyValue{Str: string(s)}, nil
		}
	} else if len(raw) > 0 && (raw[0] == '-' || ('0' <= raw[0] && raw[0] <= '9')) {
		f, err := strconv.ParseFloat(string(raw), 64)
		if err == nil {
			if f == 0 {
				f = 0 // one zero: -0 and 0 are the same key
			}
			return KeyValue{IsNum: true, Num: f}, nil
		}
	}
	return ParseKeyValue(raw)
}
