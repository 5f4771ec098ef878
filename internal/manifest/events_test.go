package manifest

import (
	"strings"
	"testing"
	"time"
)

const eventsManifest = `
functions:
  orders:
    code: ./x.wasm
    async: {retries: 1, max_age: 1h, backoff: 2s, on_failure: {function: alert}, on_success: {subject: done}}
    triggers:
      - schedule: "rate(5 minutes)"
        input: {at: "<aws.scheduler.scheduled-time>", n: 1}
      - stream: orders
        batch: 10
        window: 1s
        concurrency: 2
        ordered_by: key
      - subject: "orders.*"
      - webhook: github-push
        style: github
        secret_env: GH_SECRET
rules:
  big-orders:
    pattern: {type: [com.example.order], data: {total: [{numeric: [">", 100]}]}}
    targets:
      - function: notify
        input_transform: {input_paths_map: {t: "$.data.total"}, input_template: '{"total": <t>}'}
      - subject: audit
`

func TestManifestTriggersAndRules(t *testing.T) {
	m, err := Parse([]byte(eventsManifest), "")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	f := m.Functions["orders"]
	if len(f.Triggers) != 4 || f.Triggers[1].Batch != 10 || f.Triggers[1].OrderedBy != "key" || f.Triggers[3].Style != "github" {
		t.Errorf("triggers = %+v", f.Triggers)
	}
	if got := string(f.Triggers[0].Input); got != `{"at":"<aws.scheduler.scheduled-time>","n":1}` {
		t.Errorf("schedule input = %s, want the YAML as JSON", got)
	}
	spec := f.Spec("orders", "sha256:"+strings.Repeat("0", 64))
	if spec.Async == nil || spec.Async.RetriesOrDefault() != 1 || spec.Async.MaxAgeOrDefault() != time.Hour || spec.Async.OnFailure.Function != "alert" {
		t.Errorf("async = %+v", spec.Async)
	}
	r := m.Rules["big-orders"]
	if r == nil || len(r.Targets) != 2 || r.Targets[0].InputTransform.InputPathsMap["t"] != "$.data.total" {
		t.Errorf("rule = %+v", r)
	}
}

func TestManifestEventErrorsNameTheField(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"bad cron", "functions:\n  f:\n    code: x.wasm\n    triggers: [{schedule: \"99 * * * *\"}]\n", "functions.f.triggers[0].schedule"},
		{"two kinds", "functions:\n  f:\n    code: x.wasm\n    triggers: [{schedule: \"rate(1 minute)\", stream: s}]\n", "functions.f.triggers[0]"},
		{"unknown key", "functions:\n  f:\n    code: x.wasm\n    triggers: [{schedul: \"rate(1 minute)\"}]\n", "unknown key schedul"},
		{"bad retries", "functions:\n  f:\n    code: x.wasm\n    async: {retries: 99}\n", "functions.f.async.retries"},
		{"bad destination", "functions:\n  f:\n    code: x.wasm\n    async: {on_failure: {function: a, subject: b}}\n", "functions.f.async.on_failure"},
		{"bad max_age", "functions:\n  f:\n    code: x.wasm\n    async: {max_age: soon}\n", "bad duration"},
		{"bad pattern", "functions:\n  f:\n    code: x.wasm\nrules:\n  r:\n    pattern: {a: [{numeric: [\">\"]}]}\n    targets: [{function: f}]\n", "rules.r.pattern.a"},
		{"no targets", "functions:\n  f:\n    code: x.wasm\nrules:\n  r:\n    pattern: {a: [x]}\n", "rules.r.targets"},
		{"workflow target", "functions:\n  f:\n    code: x.wasm\nrules:\n  r:\n    pattern: {a: [x]}\n    targets: [{workflow: w}]\n", "rules.r.targets[0].workflow"},
		{"duplicate webhook", "functions:\n  f:\n    code: x.wasm\n    triggers: [{webhook: w, style: github, secret_env: S}]\n  g:\n    code: x.wasm\n    triggers: [{webhook: w, style: github, secret_env: S}]\n", "functions.g.triggers[0].webhook"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
