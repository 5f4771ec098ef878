package manifest

import (
	"errors"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/internal/function"
)

func TestParse(t *testing.T) {
	good := `
functions:
  hello:
    runtime: wasm
    code: ./hello.wasm
    memory: 64
    timeout: 2s
    max: 50
    env: {GREETING: hi}
  worker:
    code: ./build/worker
`
	m, err := Parse([]byte(good), "/app")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := m.Names(), []string{"hello", "worker"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("names = %v, want %v", got, want)
	}
	s := m.Functions["hello"].Spec("hello", "sha256:"+strings.Repeat("a", 64))
	if s.MemoryMB != 64 || s.Max != 50 || s.Timeout.String() != "2s" || s.Env["GREETING"] != "hi" {
		t.Errorf("hello spec = %+v", s)
	}
	if got := m.CodePath("hello"); got != "/app/hello.wasm" {
		t.Errorf("CodePath = %q", got)
	}
	if r := m.Functions["worker"].Spec("worker", "").Runtime; r != function.RuntimeProcess {
		t.Errorf("worker runtime = %q, want process (code is not .wasm)", r)
	}

	bad := []struct{ name, yaml, want string }{
		{"empty", "", "empty"},
		{"no functions", "functions: {}", "functions: declare at least one"},
		{"unknown key", "functions:\n  f:\n    code: a.wasm\n    memroy: 64\n", "line 4: unknown key memroy"},
		{"unknown top key", "function:\n  f: {code: a.wasm}\n", "unknown key function"},
		{"bad name", "functions:\n  'bad name':\n    code: a.wasm\n", "functions.bad name.name"},
		{"no code", "functions:\n  f:\n    memory: 64\n", "functions.f.code: is required"},
		{"memory range", "functions:\n  f: {code: a.wasm, memory: 999999}\n", "functions.f.memory"},
		{"bad timeout", "functions:\n  f: {code: a.wasm, timeout: soon}\n", "bad duration"},
		{"min over max", "functions:\n  f: {code: a.wasm, min: 5, max: 2}\n", "functions.f.min"},
		{"bad runtime", "functions:\n  f: {code: a.wasm, runtime: java}\n", "functions.f.runtime"},
		{"not yaml", "functions: [", "not valid YAML"},
		{"nil function", "functions:\n  f:\n", "functions.f: is empty"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
			if !errors.Is(err, function.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("functions:\n  f: {code: a.wasm, memory: 64, timeout: 2s}\n"))
	f.Add([]byte("functions:\n  f:\n    code: x\n    env: {A: b}\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data, "/d")
		if err != nil {
			if !errors.Is(err, function.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		// Whatever parses must give valid specs.
		for _, n := range m.Names() {
			s := m.Functions[n].Spec(n, "sha256:"+strings.Repeat("0", 64))
			if err := s.Validate(); err != nil {
				t.Fatalf("parsed manifest yields invalid spec %s: %v", n, err)
			}
		}
	})
}
