package asl

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestEncodeJSONMatchesEncodingJSON(t *testing.T) {
	for _, in := range []string{
		`{"a":[1,2.5,"x\u2028y\n\t\u0001<>&"],"b":null,"c":true,"\"q":{"z":-0.0}}`,
		`[]`, `{}`, `"é😀\\"`, `12345678901234567890`, `[{"b":1,"a":2}]`,
	} {
		v, err := decodeJSON([]byte(in))
		if err != nil {
			t.Fatalf("decode %s: %v", in, err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		want := bytes.TrimRight(buf.Bytes(), "\n")
		if got := encodeJSON(v); !bytes.Equal(got, want) {
			t.Errorf("encodeJSON(%s): got %s, want %s", in, got, want)
		}
		if got, want := jsonSize(v), len(want); got != want {
			t.Errorf("jsonSize(%s): got %d, want %d", in, got, want)
		}
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true}, {"a*", "abc", true}, {"*c", "abc", true}, {"a*c", "ac", true}, {"a*c", "ab", false},
		{`a\*c`, "a*c", true}, {`a\*c`, "abc", false}, {`a\\c`, `a\c`, true}, {"*.log", "x.log.txt", false},
		{"a**b", "ab", true}, {"é*", "été", true},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, tt.s); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q): got %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
}
