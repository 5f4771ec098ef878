package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/nimbus-run/nimbus/internal/events/pattern"
	"github.com/nimbus-run/nimbus/internal/events/schedule"
	"github.com/nimbus-run/nimbus/internal/events/webhook"
	"github.com/nimbus-run/nimbus/internal/function"
)

// Error codes of the events surfaces.
const (
	CodeUnsupportedMediaType = "UnsupportedMediaType"
	CodeBadSignature         = "BadSignature"
)

// Headers of asynchronous invocation.
const (
	// HeaderCallbackURL on POST /async-function/{name} asks for the result
	// to be POSTed to that URL when the invocation is done.
	HeaderCallbackURL = "X-Callback-Url"
	// HeaderAttempts on a callback says how many attempts were made.
	HeaderAttempts = "X-Nimbus-Attempts"
)

// Async invocation statuses.
const (
	AsyncQueued    = "queued"
	AsyncSucceeded = "succeeded"
	AsyncFailed    = "failed"
)

// AsyncConfig is function.AsyncConfig on the wire (durations as strings).
type AsyncConfig struct {
	Retries   *int         `json:"retries,omitempty"`
	MaxAge    string       `json:"max_age,omitempty"`
	Backoff   string       `json:"backoff,omitempty"`
	OnSuccess *Destination `json:"on_success,omitempty"`
	OnFailure *Destination `json:"on_failure,omitempty"`
}

// Destination receives an async outcome: a function, a subject or the DLQ.
type Destination struct {
	Function string `json:"function,omitempty"`
	Subject  string `json:"subject,omitempty"`
	DLQ      bool   `json:"dlq,omitempty"`
}

// Accepted is the body of a 202 answer to an asynchronous invocation.
type Accepted struct {
	InvocationID string `json:"invocation_id"`
}

// Invocation is the tracked state of an asynchronous invocation
// (GET /api/v1/invocations/{id}).
type Invocation struct {
	ID       string    `json:"id"`
	Function string    `json:"function"`
	Status   string    `json:"status"` // queued, succeeded, failed
	Source   string    `json:"source,omitempty"`
	Enqueued time.Time `json:"enqueued"`
	Finished time.Time `json:"finished,omitzero"`
	Attempts int       `json:"attempts"`
	// Result is the function's result when it succeeded (JSON results as
	// JSON, anything else as a JSON string), up to 256 KiB.
	Result          json.RawMessage `json:"result,omitempty"`
	ResultTruncated bool            `json:"result_truncated,omitempty"`
	Error           string          `json:"error,omitempty"`
	ErrorType       string          `json:"error_type,omitempty"`
	// Record is the invocation record of the last attempt.
	Record *Record `json:"record,omitempty"`
}

// DeadLetter is one failed event in a function's dead-letter queue.
type DeadLetter struct {
	Seq       uint64          `json:"seq"`
	ID        string          `json:"id"`
	Function  string          `json:"function"`
	Failed    time.Time       `json:"failed"`
	Enqueued  time.Time       `json:"enqueued"`
	Attempts  int             `json:"attempts"`
	Reason    string          `json:"reason"` // error, max_age, retries
	Error     string          `json:"error,omitempty"`
	ErrorType string          `json:"error_type,omitempty"`
	Source    string          `json:"source,omitempty"`
	Payload   json.RawMessage `json:"payload,omitempty"`
	// PayloadBase64 holds a payload that is not JSON.
	PayloadBase64 []byte `json:"payload_base64,omitempty"`
}

// DeadLetterList is the body of GET /api/v1/dlq/{function}.
type DeadLetterList struct {
	Function string       `json:"function"`
	Total    uint64       `json:"total"`
	Entries  []DeadLetter `json:"entries"`
}

// ReplayRequest is the body of POST /api/v1/dlq/{function}/replay: the ids
// (or sequence numbers) to replay, or all of them.
type ReplayRequest struct {
	IDs []string `json:"ids,omitempty"`
	All bool     `json:"all,omitempty"`
}

