package asl_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/internal/workflow/asl"
)

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		def  string
		want string // a Problem, as "CODE: message at /path"
	}{
		{"not json", `{`, "INVALID_JSON_DESCRIPTION"},
		{"missing StartAt", `{"States":{"A":{"Type":"Succeed"}}}`, "SCHEMA_VALIDATION_FAILED: These fields are required: [StartAt]"},
		{"unknown StartAt", `{"StartAt":"B","States":{"A":{"Type":"Succeed"}}}`, "MISSING_TRANSITION_TARGET: Missing 'Next' target: B at /StartAt"},
		{"missing Next and End", `{"StartAt":"A","States":{"A":{"Type":"Pass"}}}`, "SCHEMA_VALIDATION_FAILED: These fields are required: [Next | End] at /States/A"},
		{"unknown Next", `{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"Nope"}}}`, "MISSING_TRANSITION_TARGET: Missing 'Next' target: Nope at /States/A/Next"},
		{"unreachable", `{"StartAt":"A","States":{"A":{"Type":"Succeed"},"B":{"Type":"Succeed"}}}`, "UNREACHABLE_STATE: State 'B' is not reachable at /States/B"},
		{"unknown type", `{"StartAt":"A","States":{"A":{"Type":"Nap","End":true}}}`, "at /States/A/Type"},
		{"unknown field", `{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Foo":1}}}`, "Field 'Foo' is not supported at /States/A/Foo"},
		{"bad InputPath", `{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"InputPath":"foo"}}}`, "The value for the field 'InputPath' must be a valid JSONPath at /States/A/InputPath"},
		{"bad ResultPath", `{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"ResultPath":"$.a[*]"}}}`, "must be a valid ReferencePath at /States/A/ResultPath"},
		{"bad parameter path", `{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Parameters":{"x.$":"nope"}}}}`, "The value for the field 'x.$' must be a valid JSONPath or a valid intrinsic function call at /States/A/Parameters/x.$"},
		{"unknown intrinsic", `{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Parameters":{"x.$":"States.Nope(1)"}}}}`, "at /States/A/Parameters/x.$"},
		{"intrinsic arity", `{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Parameters":{"x.$":"States.ArrayLength($.a, 1)"}}}}`, "at /States/A/Parameters/x.$"},
		{"bad JSONata", `{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Output":"{% $states.input. %}"}}}`, "must be a valid JSONata expression"},
		{"JSONPath field in JSONata state", `{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","End":true,"InputPath":"$"}}}`, "The field 'InputPath' is not supported in a state with QueryLanguage 'JSONata' at /States/A/InputPath"},
		{"JSONata field in JSONPath state", `{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Output":"x"}}}`, "The field 'Output' is only supported in a state with QueryLanguage 'JSONata' at /States/A/Output"},
		{"JSONPath state in JSONata machine", `{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","End":true,"QueryLanguage":"JSONPath"}}}`, "at /States/A/QueryLanguage"},
		{"choice without operator", `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.x","Next":"D"}]},"D":{"Type":"Succeed"}}}`, "at /States/C/Choices[0]"},
		{"choice wrong operand type", `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.x","NumericEquals":"1","Next":"D"}]},"D":{"Type":"Succeed"}}}`, "at /States/C/Choices[0]/NumericEquals"},
		{"choice unknown target", `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.x","IsNull":true,"Next":"Z"}],"Default":"D"},"D":{"Type":"Succeed"}}}`, "Missing 'Next' target: Z at /States/C/Choices[0]/Next"},
		{"wait without duration", `{"StartAt":"W","States":{"W":{"Type":"Wait","End":true}}}`, "at /States/W"},
		{"wait bad timestamp", `{"StartAt":"W","States":{"W":{"Type":"Wait","Timestamp":"tomorrow","End":true}}}`, "at /States/W/Timestamp"},
		{"task without resource", `{"StartAt":"T","States":{"T":{"Type":"Task","End":true}}}`, "These fields are required: [Resource] at /States/T"},
		{"States.ALL not alone", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"x","End":true,"Retry":[{"ErrorEquals":["States.ALL","X"]}]}}}`, "at /States/T/Retry[0]/ErrorEquals"},
		{"catch unknown target", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"x","End":true,"Catch":[{"ErrorEquals":["X"],"Next":"Q"}]}}}`, "Missing 'Next' target: Q at /States/T/Catch[0]/Next"},
		{"branch problem", `{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[{"StartAt":"X","States":{"X":{"Type":"Pass","Next":"Y"}}}]}}}`, "Missing 'Next' target: Y at /States/P/Branches[0]/States/X/Next"},
		{"map percentage", `{"StartAt":"M","States":{"M":{"Type":"Map","End":true,"ToleratedFailurePercentage":101,"ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Succeed"}}}}}}`, "at /States/M/ToleratedFailurePercentage"},
		{"bad backoff", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"x","End":true,"Retry":[{"ErrorEquals":["X"],"BackoffRate":0.5}]}}}`, "at /States/T/Retry[0]/BackoffRate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := asl.Parse([]byte(tt.def))
			var de *asl.DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("Parse: got %v, want a *DefinitionError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse error:\n got %s\nwant it to contain %q", err, tt.want)
			}
		})
	}
}
