package data

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/nimbus-run/nimbus/internal/jsonscan"
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
	return jsonscan.Members(obj, func(name, val []byte) bool {
		for j, n := range names {
			if n != "" && nameIs(name, n) {
				vals[j] = val
			}
		}
		return true
	})
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
