// Package manifest reads nimbus.yaml, the file that declares an application
// (functions now; routes, triggers, tables, buckets and workflows as those
// land). Decoding is strict: an unknown key is an error naming its line, so
// a typo never deploys silently. It does no deploying itself.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/function"
)

// Manifest is a parsed nimbus.yaml.
type Manifest struct {
	Functions map[string]*Function `yaml:"functions"`
	// The API gateway (api.go): authorizers, CORS, usage plans and routes.
	Auth       map[string]*Auth      `yaml:"auth"`
	CORS       *CORS                 `yaml:"cors"`
	UsagePlans map[string]*UsagePlan `yaml:"usage_plans"`
	Routes     []Route               `yaml:"routes"`
	// Rules are event rules by name (events.go).
	Rules map[string]*api.Rule `yaml:"rules"`
	// Workflows are state machines by name (workflows.go).
	Workflows map[string]*Workflow `yaml:"workflows"`
	// Tables and Buckets are the data services by name (data.go).
	Tables  map[string]*Table  `yaml:"tables"`
	Buckets map[string]*Bucket `yaml:"buckets"`
	// Dir is the directory relative code paths are resolved against.
	Dir string `yaml:"-"`
}

// Function declares one function.
type Function struct {
	Runtime     string            `yaml:"runtime"`
	Code        string            `yaml:"code"`
	Handler     string            `yaml:"handler"`
	Memory      int               `yaml:"memory"`
	Timeout     function.Duration `yaml:"timeout"`
	Min         int               `yaml:"min"`
	Max         int               `yaml:"max"`
	IdleTimeout function.Duration `yaml:"idle_timeout"`
	Concurrency int               `yaml:"concurrency"`
	Env         map[string]string `yaml:"env"`
	// Async and Triggers: events.go.
	Async    *function.AsyncConfig `yaml:"async"`
	Triggers []api.Trigger         `yaml:"triggers"`
	// Uses lists the tables and buckets the function may reach (data.go).
	Uses *function.Uses `yaml:"uses"`
}

// Error locates a problem in the manifest.
type Error struct {
	Path string // e.g. functions.hello.memory
	Line int
	Msg  string
}

func (e *Error) Error() string {
	loc := e.Path
	if e.Line > 0 {
		loc = fmt.Sprintf("line %d: %s", e.Line, e.Path)
	}
	if loc == "" {
		return e.Msg
	}
	return loc + ": " + e.Msg
}

// Unwrap makes manifest errors invalid-input errors.
func (e *Error) Unwrap() error { return function.ErrInvalid }

// MaxSize bounds a manifest file.
const MaxSize = 1 << 20

// Parse decodes and validates a manifest. dir resolves relative code paths.
func Parse(data []byte, dir string) (*Manifest, error) {
	if len(data) > MaxSize {
		return nil, &Error{Msg: fmt.Sprintf("manifest is %d bytes, the limit is %d", len(data), MaxSize)}
	}
	var m Manifest
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Msg: "manifest is empty: declare at least one function under `functions:`"}
		}
		return nil, yamlError(err)
	}
	m.Dir = dir
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// yamlError turns yaml.v3's messages ("line 3: field foo not found in type
// manifest.Function") into ours.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msgs := make([]string, 0, len(te.Errors))
		for _, e := range te.Errors {
			if i := strings.Index(e, " in type manifest."); i >= 0 {
				e = e[:i] // " in type manifest.Function", ".Route", ...
			}
			e = strings.Replace(e, "field ", "unknown key ", 1)
			e = strings.Replace(e, " not found", "", 1)
			msgs = append(msgs, e)
		}
		return &Error{Msg: strings.Join(msgs, "; ")}
	}
	return &Error{Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
}

// Validate checks every declaration without touching the code files.
func (m *Manifest) Validate() error {
	if len(m.Functions) == 0 && !m.HasAPI() && len(m.Workflows) == 0 && !m.hasData() {
		return &Error{Path: "functions", Msg: "declare at least one function"}
	}
	for _, name := range m.Names() {
		f := m.Functions[name]
		path := "functions." + name
		if f == nil {
			return &Error{Path: path, Msg: "is empty: give at least `code`"}
		}
		if f.Code == "" {
			return &Error{Path: path + ".code", Msg: "is required: a .wasm file, an executable, a zip or a directory"}
		}
		spec := f.Spec(name, "sha256:"+strings.Repeat("0", 64))
		if err := spec.Validate(); err != nil {
			var fe *function.FieldError
			if errors.As(err, &fe) {
				return &Error{Path: path + "." + fe.Field, Msg: fe.Reason}
			}
			return &Error{Path: path, Msg: err.Error()}
		}
	}
	if err := m.validateEvents(); err != nil {
		return err
	}
	if err := m.validateWorkflows(); err != nil {
		return err
	}
	if err := m.validateData(); err != nil {
		return err
	}
	return m.validateAPI()
}

// Names returns the function names in order.
func (m *Manifest) Names() []string {
	names := make([]string, 0, len(m.Functions))
	for n := range m.Functions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CodePath resolves a function's code path against the manifest's directory.
func (m *Manifest) CodePath(name string) string {
	p := m.Functions[name].Code
	if filepath.IsAbs(p) || m.Dir == "" {
		return p
	}
	return filepath.Join(m.Dir, p)
}

// Spec is the function spec the declaration asks for, with code digest.
func (f *Function) Spec(name, digest string) function.Spec {
	s := function.Spec{
		Name: name, Runtime: f.Runtime, Code: digest, Handler: f.Handler, MemoryMB: f.Memory,
		Timeout: f.Timeout, Min: f.Min, Max: f.Max, IdleTimeout: f.IdleTimeout,
		Concurrency: f.Concurrency, Env: f.Env, Async: f.Async, Uses: f.Uses,
	}
	if s.Runtime == "" && !strings.HasSuffix(f.Code, ".wasm") {
		s.Runtime = function.RuntimeProcess
	}
	s.Normalize()
	return s
}
