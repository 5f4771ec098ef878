package asl_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/workflow/asl"
	"github.com/nimbus-run/nimbus/internal/workflow/asl/asltest"
)

var update = flag.Bool("update", false, "rewrite the expected outcomes in testdata/cases")

// goldenCase is one file of testdata/cases: a spec-derived machine, its
// input and the expected outcome, including the history event types.
type goldenCase struct {
	Note       string          `json:"note"`
	Definition json.RawMessage `json:"definition"`
	Input      json.RawMessage `json:"input"`
	Expected   goldenExpected  `json:"expected"`
}

type goldenExpected struct {
	Status string          `json:"status"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
	Cause  string          `json:"cause,omitempty"`
	Events []string        `json:"events,omitempty"`
}

var goldenStart = time.Date(2024, 7, 2, 13, 50, 0, 0, time.UTC)

// runGolden runs a machine with the conformance functions, a virtual clock
// and two custom resources: ":::custom:slow" times out and anything else
// echoes its input.
func runGolden(t *testing.T, name string, def, input []byte) goldenExpected {
	t.Helper()
	m, err := asl.Parse(def)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	clock := asl.NewVirtualClock(goldenStart)
	fns := &asltest.Case{Name: name}
	ex, err := asl.Run(context.Background(), m, input, asl.RunOptions{
		Context: asl.ExecContext{ExecutionID: "arn:aws:states:us-east-1:000000000000:execution:golden:" + name, Name: name,
			StateMachineID: "arn:aws:states:us-east-1:000000000000:stateMachine:golden", StateMachineName: "golden"},
		Now: clock.Now, Sleep: clock.Sleep,
		Function: func(_ context.Context, call asl.FunctionCall) (json.RawMessage, *asl.Error) {
			res, err := fns.CallFunction(call.Name, call.Payload)
			if err != nil {
				return nil, &asl.Error{Error: "Lambda.ResourceNotFoundException", Cause: err.Error()}
			}
			if res.Failed {
				return nil, asl.FunctionError(res.ErrorPayload())
			}
			return res.Payload, nil
		},
		Invoke: func(_ context.Context, resource string, in json.RawMessage) (json.RawMessage, *asl.Error) {
			if strings.HasSuffix(resource, ":custom:slow") {
				return nil, &asl.Error{Error: asl.ErrTimeout, Cause: "the task timed out"}
			}
			return in, nil
		},
	})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	got := goldenExpected{Status: string(ex.Status()), Output: ex.Output()}
	if e := ex.Error(); e != nil {
		got.Error, got.Cause = e.Error, e.Cause
	}
	for _, e := range ex.Events() {
		got.Events = append(got.Events, e.Type)
	}
	return got
}

// TestGolden runs the spec-derived cases of testdata/cases. Run with
// -update to rewrite their expected outcomes after reviewing a change.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden cases found")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var gc goldenCase
			if err := json.Unmarshal(raw, &gc); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			got := runGolden(t, name, gc.Definition, gc.Input)
			if *update {
				gc.Expected = got
				var buf bytes.Buffer
				enc := json.NewEncoder(&buf)
				enc.SetEscapeHTML(false)
				enc.SetIndent("", "  ")
				if err := enc.Encode(gc); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := gc.Expected
			if got.Status != want.Status {
				t.Fatalf("status: got %s (%s: %s), want %s", got.Status, got.Error, got.Cause, want.Status)
			}
			if got.Error != want.Error || got.Cause != want.Cause {
				t.Errorf("error: got %q / %q, want %q / %q", got.Error, got.Cause, want.Error, want.Cause)
			}
			if want.Status == "SUCCEEDED" {
				var g, w any
				if err := json.Unmarshal(got.Output, &g); err != nil {
					t.Fatalf("output %s: %v", got.Output, err)
				}
				if err := json.Unmarshal(want.Output, &w); err != nil {
					t.Fatalf("expected output %s: %v", want.Output, err)
				}
				if !asltest.Equal(normalize(g), normalize(w)) {
					t.Errorf("output:\n got %s\nwant %s", got.Output, want.Output)
				}
			}
			if strings.Join(got.Events, " ") != strings.Join(want.Events, " ") {
				t.Errorf("events:\n got %v\nwant %v", got.Events, want.Events)
			}
		})
	}
}

// normalize re-decodes a value with json.Number so asltest.Equal compares
// numbers by value.
func normalize(v any) any {
	b, _ := json.Marshal(v)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	_ = dec.Decode(&out)
	return out
}
