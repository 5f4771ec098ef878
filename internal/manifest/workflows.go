package manifest

import (
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Workflow declares a state machine: its Amazon States Language definition
// (a JSON file) and its type.
//
//	workflows:
//	  signup: {definition: ./signup.asl.json, type: standard}
type Workflow struct {
	Definition string `yaml:"definition"`
	// Type is standard (durable, default) or express (in memory).
	Type string `yaml:"type"`
	// Role is recorded as the state machine's roleArn (Nimbus grants no
	// IAM permissions; it is kept for tools that expect one).
	Role string `yaml:"role"`
}

var workflowNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

func (m *Manifest) validateWorkflows() error {
	for _, name := range m.WorkflowNames() {
		w := m.Workflows[name]
		path := "workflows." + name
		if !workflowNameRE.MatchString(name) {
			return &Error{Path: path, Msg: "a workflow name is 1 to 80 letters, digits, '-' or '_'"}
		}
		if w == nil || w.Definition == "" {
			return &Error{Path: path + ".definition", Msg: "is required: the state machine's ASL JSON file"}
		}
		switch strings.ToLower(w.Type) {
		case "", "standard", "express":
		default:
			return &Error{Path: path + ".type", Msg: "must be standard or express, not " + w.Type}
		}
	}
	return nil
}

// WorkflowNames returns the workflow names in order.
func (m *Manifest) WorkflowNames() []string {
	names := make([]string, 0, len(m.Workflows))
	for n := range m.Workflows {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// WorkflowType is the declared type as the Step Functions API spells it.
func (w *Workflow) WorkflowType() string {
	if strings.EqualFold(w.Type, "express") {
		return "EXPRESS"
	}
	return "STANDARD"
}

// DefinitionPath resolves a workflow's definition path against the
// manifest's directory.
func (m *Manifest) DefinitionPath(name string) string {
	p := m.Workflows[name].Definition
	if filepath.IsAbs(p) || m.Dir == "" {
		return p
	}
	return filepath.Join(m.Dir, p)
}
