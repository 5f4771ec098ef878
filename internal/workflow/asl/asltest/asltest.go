// Package asltest loads the ASL conformance cases recorded from AWS Step
// Functions (the shared asl-conformance folder beside the repository) and
// compares an engine's outcome with the recorded one. It is used by the
// interpreter's own conformance test and by tests that run the same cases
// through the HTTP Step Functions API.
//
// The package performs no execution itself: callers run a case with their
// engine, using Case.CallFunction for the six tiny functions the cases use,
// and hand the outcome to Case.Compare.
package asltest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Case is one recorded conformance case.
type Case struct {
	Name       string
	Dir        string
	Definition []byte
	Input      []byte
	Expected   Expected
	// Functions maps each function name the case uses to its behaviour.
	Functions map[string]Function
}

// Expected is the recorded outcome (expected.json).
type Expected struct {
	Status string // SUCCEEDED or FAILED
	// Output is the expected output of a SUCCEEDED case.
	Output json.RawMessage
	// Error and Cause: Compare false means the key was absent (not
	// compared); Value "" with Compare true means AWS reported none.
	Error       Field
	Cause       Field
	IgnorePaths []string
}

// Field is an optionally compared string.
type Field struct {
	Compare bool
	Value   string
}

// Function is a behaviour from functions.json.
type Function struct {
	ARN          string          `json:"arn"`
	Behavior     string          `json:"behavior"` // identity, constant, raise, ...
	Value        json.RawMessage `json:"value"`
	ErrorType    string          `json:"errorType"`
	ErrorMessage string          `json:"errorMessage"`
}

// Dir finds the conformance folder: it walks up from the working directory
// to the repository root (the directory holding go.mod) and looks for
// ../shared/asl-conformance beside it. ok is false when it does not exist.
func Dir() (dir string, ok bool) {
	wd, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			c := filepath.Join(filepath.Dir(d), "shared", "asl-conformance")
			if st, err := os.Stat(c); err == nil && st.IsDir() {
				return c, true
			}
			return c, false
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// Load reads every case folder under dir, sorted by name.
func Load(dir string) ([]*Case, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("asltest: %w", err)
	}
	var cases []*Case
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		c, err := LoadCase(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		cases = append(cases, c)
	}
	sort.Slice(cases, func(i, j int) bool { return cases[i].Name < cases[j].Name })
	return cases, nil
}