// ReplayResult maps each replayed dead letter to its new invocation id.
type ReplayResult struct {
	Replayed []Replayed `json:"replayed"`
}

// Replayed is one replayed dead letter.
type Replayed struct {
	ID           string `json:"id"`
	InvocationID string `json:"invocation_id"`
}

// PurgeResult is the body of DELETE /api/v1/dlq/{function}.
type PurgeResult struct {
	Purged uint64 `json:"purged"`
}

// JSON is raw JSON that a manifest may write as YAML.
type JSON []byte

// MarshalJSON writes the raw JSON (null when empty).
func (j JSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// UnmarshalJSON keeps a copy of b.
func (j *JSON) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*j = nil
		return nil
	}
	*j = append((*j)[:0], b...)
	return nil
}

// UnmarshalYAML converts a YAML value to JSON.
func (j *JSON) UnmarshalYAML(n *yaml.Node) error {
	var v any
	if err := n.Decode(&v); err != nil {
		return err
	}
	v, err := yamlToJSON(v)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	// Without HTML escaping: "<" stays "<", as placeholders need.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*j = bytes.TrimSpace(buf.Bytes())
	return nil
}

func yamlToJSON(v any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			c, err := yamlToJSON(e)
			if err != nil {
				return nil, err
			}
			t[k] = c
		}
		return t, nil
	case map[any]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("key %v is not a string", k)
			}
			c, err := yamlToJSON(e)
			if err != nil {
				return nil, err
			}
			m[ks] = c
		}
		return m, nil
	case []any:
		for i, e := range t {
			c, err := yamlToJSON(e)
			if err != nil {
				return nil, err
			}
			t[i] = c
		}
		return t, nil
	case time.Time:
		// YAML reads unquoted timestamps as times; JSON wants the text.
		return t.Format(time.RFC3339Nano), nil
	}
	return v, nil
}

// Trigger kinds.
const (
	KindSchedule = "schedule"
	KindStream   = "stream"
	KindSubject  = "subject"
	KindWebhook  = "webhook"
	// KindTable and KindBucket are run by the data services (docs/data.md).
	KindTable  = "table"
	KindBucket = "bucket"
)

