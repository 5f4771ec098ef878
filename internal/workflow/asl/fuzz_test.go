package asl

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary definitions to Parse: it must return a machine
// or a *DefinitionError, never panic; valid machines must also start.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "cases", "*.json"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		var c struct {
			Definition json.RawMessage `json:"definition"`
		}
		if json.Unmarshal(raw, &c) == nil {
			f.Add([]byte(c.Definition))
		}
	}
	f.Add([]byte(`{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}`))
	f.Fuzz(func(t *testing.T, def []byte) {
		m, err := Parse(def)
		if err != nil {
			var de *DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("Parse returned %T, want *DefinitionError", err)
			}
			return
		}
		ex, err := m.Start(json.RawMessage(`{"a":[1,2,{"b":"c"}],"n":3,"s":"x"}`), ExecContext{ExecutionID: "f", StartTime: time.Unix(0, 0), NoHistory: true})
		if err != nil {
			t.Fatal(err)
		}
		// Drive a few steps with trivial outcomes; nothing may panic.
		for i := 0; i < 50 && !ex.Done(); i++ {
			p := ex.Pending()
			if len(p) == 0 {
				t.Fatal("running execution with nothing pending")
			}
			a := p[len(p)-1]
			if a.Kind == ActionTimer {
				_ = ex.Fire(a.ID, a.Until)
			} else {
				_ = ex.Complete(a.ID, Result{Output: a.Input}, ex.Now())
			}
		}
	})
}

// FuzzPath evaluates arbitrary JSONPaths, as plain paths and inside
// intrinsic calls, against a fixed document.
func FuzzPath(f *testing.F) {
	for _, s := range []string{"$", "$.a", "$.a[0]", "$..b", "$.a[*].b", "$.a[1:3]", "$.a[?(@.b == 'c')]", "$['a']", "$$.Execution.Id", "$x.y",
		"States.Format('{} {}', $.a, $.n)", "States.ArrayRange(1, 9, 2)", "States.JsonMerge($.o, $.o, false)", "States.StringSplit($.s, ',')",
		"States.Hash($.s, 'MD5')", "States.MathRandom(1, 5)", "States.Array($.a, 'x\\'y', 1.5, true, null)"} {
		f.Add(s)
	}
	doc, _ := decodeJSON([]byte(`{"a":[1,{"b":"c"},[2]],"n":3,"s":"a,b","o":{"k":1}}`))
	f.Fuzz(func(t *testing.T, src string) {
		r := &roots{input: doc, context: func() any { return map[string]any{"Execution": map[string]any{"Id": "x"}} },
			vars: func(string) (any, bool) { return doc, true }}
		if isIntrinsic(src) {
			call, err := parseIntrinsic(src)
			if err != nil {
				return
			}
			var n uint64
			_, _ = call.eval(&intrinsicEnv{roots: r, rand: func() uint64 { n++; return n }})
			return
		}
		p, err := parsePath(src)
		if err != nil {
			return
		}
		v, err := p.eval(r)
		if err == nil && !p.definite {
			if _, ok := v.([]any); !ok {
				t.Fatalf("indefinite path %q returned %T", src, v)
			}
		}
		_, _ = setPath(doc, p.segs, 1)
	})
}
