package pattern

import (
	"strings"
	"testing"
	"time"
)

const transformEvent = `{"specversion":"1.0","id":"7bf73129","type":"EC2 Instance State-change Notification","source":"aws.ec2","time":"2015-11-11T21:29:54Z","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],"data":{"instance-id":"i-0123456789","state":"RUNNING","count":12345678901234567890,"quote":"say \"hi\" <b>","tags":[{"k":"a"},{"k":"b"}],"obj":{"x":1}}}`

func TestTransform(t *testing.T) {
	ctx := TransformContext{RuleName: "r1", RuleARN: "arn:nimbus:events:::rule/r1", IngestionTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	paths := map[string]string{
		"instance": "$.data.instance-id",
		"state":    "$.data.state",
		"count":    "$.data.count",
		"quote":    "$.data.quote",
		"obj":      "$.data.obj",
		"missing":  "$.data.nope",
		"first":    "$.resources[0]",
		"keys":     "$.data.tags[*].k",
		"bracket":  "$['data']['state']",
	}
	tests := []struct {
		name string
		tr   Transform
		want string
	}{
		{"passthrough", Transform{}, transformEvent},
		{"input path", Transform{InputPath: "$.data.obj"}, `{"x":1}`},
		{"input path root", Transform{InputPath: "$"}, ``}, // checked below: whole event re-encoded
		{"input path missing", Transform{InputPath: "$.data.nope"}, `null`},
		{"input path keeps number text", Transform{InputPath: "$.data.count"}, `12345678901234567890`},
		// EventBridge's documented examples: values outside quotes are JSON,
		// inside quotes they are text.
		{"doc json example", Transform{InputPathsMap: paths, InputTemplate: `{"instance": <instance>, "state": [9, <state>, true], "Transformed": "Yes"}`},
			`{"instance": "i-0123456789", "state": [9, "RUNNING", true], "Transformed": "Yes"}`},
		{"doc string example", Transform{InputPathsMap: paths, InputTemplate: `"instance <instance> is in state <state>"`},
			`"instance i-0123456789 is in state RUNNING"`},
		{"number outside", Transform{InputPathsMap: paths, InputTemplate: `{"n": <count>}`}, `{"n": 12345678901234567890}`},
		{"number inside", Transform{InputPathsMap: paths, InputTemplate: `{"n": "#<count>"}`}, `{"n": "#12345678901234567890"}`},
		{"escaping inside", Transform{InputPathsMap: paths, InputTemplate: `{"q": "<quote>"}`}, `{"q": "say \"hi\" <b>"}`},
		{"escaping outside", Transform{InputPathsMap: paths, InputTemplate: `{"q": <quote>}`}, `{"q": "say \"hi\" <b>"}`},
		{"object outside", Transform{InputPathsMap: paths, InputTemplate: `{"o": <obj>}`}, `{"o": {"x":1}}`},
		{"object inside", Transform{InputPathsMap: paths, InputTemplate: `{"o": "<obj>"}`}, `{"o": "{\"x\":1}"}`},
		{"missing outside", Transform{InputPathsMap: paths, InputTemplate: `{"m": <missing>}`}, `{"m": null}`},
		{"missing inside", Transform{InputPathsMap: paths, InputTemplate: `{"m": "[<missing>]"}`}, `{"m": "[]"}`},
		{"array index", Transform{InputPathsMap: paths, InputTemplate: `{"r": <first>}`}, `{"r": "arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"}`},
		{"wildcard path", Transform{InputPathsMap: paths, InputTemplate: `{"k": <keys>}`}, `{"k": ["a","b"]}`},
		{"bracket path", Transform{InputPathsMap: paths, InputTemplate: `<bracket>`}, `"RUNNING"`},
		{"unknown placeholder kept", Transform{InputPathsMap: paths, InputTemplate: `{"a": "<nope> <state>"}`}, `{"a": "<nope> RUNNING"}`},
		{"escaped quote in template string", Transform{InputPathsMap: paths, InputTemplate: `{"a": "\"<state>\"", "b": <state>}`}, `{"a": "\"RUNNING\"", "b": "RUNNING"}`},
		{"predefined", Transform{InputTemplate: `{"rule": <aws.events.rule-name>, "arn": "<aws.events.rule-arn>", "at": <aws.events.event.ingestion-time>}`},
			`{"rule": "r1", "arn": "arn:nimbus:events:::rule/r1", "at": "2026-01-02T03:04:05Z"}`},
		{"predefined event without data", Transform{InputTemplate: `{"e": <aws.events.event>}`},
			`{"e": {"id":"7bf73129","resources":["arn:aws:ec2:us-east-1:123456789012:instance/i-abcd1111"],"source":"aws.ec2","specversion":"1.0","time":"2015-11-11T21:29:54Z","type":"EC2 Instance State-change Notification"}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.tr.Apply([]byte(transformEvent), ctx)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if tc.want == "" {
				if !strings.Contains(string(got), `"instance-id":"i-0123456789"`) {
					t.Errorf("Apply = %s, want the whole event", got)
				}
				return
			}
			if string(got) != tc.want {
				t.Errorf("Apply =\n %s\nwant\n %s", got, tc.want)
			}
		})
	}
}

func TestTransformErrors(t *testing.T) {
	tests := []struct {
		name string
		tr   Transform
		want string
	}{
		{"path and template", Transform{InputPath: "$.a", InputTemplate: `"x"`}, "cannot be combined"},
		{"paths without template", Transform{InputPathsMap: map[string]string{"a": "$.a"}}, "needs an input_template"},
		{"bad input path", Transform{InputPath: "data"}, "must start with '$'"},
		{"bad index", Transform{InputPath: "$.a[x]"}, "bad index"},
		{"unclosed", Transform{InputPath: "$.a[1"}, "unclosed"},
		{"empty name", Transform{InputPath: "$..a"}, "empty field name"},
		{"reserved var", Transform{InputTemplate: `<aws.x>`, InputPathsMap: map[string]string{"aws.x": "$.a"}}, "reserved"},
		{"bad var name", Transform{InputTemplate: `"x"`, InputPathsMap: map[string]string{"a b": "$.a"}}, "invalid variable name"},
		{"bad var path", Transform{InputTemplate: `<a>`, InputPathsMap: map[string]string{"a": "a"}}, `variable "a"`},
		{"invalid json template", Transform{InputTemplate: `instance <a> is up`, InputPathsMap: map[string]string{"a": "$.a"}}, "not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.tr.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tc.want)
			}
			if _, err := tc.tr.Apply([]byte(`{}`), TransformContext{}); err == nil {
				t.Error("Apply error = nil, want the same error")
			}
		})
	}
	if _, err := (Transform{InputPath: "$.a"}).Apply([]byte(`{`), TransformContext{}); err == nil {
		t.Error("Apply on invalid event: error = nil")
	}
}
