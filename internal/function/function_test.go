package function

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func validSpec() Spec {
	s := Spec{Name: "hello", Code: "sha256:" + strings.Repeat("ab", 32)}
	s.Normalize()
	return s
}

func TestValidateName(t *testing.T) {
	for _, name := range []string{"a", "hello-world_2", strings.Repeat("x", 64)} {
		if err := ValidateName(name); err != nil {
			t.Errorf("ValidateName(%q) = %v, want nil", name, err)
		}
	}
	for _, name := range []string{"", strings.Repeat("x", 65), "has space", "dot.ted", "slash/", "ünï", "a:b"} {
		err := ValidateName(name)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "name" || !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateName(%q) = %v, want a FieldError on name", name, err)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*Spec)
		field string
	}{
		{"ok", func(*Spec) {}, ""},
		{"runtime", func(s *Spec) { s.Runtime = "jvm" }, "runtime"},
		{"code", func(s *Spec) { s.Code = "abc" }, "code"},
		{"memory low", func(s *Spec) { s.MemoryMB = -1 }, "memory"},
		{"memory high", func(s *Spec) { s.MemoryMB = MaxMemoryMB + 1 }, "memory"},
		{"timeout", func(s *Spec) { s.Timeout = Duration(16 * time.Minute) }, "timeout"},
		{"negative timeout", func(s *Spec) { s.Timeout = -1 }, "timeout"},
		{"max", func(s *Spec) { s.Max = 20000 }, "max"},
		{"min over max", func(s *Spec) { s.Min, s.Max = 3, 2 }, "min"},
		{"idle", func(s *Spec) { s.IdleTimeout = -1 }, "idle_timeout"},
		{"concurrency on wasm", func(s *Spec) { s.Concurrency = 4 }, "concurrency"},
		{"handler on wasm", func(s *Spec) { s.Handler = "python3 x.py" }, "handler"},
		{"env key", func(s *Spec) { s.Env = map[string]string{"1BAD": "x"} }, "env.1BAD"},
		{"env size", func(s *Spec) { s.Env = map[string]string{"BIG": strings.Repeat("x", 5000)} }, "env"},
		{"process concurrency", func(s *Spec) { s.Runtime, s.Concurrency = RuntimeProcess, 8 }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := validSpec()
			tc.edit(&s)
			err := s.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a FieldError", err)
			}
			if fe.Field != tc.field {
				t.Errorf("field = %q, want %q (err %v)", fe.Field, tc.field, err)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	var s struct{ T Duration }
	for in, want := range map[string]time.Duration{`{"T":"1.5s"}`: 1500 * time.Millisecond, `{"T":2}`: 2 * time.Second, `{"T":""}`: 0} {
		if err := json.Unmarshal([]byte(in), &s); err != nil || time.Duration(s.T) != want {
			t.Errorf("%s: got %v, %v; want %v", in, time.Duration(s.T), err, want)
		}
	}
	if err := json.Unmarshal([]byte(`{"T":"soon"}`), &s); err == nil || !strings.Contains(err.Error(), "bad duration") {
		t.Errorf("bad duration error = %v", err)
	}
	b, _ := json.Marshal(struct{ T Duration }{Duration(3 * time.Second)})
	if string(b) != `{"T":"3s"}` {
		t.Errorf("marshal = %s", b)
	}
}

// FuzzSpec: whatever JSON decodes into a spec, Validate either accepts it or
// names a field; it never panics, and an accepted spec survives a round trip.
func FuzzSpec(f *testing.F) {
	f.Add([]byte(`{"name":"hello","runtime":"wasm","code":"sha256:` + strings.Repeat("0", 64) + `","memory":64,"timeout":"2s"}`))
	f.Add([]byte(`{"name":"x","env":{"A":"b"},"min":1,"max":1}`))
	f.Add([]byte(`{"name":"` + strings.Repeat("n", 70) + `"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Spec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		s.Normalize()
		err := s.Validate()
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" {
				t.Fatalf("Validate error %v names no field", err)
			}
			return
		}
		b, _ := json.Marshal(&s)
		var back Spec
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("round trip: %v", err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("round trip invalid: %v", err)
		}
	})
}
