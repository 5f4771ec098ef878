// Package function holds the domain types of Nimbus functions: the Spec a user
// deploys, the Record every invocation leaves behind, and the sentinel errors
// the rest of the platform branches on. It does no I/O.
package function

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Runtimes known to the platform.
const (
	RuntimeWasm    = "wasm"
	RuntimeProcess = "process"
)

// Defaults applied by Spec.Normalize.
const (
	DefaultMemoryMB    = 128
	DefaultTimeout     = 3 * time.Second
	DefaultMax         = 100
	DefaultIdleTimeout = 5 * time.Minute
	MaxMemoryMB        = 10240
	MaxTimeout         = 15 * time.Minute
	LatestVersion      = "$LATEST"
)

// Sentinel errors. The gateway alone maps them to HTTP statuses.
var (
	ErrNotFound      = errors.New("function not found")
	ErrInvalid       = errors.New("invalid request")
	ErrThrottled     = errors.New("too many concurrent invocations")
	ErrTimeout       = errors.New("function timed out")
	ErrFunction      = errors.New("function error")
	ErrMemoryLimit   = errors.New("memory limit exceeded")
	ErrPayloadTooBig = errors.New("payload too large")
	ErrUnavailable   = errors.New("service unavailable")
	ErrConflict      = errors.New("conflict")
)

// FieldError says which field of a spec is wrong and why. It wraps ErrInvalid.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Invalid returns a *FieldError for field.
func Invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Duration is a time.Duration that reads and writes as "1.5s" in JSON and YAML.
// A bare JSON number is taken as seconds.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var secs float64
		if err2 := json.Unmarshal(b, &secs); err2 != nil {
			return fmt.Errorf("duration must be a string like \"3s\" or a number of seconds")
		}
		*d = Duration(secs * float64(time.Second))
		return nil
	}
	return d.parse(s)
}

func (d *Duration) UnmarshalText(b []byte) error { return d.parse(string(b)) }

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) parse(s string) error {
	if s == "" {
		*d = 0
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q: want a value like 500ms, 3s or 5m", s)
	}
	*d = Duration(v)
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
var envKeyRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// ValidateName checks a function name the way Lambda does: 1 to 64 letters,
// digits, hyphens and underscores.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return Invalid("name", "%q is not a valid function name: use 1 to 64 letters, digits, '-' or '_'", truncate(name, 80))
	}
	return nil
}