// Trigger declares one source of events for a function: exactly one of
// Schedule, Stream, Subject, Webhook, Table or Bucket is set, and only the
// fields of that kind. See docs/events.md.
type Trigger struct {
	// Name identifies the trigger; default "<function>-<index>".
	Name string `json:"name,omitempty" yaml:"name"`

	// Schedule is a schedule expression: cron (5 or 6 fields), cron(...),
	// rate(...), at(...), @every, with an optional "TZ=Zone " prefix.
	Schedule string `json:"schedule,omitempty" yaml:"schedule"`
	// Timezone is the IANA zone of cron and at times without one.
	Timezone string `json:"timezone,omitempty" yaml:"timezone"`
	// Input is the event's data: fixed JSON in which strings may use
	// <aws.scheduler.scheduled-time> and the other placeholders.
	Input JSON `json:"input,omitempty" yaml:"input"`
	// CatchUp is how old a tick missed while no node ran may be and still
	// fire at start (default 1h; "0s" records every missed tick as missed).
	CatchUp string `json:"catch_up,omitempty" yaml:"catch_up"`

	// Stream names a JetStream stream; Subject a NATS subject (wildcards
	// allowed) that Nimbus captures in a stream of its own.
	Stream  string `json:"stream,omitempty" yaml:"stream"`
	Subject string `json:"subject,omitempty" yaml:"subject"`
	// Batch is the most records per invocation (default 1, at most 10000).
	Batch int `json:"batch,omitempty" yaml:"batch"`
	// Window is how long to wait to fill a batch (default 0: no waiting).
	Window string `json:"window,omitempty" yaml:"window"`
	// Concurrency bounds the batches in flight per node (default 1).
	Concurrency int `json:"concurrency,omitempty" yaml:"concurrency"`
	// OrderedBy keeps records of one key in order: "key" (the CloudEvents
	// partitionkey attribute) or "subject".
	OrderedBy string `json:"ordered_by,omitempty" yaml:"ordered_by"`
	// Retries of a failed record before it is dead-lettered (default 2).
	Retries *int `json:"retries,omitempty" yaml:"retries"`

	// Webhook names the endpoint POST /webhook/{name}.
	Webhook string `json:"webhook,omitempty" yaml:"webhook"`
	// Style is github, stripe or hmac.
	Style string `json:"style,omitempty" yaml:"style"`
	// SecretEnv names the variable holding the signing secret: the
	// function's env first, then the node's environment.
	SecretEnv string `json:"secret_env,omitempty" yaml:"secret_env"`
	// Header, Prefix and Encoding configure the hmac style's signature;
	// Prefix also filters a bucket trigger's keys.
	Header   string `json:"header,omitempty" yaml:"header"`
	Prefix   string `json:"prefix,omitempty" yaml:"prefix"`
	Encoding string `json:"encoding,omitempty" yaml:"encoding"`
	// Tolerance is the replay window of signed timestamps (stripe; default 5m).
	Tolerance string `json:"tolerance,omitempty" yaml:"tolerance"`

	// Table names a table whose changes invoke the function in batches
	// (Batch: default 10, at most 1000; Retries). See docs/data.md.
	Table string `json:"table,omitempty" yaml:"table"`
	// Bucket names a bucket whose object events invoke the function
	// (Batch default 1; Retries), filtered by Events ("created",
	// "deleted"; default both) and by key Prefix.
	Bucket string   `json:"bucket,omitempty" yaml:"bucket"`
	Events []string `json:"events,omitempty" yaml:"events"`
	// Start is where a stream, subject, table or bucket trigger begins
	// reading when it is first deployed: "new" (the default, but for a
	// subject trigger's stream, read from its start), "oldest" (every
	// message the stream keeps; every change the table keeps; every object
	// of the bucket), a revision (a stream sequence), or an RFC 3339 time
	// (ParseStart). A trigger deployed before keeps its position: rename
	// it to start it again.
	Start string `json:"start,omitempty" yaml:"start"`
}

