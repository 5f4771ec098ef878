package manifest

import (
	"errors"
	"fmt"
	"sort"

	"github.com/nimbus-run/nimbus/internal/function"
)

// validateEvents checks each function's triggers and the rules, naming the
// offending field from the manifest's root ("functions.api.triggers[0].schedule").
func (m *Manifest) validateEvents() error {
	webhooks := map[string]string{}
	for _, name := range m.Names() {
		f := m.Functions[name]
		names := map[string]bool{}
		for i := range f.Triggers {
			t := &f.Triggers[i]
			path := fmt.Sprintf("functions.%s.triggers[%d]", name, i)
			if err := t.Validate(path); err != nil {
				return fieldError(err)
			}
			tn := t.Name
			if tn == "" {
				tn = fmt.Sprintf("%s-%d", name, i)
			}
			if names[tn] {
				return &Error{Path: path + ".name", Msg: fmt.Sprintf("%q is used twice", tn)}
			}
			names[tn] = true
			if t.Webhook != "" {
				if other, ok := webhooks[t.Webhook]; ok {
					return &Error{Path: path + ".webhook", Msg: fmt.Sprintf("%q is also declared by %s", t.Webhook, other)}
				}
				webhooks[t.Webhook] = path
			}
		}
	}
	rules := make([]string, 0, len(m.Rules))
	for n := range m.Rules {
		rules = append(rules, n)
	}
	sort.Strings(rules)
	for _, n := range rules {
		path := "rules." + n
		if !validRuleName(n) {
			return &Error{Path: path, Msg: "a rule name holds 1 to 128 letters, digits, '-' or '_'"}
		}
		r := m.Rules[n]
		if r == nil {
			return &Error{Path: path, Msg: "is empty: give a pattern and targets"}
		}
		if err := r.Validate(path); err != nil {
			return fieldError(err)
		}
	}
	return nil
}

func validRuleName(n string) bool {
	if len(n) == 0 || len(n) > 128 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func fieldError(err error) error {
	var fe *function.FieldError
	if errors.As(err, &fe) {
		return &Error{Path: fe.Field, Msg: fe.Reason}
	}
	return &Error{Msg: err.Error()}
}