// Spec is the deployable description of a function ($LATEST or a version).
type Spec struct {
	Name    string `json:"name"`
	Runtime string `json:"runtime"`
	// Code is the content address of the artifact: "sha256:<hex>".
	Code string `json:"code"`
	// Handler is an optional command line for process functions.
	Handler     string            `json:"handler,omitempty"`
	MemoryMB    int               `json:"memory"`
	Timeout     Duration          `json:"timeout"`
	Min         int               `json:"min"`
	Max         int               `json:"max"`
	IdleTimeout Duration          `json:"idle_timeout"`
	Concurrency int               `json:"concurrency,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Version     string            `json:"version,omitempty"`
	Created     time.Time         `json:"created,omitzero"`
	Updated     time.Time         `json:"updated,omitzero"`

	// Async configures asynchronous invocations; nil means the defaults.
	Async *AsyncConfig `json:"async,omitempty"`

	// Uses lists the tables and buckets the function may reach through the
	// SDK; anything else is refused (package data checks it).
	Uses *Uses `json:"uses,omitempty"`
}

// Uses names the data resources a function may use.
type Uses struct {
	Tables  []string `json:"tables,omitempty" yaml:"tables"`
	Buckets []string `json:"buckets,omitempty" yaml:"buckets"`
}

var tableRefRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// BucketNameProblem says what is wrong with a bucket name, "" if nothing.
// The rules are S3's for new buckets: 3 to 63 lower-case letters, digits,
// '-' and '.', starting and ending with a letter or digit, no two dots in
// a row, not an IP address, and none of S3's reserved prefixes and
// suffixes, so that any bucket an S3 client may create, Nimbus may hold.
func BucketNameProblem(name string) string {
	switch {
	case !bucketNameRE.MatchString(name):
		return "use 3 to 63 lower-case letters, digits, '-' or '.', starting and ending with a letter or digit"
	case strings.Contains(name, ".."):
		return "no two dots in a row"
	case net.ParseIP(name) != nil:
		return "not an IP address"
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return "the prefix " + p + " is reserved"
		}
	}
	for _, sfx := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, sfx) {
			return "the suffix " + sfx + " is reserved"
		}
	}
	return ""
}

var bucketNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Validate checks the names (as package data names tables and buckets).
func (u *Uses) Validate() error {
	for i, t := range u.Tables {
		if !tableRefRE.MatchString(t) {
			return Invalid(fmt.Sprintf("uses.tables[%d]", i), "%q is not a valid table name", truncate(t, 80))
		}
	}
	for i, b := range u.Buckets {
		if p := BucketNameProblem(b); p != "" {
			return Invalid(fmt.Sprintf("uses.buckets[%d]", i), "%q is not a valid bucket name: %s", truncate(b, 80), p)
		}
	}
	return nil
}

// Normalize fills defaults in place.
func (s *Spec) Normalize() {
	if s.Runtime == "" {
		s.Runtime = RuntimeWasm
	}
	if s.MemoryMB == 0 {
		s.MemoryMB = DefaultMemoryMB
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(DefaultTimeout)
	}
	if s.Max == 0 {
		s.Max = DefaultMax
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = Duration(DefaultIdleTimeout)
	}
	if s.Concurrency == 0 {
		s.Concurrency = 1
	}
	if s.Version == "" {
		s.Version = LatestVersion
	}
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// Validate reports the first invalid field of a normalized spec.
func (s *Spec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	switch s.Runtime {
	case RuntimeWasm, RuntimeProcess:
	default:
		return Invalid("runtime", "unknown runtime %q: use %q or %q", truncate(s.Runtime, 40), RuntimeWasm, RuntimeProcess)
	}
	if !digestRE.MatchString(s.Code) {
		return Invalid("code", "must be a digest \"sha256:<64 hex digits>\" of uploaded code")
	}
	if s.MemoryMB < 1 || s.MemoryMB > MaxMemoryMB {
		return Invalid("memory", "%d MB is out of range: use 1 to %d", s.MemoryMB, MaxMemoryMB)
	}
	if s.Timeout <= 0 || time.Duration(s.Timeout) > MaxTimeout {
		return Invalid("timeout", "%s is out of range: use a positive duration up to %s", s.Timeout, MaxTimeout)
	}
	if s.Max < 1 || s.Max > 10000 {
		return Invalid("max", "%d is out of range: use 1 to 10000", s.Max)
	}
	if s.Min < 0 || s.Min > s.Max {
		return Invalid("min", "%d is out of range: use 0 to max (%d)", s.Min, s.Max)
	}
	if s.IdleTimeout < 0 {
		return Invalid("idle_timeout", "must not be negative")
	}
	if s.Concurrency < 1 || s.Concurrency > 1000 {
		return Invalid("concurrency", "%d is out of range: use 1 to 1000", s.Concurrency)
	}
	if s.Concurrency > 1 && s.Runtime != RuntimeProcess {
		return Invalid("concurrency", "per-instance concurrency needs runtime %q", RuntimeProcess)
	}
	if s.Handler != "" && s.Runtime != RuntimeProcess {
		return Invalid("handler", "a handler command line needs runtime %q", RuntimeProcess)
	}
	size := 0
	keys := make([]string, 0, len(s.Env))
	for k := range s.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !envKeyRE.MatchString(k) {
			return Invalid("env."+truncate(k, 40), "variable names start with a letter and hold letters, digits and '_'")
		}
		if strings.ContainsRune(s.Env[k], 0) {
			return Invalid("env."+k, "value holds a NUL byte")
		}
		size += len(k) + len(s.Env[k])
	}
	if size > 4096 {
		return Invalid("env", "variables take %d bytes: the limit is 4 KB, as in Lambda", size)
	}
	if s.Async != nil {
		if err := s.Async.Validate(); err != nil {
			return err
		}
	}
	if s.Uses != nil {
		if err := s.Uses.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Bounds and defaults of AsyncConfig.
const (
	DefaultAsyncRetries = 2
	MaxAsyncRetries     = 20
	DefaultAsyncMaxAge  = 6 * time.Hour
	MaxAsyncMaxAge      = 7 * 24 * time.Hour
	DefaultAsyncBackoff = time.Second
	MaxAsyncBackoff     = time.Hour
)

// AsyncConfig configures what happens to asynchronous invocations of a
// function: how often a failure is retried, how long an event may wait, and
// where outcomes go. The zero value means the defaults.
type AsyncConfig struct {
	// Retries after the first attempt fails (default 2; 0 disables retries).
	// A pointer so that an explicit 0 differs from "not set".
	Retries *int `json:"retries,omitempty" yaml:"retries"`
	// MaxAge is how long an event may wait for a successful attempt before
	// it is given up on (default 6h).
	MaxAge Duration `json:"max_age,omitempty" yaml:"max_age"`
	// Backoff is the delay before the first retry; each later retry waits
	// twice as long, with jitter (default 1s).
	Backoff Duration `json:"backoff,omitempty" yaml:"backoff"`
	// OnSuccess and OnFailure receive the outcome. Without OnFailure a
	// failed event goes to the dead-letter queue.
	OnSuccess *Destination `json:"on_success,omitempty" yaml:"on_success"`
	OnFailure *Destination `json:"on_failure,omitempty" yaml:"on_failure"`
}

// Destination is where an async outcome is sent: exactly one of a function
// (invoked asynchronously), a NATS subject, or the dead-letter queue.
type Destination struct {
	Function string `json:"function,omitempty" yaml:"function"`
	Subject  string `json:"subject,omitempty" yaml:"subject"`
	DLQ      bool   `json:"dlq,omitempty" yaml:"dlq"`
}

// RetriesOrDefault returns the number of retries after a failed attempt.
func (a *AsyncConfig) RetriesOrDefault() int {
	if a == nil || a.Retries == nil {
		return DefaultAsyncRetries
	}
	return *a.Retries
}

// MaxAgeOrDefault returns how long an event may wait.
func (a *AsyncConfig) MaxAgeOrDefault() time.Duration {
	if a == nil || a.MaxAge == 0 {
		return DefaultAsyncMaxAge
	}
	return time.Duration(a.MaxAge)
}

// BackoffOrDefault returns the delay before the first retry.
func (a *AsyncConfig) BackoffOrDefault() time.Duration {
	if a == nil || a.Backoff == 0 {
		return DefaultAsyncBackoff
	}
	return time.Duration(a.Backoff)
}

// Validate reports the first invalid field, named from the spec's root.
func (a *AsyncConfig) Validate() error {
	if a.Retries != nil && (*a.Retries < 0 || *a.Retries > MaxAsyncRetries) {
		return Invalid("async.retries", "%d is out of range: use 0 to %d", *a.Retries, MaxAsyncRetries)
	}
	if a.MaxAge != 0 && (time.Duration(a.MaxAge) < time.Second || time.Duration(a.MaxAge) > MaxAsyncMaxAge) {
		return Invalid("async.max_age", "%s is out of range: use 1s to %s", a.MaxAge, MaxAsyncMaxAge)
	}
	if a.Backoff != 0 && (a.Backoff < 0 || time.Duration(a.Backoff) > MaxAsyncBackoff) {
		return Invalid("async.backoff", "%s is out of range: use a positive duration up to %s", a.Backoff, MaxAsyncBackoff)
	}
	if err := a.OnSuccess.validate("async.on_success"); err != nil {
		return err
	}
	return a.OnFailure.validate("async.on_failure")
}

var subjectRE = regexp.MustCompile(`^[^\s*>.]+(\.[^\s*>.]+)*$`)

func (d *Destination) validate(field string) error {
	if d == nil {
		return nil
	}
	n := 0
	if d.Function != "" {
		n++
		if !nameRE.MatchString(d.Function) {
			return Invalid(field+".function", "%q is not a valid function name", truncate(d.Function, 80))
		}
	}
	if d.Subject != "" {
		n++
		if len(d.Subject) > 255 || !subjectRE.MatchString(d.Subject) {
			return Invalid(field+".subject", "%q is not a NATS subject to publish to: use dot-separated tokens without spaces or wildcards", truncate(d.Subject, 80))
		}
	}
	if d.DLQ {
		n++
	}
	if n != 1 {
		return Invalid(field, "give exactly one of function, subject or dlq: true")
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Invocation statuses.
const (
	StatusOK        = "ok"
	StatusError     = "error"
	StatusTimeout   = "timeout"
	StatusThrottled = "throttled"
)

// Record is the one record every invocation leaves behind.
type Record struct {
	ID          string    `json:"id"`
	Function    string    `json:"function"`
	Version     string    `json:"version"`
	Source      string    `json:"source"`
	Status      string    `json:"status"`
	Started     time.Time `json:"started"`
	QueueMS     float64   `json:"queue_ms"`
	InitMS      float64   `json:"init_ms"`
	DurationMS  float64   `json:"duration_ms"`
	BilledMS    int64     `json:"billed_ms"`
	MemoryMB    int       `json:"memory_mb"`
	MaxMemoryMB float64   `json:"max_memory_mb"`
	ColdStart   bool      `json:"cold_start"`
	TraceID     string    `json:"trace_id"`
	Error       string    `json:"error,omitempty"`
	ErrorType   string    `json:"error_type,omitempty"`
	Logs        string    `json:"logs,omitempty"`
	LogsTrunc   bool      `json:"logs_truncated,omitempty"`
	RequestSize int       `json:"request_bytes"`
	ResultSize  int       `json:"response_bytes"`
}

// Alias is a named pointer at a published version, optionally splitting
// traffic with a second version by weight (Lambda's routing config).
type Alias struct {
	Name     string `json:"name"`
	Function string `json:"function"`
	Version  string `json:"version"`
	// Weights sends a share of calls (0 < w < 1) to other versions; the rest
	// goes to Version.
	Weights     map[string]float64 `json:"weights,omitempty"`
	Description string             `json:"description,omitempty"`
	Updated     time.Time          `json:"updated,omitzero"`
}

var aliasRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
var versionRE = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)

// ValidVersion reports whether v names a published version ("1", "2", ...).
func ValidVersion(v string) bool { return versionRE.MatchString(v) }

// Validate checks an alias against the versions that exist.
func (a *Alias) Validate(exists func(version string) bool) error {
	if !aliasRE.MatchString(a.Name) || versionRE.MatchString(a.Name) || a.Name == LatestVersion {
		return Invalid("alias", "%q is not a valid alias name: use 1 to 128 letters, digits, '-' or '_', not only digits", truncate(a.Name, 80))
	}
	if !ValidVersion(a.Version) {
		return Invalid("version", "%q is not a published version number (aliases cannot point at $LATEST)", truncate(a.Version, 40))
	}
	if !exists(a.Version) {
		return Invalid("version", "version %s does not exist: publish it first (nimbus publish %s)", a.Version, a.Function)
	}
	if len(a.Weights) > 1 {
		return Invalid("weights", "an alias splits traffic with at most one other version")
	}
	for v, w := range a.Weights {
		if !ValidVersion(v) || !exists(v) {
			return Invalid("weights", "version %q does not exist", truncate(v, 40))
		}
		if v == a.Version {
			return Invalid("weights", "version %s is the alias's main version", v)
		}
		if !(w > 0 && w < 1) {
			return Invalid("weights", "weight %v of version %s must be between 0 and 1 (exclusive)", w, v)
		}
	}
	return nil
}