// ParseStart reads a start position (Trigger.Start, the from of GET
// /api/v1/tables/{t}/changes): "new" or "" (the zero values), "oldest",
// a revision (a positive integer) or an RFC 3339 time.
func ParseStart(s string) (oldest bool, revision uint64, at time.Time, err error) {
	switch s {
	case "", "new":
		return false, 0, time.Time{}, nil
	case "oldest":
		return true, 0, time.Time{}, nil
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil && n > 0 {
		return false, n, time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return false, 0, t, nil
	}
	return false, 0, time.Time{}, fmt.Errorf("%q is not a start: use new, oldest, a revision (1, 2, ...) or an RFC 3339 time (2026-11-29T18:00:00Z)", trunc(s))
}

// Kind returns which kind of trigger t is ("" when none or several).
func (t *Trigger) Kind() string {
	kind := ""
	for k, set := range map[string]bool{KindSchedule: t.Schedule != "", KindStream: t.Stream != "", KindSubject: t.Subject != "", KindWebhook: t.Webhook != "",
		KindTable: t.Table != "", KindBucket: t.Bucket != ""} {
		if set {
			if kind != "" {
				return ""
			}
			kind = k
		}
	}
	return kind
}

var (
	triggerNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	streamNameRE  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,255}$`)
	subjectRE     = regexp.MustCompile(`^([^\s*>.]+|\*)(\.([^\s*>.]+|\*))*(\.>)?$|^>$`)
	pubSubjectRE  = regexp.MustCompile(`^[^\s*>.]+(\.[^\s*>.]+)*$`)
	// As internal/data's ValidateTableName.
	dataTableRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	// MaxBatch bounds Trigger.Batch.
	MaxBatch = 10000
)

// ValidSubject reports whether s is a NATS subject that can be published
// to (no wildcards).
func ValidSubject(s string) bool { return len(s) <= 255 && pubSubjectRE.MatchString(s) }

// Validate checks a trigger; errors are *function.FieldError with Field
// prefixed by field (for example "triggers[0]").
func (t *Trigger) Validate(field string) error {
	bad := func(f, format string, args ...any) error {
		return function.Invalid(field+"."+f, format, args...)
	}
	kind := t.Kind()
	if kind == "" {
		return function.Invalid(field, "give exactly one of schedule, stream, subject, webhook, table or bucket")
	}
	if t.Name != "" && !triggerNameRE.MatchString(t.Name) {
		return bad("name", "%q: use 1 to 128 letters, digits, '-' or '_'", trunc(t.Name))
	}
	only := map[string]bool{}
	switch kind {
	case KindSchedule:
		only = map[string]bool{"schedule": true, "timezone": true, "input": true, "catch_up": true}
		loc := time.UTC
		if t.Timezone != "" {
			l, err := time.LoadLocation(t.Timezone)
			if err != nil || strings.EqualFold(t.Timezone, "local") {
				return bad("timezone", "unknown time zone %q: use an IANA name like Europe/Paris", trunc(t.Timezone))
			}
			loc = l
		}
		if _, err := schedule.ParseInLocation(t.Schedule, loc); err != nil {
			return bad("schedule", "%v", err)
		}
		if len(t.Input) > 0 && !json.Valid(t.Input) {
			return bad("input", "is not valid JSON")
		}
		if t.CatchUp != "" {
			if d, err := time.ParseDuration(t.CatchUp); err != nil || d < 0 {
				return bad("catch_up", "%q is not a duration like 1h", trunc(t.CatchUp))
			}
		}
	case KindStream, KindSubject:
		only = map[string]bool{"stream": true, "subject": true, "batch": true, "window": true, "concurrency": true, "ordered_by": true, "retries": true, "start": true}
		if _, _, _, err := ParseStart(t.Start); err != nil {
			return bad("start", "%v", err)
		}
		if kind == KindStream && !streamNameRE.MatchString(t.Stream) {
			return bad("stream", "%q is not a JetStream stream name: use letters, digits, '-' or '_'", trunc(t.Stream))
		}
		if kind == KindSubject && (len(t.Subject) > 255 || !subjectRE.MatchString(t.Subject)) {
			return bad("subject", "%q is not a NATS subject: dot-separated tokens, '*' for one token, a final '>' for the rest", trunc(t.Subject))
		}
		if t.Batch < 0 || t.Batch > MaxBatch {
			return bad("batch", "%d is out of range: use 1 to %d", t.Batch, MaxBatch)
		}
		if t.Window != "" {
			if d, err := time.ParseDuration(t.Window); err != nil || d < 0 || d > 5*time.Minute {
				return bad("window", "%q: use a duration from 0s to 5m", trunc(t.Window))
			}
		}
		if t.Concurrency < 0 || t.Concurrency > 1000 {
			return bad("concurrency", "%d is out of range: use 1 to 1000", t.Concurrency)
		}
		switch t.OrderedBy {
		case "", "key", "subject":
		default:
			return bad("ordered_by", "%q: use key or subject", trunc(t.OrderedBy))
		}
		if t.Retries != nil && (*t.Retries < 0 || *t.Retries > function.MaxAsyncRetries) {
			return bad("retries", "%d is out of range: use 0 to %d", *t.Retries, function.MaxAsyncRetries)
		}
	case KindTable, KindBucket:
		only = map[string]bool{"batch": true, "retries": true, "start": true}
		if _, _, _, err := ParseStart(t.Start); err != nil {
			return bad("start", "%v", err)
		}
		if kind == KindTable && !dataTableRE.MatchString(t.Table) {
			return bad("table", "%q is not a table name: use 1 to 64 letters, digits, '-' or '_', starting with a letter or digit", trunc(t.Table))
		}
		if kind == KindBucket {
			only["events"], only["prefix"] = true, true
			if p := function.BucketNameProblem(t.Bucket); p != "" {
				return bad("bucket", "%q is not a bucket name: %s", trunc(t.Bucket), p)
			}
			for i, e := range t.Events {
				if e != "created" && e != "deleted" {
					return bad(fmt.Sprintf("events[%d]", i), "%q: use created or deleted", trunc(e))
				}
			}
			if len(t.Prefix) > 1024 {
				return bad("prefix", "is longer than a key (1024 bytes)")
			}
		}
		if t.Batch < 0 || t.Batch > 1000 {
			return bad("batch", "%d is out of range: use 1 to 1000", t.Batch)
		}
		if t.Retries != nil && (*t.Retries < 0 || *t.Retries > function.MaxAsyncRetries) {
			return bad("retries", "%d is out of range: use 0 to %d", *t.Retries, function.MaxAsyncRetries)
		}
	case KindWebhook:
		only = map[string]bool{"webhook": true, "style": true, "secret_env": true, "header": true, "prefix": true, "encoding": true, "tolerance": true}
		if !triggerNameRE.MatchString(t.Webhook) {
			return bad("webhook", "%q: use 1 to 128 letters, digits, '-' or '_' (it is the path /webhook/NAME)", trunc(t.Webhook))
		}
		if t.SecretEnv == "" {
			return bad("secret_env", "is required: the variable holding the signing secret")
		}
		v := webhook.Verifier{Style: t.Style, Secret: []byte("x"), Header: t.Header, Prefix: t.Prefix, Encoding: t.Encoding}
		if t.Style == "" {
			return bad("style", "is required: github, stripe or hmac")
		}
		if err := v.Validate(); err != nil {
			f := "style"
			switch {
			case strings.Contains(err.Error(), "header"):
				f = "header"
			case strings.Contains(err.Error(), "encoding"):
				f = "encoding"
			}
			return bad(f, "%s", strings.TrimPrefix(err.Error(), "webhook: "))
		}
		if t.Tolerance != "" {
			if _, err := time.ParseDuration(t.Tolerance); err != nil {
				return bad("tolerance", "%q is not a duration like 5m", trunc(t.Tolerance))
			}
		}
	}
	for f, set := range map[string]bool{
		"timezone": t.Timezone != "", "input": len(t.Input) > 0, "catch_up": t.CatchUp != "",
		"batch": t.Batch != 0, "window": t.Window != "", "concurrency": t.Concurrency != 0, "ordered_by": t.OrderedBy != "", "retries": t.Retries != nil,
		"style": t.Style != "", "secret_env": t.SecretEnv != "", "header": t.Header != "", "prefix": t.Prefix != "", "encoding": t.Encoding != "", "tolerance": t.Tolerance != "",
		"events": len(t.Events) > 0, "start": t.Start != "",
	} {
		if set && !only[f] {
			return bad(f, "does not apply to a %s trigger", kind)
		}
	}
	return nil
}

// Rule sends the events that match Pattern to its targets (the EventBridge
// idea). See docs/events.md.
type Rule struct {
	Name        string `json:"name,omitempty" yaml:"-"`
	Description string `json:"description,omitempty" yaml:"description"`
	// Pattern is an EventBridge-style pattern over the CloudEvent's JSON form.
	Pattern  JSON         `json:"pattern" yaml:"pattern"`
	Targets  []RuleTarget `json:"targets" yaml:"targets"`
	Disabled bool         `json:"disabled,omitempty" yaml:"disabled"`
	Updated  time.Time    `json:"updated,omitzero" yaml:"-"`
}

// RuleTarget is where a rule sends a match: exactly one of Function,
// Workflow or Subject, with an optional input transformation.
type RuleTarget struct {
	Function       string          `json:"function,omitempty" yaml:"function"`
	Workflow       string          `json:"workflow,omitempty" yaml:"workflow"`
	Subject        string          `json:"subject,omitempty" yaml:"subject"`
	InputTransform *InputTransform `json:"input_transform,omitempty" yaml:"input_transform"`
}

// InputTransform is EventBridge's input transformer; see pattern.Transform.
type InputTransform struct {
	InputPath     string            `json:"input_path,omitempty" yaml:"input_path"`
	InputPathsMap map[string]string `json:"input_paths_map,omitempty" yaml:"input_paths_map"`
	InputTemplate string            `json:"input_template,omitempty" yaml:"input_template"`
}

// Transform returns the pattern package's form of it.
func (it *InputTransform) Transform() pattern.Transform {
	if it == nil {
		return pattern.Transform{}
	}
	return pattern.Transform{InputPath: it.InputPath, InputPathsMap: it.InputPathsMap, InputTemplate: it.InputTemplate}
}

// MaxRuleTargets bounds Rule.Targets, as in EventBridge.
const MaxRuleTargets = 5

// ValidateRuleName checks a rule name.
func ValidateRuleName(name string) error {
	if !triggerNameRE.MatchString(name) {
		return function.Invalid("name", "%q is not a valid rule name: use 1 to 128 letters, digits, '-' or '_'", trunc(name))
	}
	return nil
}

// Validate checks a rule; errors are *function.FieldError with Field
// prefixed by field (for example "rules.big-orders").
func (r *Rule) Validate(field string) error {
	pre := func(f string) string {
		if field == "" {
			return f
		}
		return field + "." + f
	}
	if len(r.Pattern) == 0 {
		return function.Invalid(pre("pattern"), "is required: an EventBridge-style pattern object")
	}
	if _, err := pattern.Compile(r.Pattern); err != nil {
		var pe *pattern.Error
		if errors.As(err, &pe) && pe.Path != "" {
			return function.Invalid(pre("pattern."+pe.Path), "%v", err)
		}
		return function.Invalid(pre("pattern"), "%v", err)
	}
	if len(r.Targets) == 0 || len(r.Targets) > MaxRuleTargets {
		return function.Invalid(pre("targets"), "give 1 to %d targets", MaxRuleTargets)
	}
	for i, t := range r.Targets {
		tf := pre(fmt.Sprintf("targets[%d]", i))
		n := 0
		if t.Function != "" {
			n++
			if err := function.ValidateName(t.Function); err != nil {
				return function.Invalid(tf+".function", "%q is not a valid function name", trunc(t.Function))
			}
		}
		if t.Workflow != "" {
			n++
			return function.Invalid(tf+".workflow", "workflow targets are not available yet")
		}
		if t.Subject != "" {
			n++
			if !ValidSubject(t.Subject) {
				return function.Invalid(tf+".subject", "%q is not a NATS subject to publish to", trunc(t.Subject))
			}
		}
		if n != 1 {
			return function.Invalid(tf, "give exactly one of function, workflow or subject")
		}
		if t.InputTransform != nil {
			if err := t.InputTransform.Transform().Validate(); err != nil {
				return function.Invalid(tf+".input_transform", "%v", err)
			}
		}
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// PutTriggersRequest is the body of PUT /api/v1/triggers/{function}: the
// function's whole set of triggers (an empty list removes them).
type PutTriggersRequest struct {
	Triggers []Trigger `json:"triggers"`
}

// PutResult says what a PUT of triggers or a rule changed.
type PutResult struct {
	Name   string `json:"name"`
	Change string `json:"change"` // created, updated, unchanged, deleted
}

// TriggerStatus is one trigger with its state on the answering node.
type TriggerStatus struct {
	Function string  `json:"function"`
	Name     string  `json:"name"`
	Kind     string  `json:"kind"`
	Trigger  Trigger `json:"trigger"`
	// State is "active", or "error: ..." when the trigger cannot run.
	State string `json:"state"`
	// Schedules.
	NextFire  time.Time `json:"next_fire,omitzero"`
	LastFired time.Time `json:"last_fired,omitzero"`
	Missed    int       `json:"missed,omitempty"`
	// Streams and subjects: the stream read, and records not yet acknowledged.
	StreamName string `json:"stream_name,omitempty"`
	Pending    uint64 `json:"pending,omitempty"`
	// Webhooks.
	Path     string `json:"path,omitempty"`
	Accepted uint64 `json:"accepted,omitempty"`
	Rejected uint64 `json:"rejected,omitempty"`
}

// TriggerList is the body of GET /api/v1/triggers.
type TriggerList struct {
	Triggers []TriggerStatus `json:"triggers"`
}

// RuleList is the body of GET /api/v1/rules.
type RuleList struct {
	Rules []Rule `json:"rules"`
}

// ScheduleList is the body of GET /api/v1/schedules.
type ScheduleList struct {
	Schedules []TriggerStatus `json:"schedules"`
}

// Published is the body of a 202 answer to POST /api/v1/events.
type Published struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
	Stream  string `json:"stream"`
	Seq     uint64 `json:"seq"`
}

// InvokeAsync queues an asynchronous invocation and returns its id once the
// event is durably stored. callbackURL, when set, receives the result.
func (c *Client) InvokeAsync(ctx context.Context, name string, payload []byte, callbackURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/async-function/"+url.PathEscape(name), bytes.NewReader(payload))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	if callbackURL != "" {
		req.Header.Set(HeaderCallbackURL, callbackURL)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return "", fmt.Errorf("cannot reach Nimbus at %s (is `nimbus up` running? set NIMBUS_URL or --server): %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return "", decodeError(resp)
	}
	var out Accepted
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return "", fmt.Errorf("async invoke: bad response: %w", err)
	}
	return out.InvocationID, nil
}

// Invocation returns the state of an asynchronous invocation.
func (c *Client) Invocation(ctx context.Context, id string) (*Invocation, error) {
	var out Invocation
	return &out, c.json(ctx, http.MethodGet, "/api/v1/invocations/"+url.PathEscape(id), nil, &out)
}

// DeadLetters lists a function's dead-letter queue, oldest first.
func (c *Client) DeadLetters(ctx context.Context, function string, limit int) (*DeadLetterList, error) {
	var out DeadLetterList
	return &out, c.json(ctx, http.MethodGet, fmt.Sprintf("/api/v1/dlq/%s?limit=%d", url.PathEscape(function), limit), nil, &out)
}

// DeadLetter returns one dead letter by invocation id or sequence number.
func (c *Client) DeadLetter(ctx context.Context, function, id string) (*DeadLetter, error) {
	var out DeadLetter
	return &out, c.json(ctx, http.MethodGet, "/api/v1/dlq/"+url.PathEscape(function)+"/"+url.PathEscape(id), nil, &out)
}

// Replay queues dead letters again and removes them from the queue.
func (c *Client) Replay(ctx context.Context, function string, req ReplayRequest) (*ReplayResult, error) {
	var out ReplayResult
	return &out, c.json(ctx, http.MethodPost, "/api/v1/dlq/"+url.PathEscape(function)+"/replay", req, &out)
}

// PurgeDeadLetters empties a function's dead-letter queue.
func (c *Client) PurgeDeadLetters(ctx context.Context, function string) (*PurgeResult, error) {
	var out PurgeResult
	return &out, c.json(ctx, http.MethodDelete, "/api/v1/dlq/"+url.PathEscape(function), nil, &out)
}

// PutTriggers replaces a function's triggers.
func (c *Client) PutTriggers(ctx context.Context, function string, triggers []Trigger) (*PutResult, error) {
	if triggers == nil {
		triggers = []Trigger{}
	}
	var out PutResult
	return &out, c.json(ctx, http.MethodPut, "/api/v1/triggers/"+url.PathEscape(function), PutTriggersRequest{Triggers: triggers}, &out)
}

// Triggers lists every trigger with its state.
func (c *Client) Triggers(ctx context.Context) ([]TriggerStatus, error) {
	var out TriggerList
	return out.Triggers, c.json(ctx, http.MethodGet, "/api/v1/triggers", nil, &out)
}

// DeleteTriggers removes a function's triggers.
func (c *Client) DeleteTriggers(ctx context.Context, function string) error {
	return c.json(ctx, http.MethodDelete, "/api/v1/triggers/"+url.PathEscape(function), nil, nil)
}

// PutRule creates or updates a rule.
func (c *Client) PutRule(ctx context.Context, name string, rule *Rule) (*PutResult, error) {
	var out PutResult
	return &out, c.json(ctx, http.MethodPut, "/api/v1/rules/"+url.PathEscape(name), rule, &out)
}

// Rules lists every rule.
func (c *Client) Rules(ctx context.Context) ([]Rule, error) {
	var out RuleList
	return out.Rules, c.json(ctx, http.MethodGet, "/api/v1/rules", nil, &out)
}

// DeleteRule removes a rule.
func (c *Client) DeleteRule(ctx context.Context, name string) error {
	return c.json(ctx, http.MethodDelete, "/api/v1/rules/"+url.PathEscape(name), nil, nil)
}

// Schedules lists schedule triggers with their next fire times.
func (c *Client) Schedules(ctx context.Context) ([]TriggerStatus, error) {
	var out ScheduleList
	return out.Schedules, c.json(ctx, http.MethodGet, "/api/v1/schedules", nil, &out)
}

// PublishEvent publishes a CloudEvent in structured mode (event is its JSON
// form) to subject ("" for the event bus).
func (c *Client) PublishEvent(ctx context.Context, subject string, event []byte) (*Published, error) {
	path := "/api/v1/events"
	if subject != "" {
		path += "?subject=" + url.QueryEscape(subject)
	}
	resp, err := c.do(ctx, http.MethodPost, path, bytes.NewReader(event), "application/cloudevents+json")
	var out Published
	if err := answer(resp, err, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// FunctionFromSpec returns a function's spec in its wire form.
func FunctionFromSpec(s *function.Spec) Function {
	return Function{
		Name: s.Name, Runtime: s.Runtime, Code: s.Code, Handler: s.Handler, Memory: s.MemoryMB,
		Timeout: s.Timeout.String(), Min: s.Min, Max: s.Max, IdleTimeout: s.IdleTimeout.String(),
		Concurrency: s.Concurrency, Env: s.Env, Version: s.Version, Created: s.Created, Updated: s.Updated,
		Async: AsyncFromSpec(s.Async), Uses: (*Uses)(s.Uses),
	}
}

// AsyncFromSpec returns a function's async configuration in its wire form.
func AsyncFromSpec(a *function.AsyncConfig) *AsyncConfig {
	if a == nil {
		return nil
	}
	out := &AsyncConfig{Retries: a.Retries}
	if a.MaxAge != 0 {
		out.MaxAge = a.MaxAge.String()
	}
	if a.Backoff != 0 {
		out.Backoff = a.Backoff.String()
	}
	if d := a.OnSuccess; d != nil {
		out.OnSuccess = &Destination{Function: d.Function, Subject: d.Subject, DLQ: d.DLQ}
	}
	if d := a.OnFailure; d != nil {
		out.OnFailure = &Destination{Function: d.Function, Subject: d.Subject, DLQ: d.DLQ}
	}
	return out
}
