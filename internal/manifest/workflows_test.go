package manifest

import (
	"strings"
	"testing"
)

func TestParseWorkflows(t *testing.T) {
	doc := `
functions:
  users: {code: ./users.wasm}
workflows:
  signup: {definition: ./signup.asl.json, type: standard}
  quick: {definition: /abs/quick.json, type: EXPRESS, role: "arn:aws:iam::000000000000:role/x"}
  plain: {definition: plain.json}
`
	m, err := Parse([]byte(doc), "/app")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.WorkflowNames(), ","); got != "plain,quick,signup" {
		t.Errorf("names: got %s", got)
	}
	for name, want := range map[string]string{"signup": "STANDARD", "quick": "EXPRESS", "plain": "STANDARD"} {
		if got := m.Workflows[name].WorkflowType(); got != want {
			t.Errorf("%s type: got %s, want %s", name, got, want)
		}
	}
	if got := m.DefinitionPath("signup"); got != "/app/signup.asl.json" {
		t.Errorf("relative definition: got %s", got)
	}
	if got := m.DefinitionPath("quick"); got != "/abs/quick.json" {
		t.Errorf("absolute definition: got %s", got)
	}
	// A manifest may declare only workflows.
	if _, err := Parse([]byte("workflows: {w: {definition: w.json}}\n"), ""); err != nil {
		t.Errorf("workflows only: %v", err)
	}
}

func TestParseWorkflowsErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"no definition", "workflows: {w: {type: standard}}\n", "workflows.w.definition: is required"},
		{"bad type", "workflows: {w: {definition: a.json, type: slow}}\n", "workflows.w.type: must be standard or express"},
		{"bad name", "workflows: {\"a b\": {definition: a.json}}\n", "workflows.a b: a workflow name"},
		{"unknown key", "workflows: {w: {definition: a.json, retries: 2}}\n", "unknown key retries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
