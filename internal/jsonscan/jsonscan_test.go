package jsonscan

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func members(t *testing.T, doc string) map[string]string {
	t.Helper()
	out := map[string]string{}
	if !Members([]byte(doc), func(name, val []byte) bool {
		var n string
		if err := json.Unmarshal(name, &n); err != nil {
			t.Fatalf("name %s: %v", name, err)
		}
		out[n] = string(val)
		return true
	}) {
		return nil
	}
	return out
}

func TestMembers(t *testing.T) {
	doc := ` { "a" : 1 , "b\"}" : "x\\\"}]" , "c":[1,{"d":"]"}], "e":{"f":null}, "g":true } `
	want := map[string]string{"a": "1", "b\"}": `"x\\\"}]"`, "c": `[1,{"d":"]"}]`, "e": `{"f":null}`, "g": "true"}
	if got := members(t, doc); !reflect.DeepEqual(got, want) {
		t.Errorf("members = %q, want %q", got, want)
	}
	if got := members(t, `{}`); len(got) != 0 || got == nil {
		t.Errorf("empty object: %v", got)
	}
	for _, notObject := range []string{`[]`, `"s"`, `1`, ``} {
		if members(t, notObject) != nil {
			t.Errorf("%q accepted as an object", notObject)
		}
	}
	n := 0
	if Members([]byte(`{"a":1,"b":2}`), func(_, _ []byte) bool { n++; return false }) || n != 1 {
		t.Errorf("Members went on after f returned false (%d calls)", n)
	}
}

// FuzzMembers: on any valid object, the members found are the ones
// encoding/json decodes (last duplicate wins in both).
func FuzzMembers(f *testing.F) {
	f.Add(`{"a":1,"b":[1,2,{"c":"}"}],"d":"\"","a":2}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var want map[string]json.RawMessage
		if !json.Valid([]byte(doc)) || json.Unmarshal([]byte(doc), &want) != nil || want == nil {
			return
		}
		got := members(t, doc)
		if len(got) != len(want) {
			t.Fatalf("%d members, want %d", len(got), len(want))
		}
		for k, v := range want {
			var a, b any
			json.Unmarshal(v, &a)
			json.Unmarshal([]byte(got[k]), &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("member %q = %s, want %s", k, got[k], v)
			}
		}
	})
}

// FuzzMembersAnyInput feeds Members what is not valid JSON too: it must
// not panic, and the values it hands out lie within the input.
func FuzzMembersAnyInput(f *testing.F) {
	for _, s := range []string{`{"a":1`, `{"a"`, `{"a":`, `{"a" 1}`, `{1:2}`, `{"a\\`, `{"a":{"b":[}`, `{"a":"\\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		b := []byte(doc)
		Members(b, func(name, val []byte) bool {
			if len(name) > len(b) || len(val) > len(b) {
				t.Fatalf("member %q = %q is longer than the input", name, val)
			}
			return true
		})
	})
}

func TestPlainMembers(t *testing.T) {
	var names []string
	if !PlainMembers([]byte(`{"a":1,"b c":{"d":2}}`), func(name, _ []byte) bool { names = append(names, string(name)); return true }) {
		t.Fatal("refused an object without escaped names")
	}
	if strings.Join(names, ",") != "a,b c" {
		t.Fatalf("names %q, want unquoted a and b c", names)
	}
	if PlainMembers([]byte(`{"a":1,"\u0062":2}`), func(_, _ []byte) bool { return true }) {
		t.Fatal("accepted an escaped name")
	}
}
