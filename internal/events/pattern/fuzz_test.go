package pattern

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

var fuzzPatterns = []string{
	`{"source":["aws.ec2"],"data":{"state":["running"]}}`,
	`{"data":{"c-count":[{"numeric":[">",0,"<=",5]}]}}`,
	`{"a":[{"anything-but":{"prefix":"x"}},{"exists":false},null,1,true]}`,
	`{"$or":[{"a":[{"wildcard":"a*b\\*c"}]},{"b":{"c":[{"cidr":"10.0.0.0/8"}]}}]}`,
	`{"a":[{"prefix":{"equals-ignore-case":"Ab"}},{"suffix":{"equals-ignore-case":"Z"}}]}`,
	`{"detail":{"price":[{"numeric":[">",0,"<"]}]}}`,
}

func FuzzCompile(f *testing.F) {
	for _, p := range fuzzPatterns {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := Compile(src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Compile error %T is not *Error", err)
			}
			return
		}
		// A compiled pattern evaluates any event without panicking,
		// including its own source text.
		p.Match(src)
		p.Match([]byte(ec2Event))
		if p.String() != string(src) {
			t.Fatalf("String() = %q, want the source", p.String())
		}
	})
}

// FuzzMatch checks that matching never panics and that a Set (indexed) and
// a lone Pattern always agree.
func FuzzMatch(f *testing.F) {
	events := []string{ec2Event, `{"a":["x",1,null,{"b":2}],"b":{"c":"10.1.1.1"}}`, `{"type":"t","a":[[["Abz"]]]}`, `{}`, `[]`}
	for _, p := range fuzzPatterns {
		for _, e := range events {
			f.Add([]byte(p), []byte(e))
		}
	}
	f.Fuzz(func(t *testing.T, src, event []byte) {
		p, err := Compile(src)
		if err != nil {
			return
		}
		got := p.Match(event)
		s := NewSet()
		if err := s.Add("r", p); err != nil {
			t.Fatal(err)
		}
		ids, err := s.Match(event)
		var obj map[string]any
		if json.Unmarshal(event, &obj) != nil || obj == nil {
			if got {
				t.Fatalf("Match(non-object %q) = true", event)
			}
			if err == nil {
				t.Fatalf("Set.Match(non-object %q) = %v, want an error", event, ids)
			}
			return
		}
		if err != nil {
			t.Fatalf("Set.Match: %v", err)
		}
		if (len(ids) == 1) != got {
			t.Fatalf("Set.Match = %v, Pattern.Match = %v\npattern %s\nevent %s", ids, got, src, event)
		}
		// Transform must not panic on arbitrary events either.
		tr := Transform{InputTemplate: `{"a": <a>, "b": "<b>", "e": <aws.events.event>}`, InputPathsMap: map[string]string{"a": "$.a[*]", "b": "$.b.c"}}
		if _, err := tr.Apply(event, TransformContext{}); err != nil {
			t.Fatal(fmt.Errorf("Apply: %w", err))
		}
	})
}

// fuzzPaths are the paths of a few patterns, so that FuzzDecode also runs
// the decoder that skips what no rule reads.
var fuzzPaths = func() *pathTable {
	s := NewSet()
	for i, p := range fuzzPatterns {
		if c, err := Compile([]byte(p)); err == nil { // some are meant to fail
			_ = s.Add(fmt.Sprint(i), c)
		}
	}
	return s.paths
}()

// FuzzDecode holds the event decoder to encoding/json: the same value for
// every object it accepts, and an error for everything it rejects.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{ec2Event, benchEvent, `{"a":"\u00e9\ud83d\ude00\"","b":[1e3,-0.5,true,null,{}],"c":"\xff"}`, `{"a":01}`, `{"a":1.}`, `{"a":"x` + "\x01" + `"}`, ` {} `, `{}x`, `null`, `[1]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeEvent(b)
		var want map[string]any
		werr := json.Unmarshal(b, &want)
		if werr != nil || want == nil {
			if err == nil {
				t.Fatalf("decodeEvent(%q) = %v, want an error (encoding/json: %v)", b, got, werr)
			}
			if pruned, err := decodeEventPaths(b, fuzzPaths); err == nil {
				t.Fatalf("decodeEventPaths(%q) = %v, want an error (encoding/json: %v)", b, pruned, werr)
			}
			return
		}
		if err != nil {
			t.Fatalf("decodeEvent(%q) error %v, encoding/json accepts it", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeEvent(%q) = %#v, want %#v", b, got, want)
		}
		// Decoding only the paths rules read accepts the same events.
		if _, err := decodeEventPaths(b, fuzzPaths); err != nil {
			t.Fatalf("decodeEventPaths(%q) error %v, encoding/json accepts it", b, err)
		}
	})
}