// LoadCase reads one case folder.
func LoadCase(dir string) (*Case, error) {
	c := &Case{Name: filepath.Base(dir), Dir: dir}
	var err error
	if c.Definition, err = os.ReadFile(filepath.Join(dir, "definition.json")); err != nil {
		return nil, fmt.Errorf("asltest: case %s: %w", c.Name, err)
	}
	if c.Input, err = os.ReadFile(filepath.Join(dir, "input.json")); err != nil {
		return nil, fmt.Errorf("asltest: case %s: %w", c.Name, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		return nil, fmt.Errorf("asltest: case %s: %w", c.Name, err)
	}
	var exp map[string]json.RawMessage
	if err := json.Unmarshal(raw, &exp); err != nil {
		return nil, fmt.Errorf("asltest: case %s: expected.json: %w", c.Name, err)
	}
	if err := json.Unmarshal(exp["status"], &c.Expected.Status); err != nil {
		return nil, fmt.Errorf("asltest: case %s: expected.json status: %w", c.Name, err)
	}
	c.Expected.Output = exp["output"]
	c.Expected.Error = field(exp, "error")
	c.Expected.Cause = field(exp, "cause")
	if ip, ok := exp["ignore_paths"]; ok {
		if err := json.Unmarshal(ip, &c.Expected.IgnorePaths); err != nil {
			return nil, fmt.Errorf("asltest: case %s: ignore_paths: %w", c.Name, err)
		}
	}
	fn, err := os.ReadFile(filepath.Join(dir, "functions.json"))
	if err == nil {
		if err := json.Unmarshal(fn, &c.Functions); err != nil {
			return nil, fmt.Errorf("asltest: case %s: functions.json: %w", c.Name, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("asltest: case %s: %w", c.Name, err)
	}
	return c, nil
}

func field(m map[string]json.RawMessage, k string) Field {
	raw, ok := m[k]
	if !ok {
		return Field{}
	}
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil || s == nil {
		return Field{Compare: true}
	}
	return Field{Compare: true, Value: *s}
}

// FunctionResult is the outcome of one of the conformance functions.
type FunctionResult struct {
	Payload      json.RawMessage // response payload when the call succeeded
	Failed       bool
	ErrorType    string
	ErrorMessage string
}

// ErrorPayload is the Lambda-style error payload of a failed call.
func (r FunctionResult) ErrorPayload() []byte {
	b, _ := json.Marshal(map[string]any{"errorType": r.ErrorType, "errorMessage": r.ErrorMessage})
	return b
}

// CallFunction runs the conformance function name (a name or an ARN) on
// payload: identity, echo_hello, raise_exception, raise_custom_exception,
// return_bytes_str and large_output, as described in the folder's README.
func (c *Case) CallFunction(name string, payload []byte) (FunctionResult, error) {
	if i := strings.LastIndex(name, ":function:"); i >= 0 {
		name = name[i+len(":function:"):]
		if j := strings.IndexByte(name, ':'); j >= 0 {
			name = name[:j]
		}
	}
	switch name {
	case "identity":
		if len(bytes.TrimSpace(payload)) == 0 {
			payload = []byte("null")
		}
		return FunctionResult{Payload: payload}, nil
	case "echo_hello":
		return FunctionResult{Payload: json.RawMessage(`{"Return":"HelloWorld"}`)}, nil
	case "raise_exception":
		return FunctionResult{Failed: true, ErrorType: "Exception", ErrorMessage: "Some exception was raised."}, nil
	case "raise_custom_exception":
		return FunctionResult{Failed: true, ErrorType: "CustomException"}, nil
	case "return_bytes_str":
		return FunctionResult{Payload: json.RawMessage(`"HelloWorld!"`)}, nil
	case "large_output":
		return FunctionResult{Payload: json.RawMessage(`"` + strings.Repeat("a", 263168) + `"`)}, nil
	}
	if f, ok := c.Functions[name]; ok {
		switch f.Behavior {
		case "identity":
			return FunctionResult{Payload: payload}, nil
		case "constant":
			return FunctionResult{Payload: f.Value}, nil
		case "raise":
			return FunctionResult{Failed: true, ErrorType: f.ErrorType, ErrorMessage: f.ErrorMessage}, nil
		}
	}
	return FunctionResult{}, fmt.Errorf("asltest: case %s: unknown function %q", c.Name, name)
}

// Outcome is what an engine reports for a case.
type Outcome struct {
	Status string // SUCCEEDED, FAILED, ...
	Output json.RawMessage
	Error  string
	Cause  string
}

// Mismatch lists the differences between an outcome and the recording.
// Cause differences are kept apart, so that a lenient harness may report
// them without failing.
type Mismatch struct {
	Diffs      []string
	CauseDiffs []string
}

// OK reports whether the outcome matched (strict: causes included).
func (m Mismatch) OK() bool { return len(m.Diffs) == 0 && len(m.CauseDiffs) == 0 }

func (m Mismatch) String() string {
	return strings.Join(append(append([]string{}, m.Diffs...), m.CauseDiffs...), "; ")
}

// Compare checks an outcome against the case's recording, following the
// README's rules: key order is free, numbers compare by value, ignore_paths
// are removed from the actual output, the error name is compared when
// recorded, and so is the cause.
func (c *Case) Compare(o Outcome) Mismatch {
	var m Mismatch
	exp := c.Expected
	if o.Status != exp.Status {
		m.Diffs = append(m.Diffs, fmt.Sprintf("status: got %s, want %s", o.Status, exp.Status))
	}
	if exp.Status == "SUCCEEDED" && o.Status == exp.Status {
		got, err := decode(o.Output)
		if err != nil {
			m.Diffs = append(m.Diffs, fmt.Sprintf("output is not JSON: %v", err))
			return m
		}
		for _, p := range exp.IgnorePaths {
			got = removePath(got, p)
		}
		want, err := decode(exp.Output)
		if err != nil {
			m.Diffs = append(m.Diffs, fmt.Sprintf("expected output is not JSON: %v", err))
			return m
		}
		if !Equal(got, want) {
			m.Diffs = append(m.Diffs, fmt.Sprintf("output: got %s, want %s", canon(got), canon(want)))
		}
	}
	if exp.Status == "FAILED" {
		if exp.Error.Compare && o.Error != exp.Error.Value {
			m.Diffs = append(m.Diffs, fmt.Sprintf("error: got %q, want %q", o.Error, exp.Error.Value))
		}
		if exp.Cause.Compare && o.Cause != exp.Cause.Value {
			m.CauseDiffs = append(m.CauseDiffs, fmt.Sprintf("cause: got %q, want %q", o.Cause, exp.Cause.Value))
		}
	}
	return m
}

func decode(b []byte) (any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

func canon(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// removePath deletes a simple "$.a.b" path from v.
func removePath(v any, path string) any {
	parts := strings.Split(strings.TrimPrefix(path, "$."), ".")
	var rm func(v any, i int) any
	rm = func(v any, i int) any {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			out[k] = e
		}
		if i == len(parts)-1 {
			delete(out, parts[i])
			return out
		}
		if child, ok := out[parts[i]]; ok {
			out[parts[i]] = rm(child, i+1)
		}
		return out
	}
	return rm(v, 0)
}

// Equal compares decoded JSON values: object key order is free, numbers are
// compared by value (1 == 1.0, -0 == 0), strings exactly.
func Equal(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !Equal(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		fx, ok1 := new(big.Float).SetString(string(x))
		fy, ok2 := new(big.Float).SetString(string(y))
		return ok1 && ok2 && fx.Cmp(fy) == 0
	default:
		return a == b
	}
}
