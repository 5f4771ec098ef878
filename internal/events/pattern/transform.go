package pattern

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Transform shapes what a rule's target receives, after EventBridge's target
// input options:
//
//   - neither field set: the whole event, unchanged;
//   - InputPath: the part of the event a JSON path selects ("$.data");
//   - InputTemplate with InputPathsMap: the template with each <name>
//     replaced by the value InputPathsMap[name] selects from the event.
//
// JSON paths are "$" followed by ".name", "['name']", "[index]" or a
// wildcard ".*"/"[*]"; a path with a wildcard yields an array of its matches.
//
// Placeholders follow EventBridge's quoting rules. Outside a JSON string a
// value is inserted as JSON (a string value gets its quotes, an object stays
// an object, a missing value becomes null). Inside a JSON string the value's
// text is inserted escaped for that string (a string without its quotes, any
// other value as its JSON text, a missing value as nothing). The result must
// be valid JSON, since targets receive JSON events.
//
// Predefined placeholders, which InputPathsMap cannot redefine:
// <aws.events.rule-name>, <aws.events.rule-arn>,
// <aws.events.event.ingestion-time> (RFC 3339), <aws.events.event> (the event
// without "data"/"data_base64", the CloudEvents counterpart of EventBridge's
// "without detail") and <aws.events.event.json> (the whole event). A <word>
// that names no variable is left as written.
type Transform struct {
	InputPath     string            `json:"input_path,omitempty"`
	InputTemplate string            `json:"input_template,omitempty"`
	InputPathsMap map[string]string `json:"input_paths_map,omitempty"`
}

// TransformContext carries the values of the predefined placeholders.
type TransformContext struct {
	RuleName      string
	RuleARN       string
	IngestionTime time.Time
}

// MaxTransformVariables bounds InputPathsMap, as in EventBridge.
const MaxTransformVariables = 100

const (
	varRuleName      = "aws.events.rule-name"
	varRuleARN       = "aws.events.rule-arn"
	varIngestionTime = "aws.events.event.ingestion-time"
	varEvent         = "aws.events.event"
	varEventJSON     = "aws.events.event.json"
)

// Validate checks the transform without an event: paths parse, variable
// names are legal, and the template yields valid JSON.
func (t Transform) Validate() error {
	_, err := t.compile()
	return err
}

// Apply transforms one JSON event.
func (t Transform) Apply(event []byte, c TransformContext) ([]byte, error) {
	ct, err := t.compile()
	if err != nil {
		return nil, err
	}
	if ct.inputPath == nil && ct.template == nil {
		return event, nil
	}
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber() // numbers are copied through with their exact text
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("transform: decode event: %w", err)
	}
	if ct.inputPath != nil {
		v, ok := ct.inputPath.eval(doc)
		if !ok {
			return []byte("null"), nil
		}
		return marshal(v)
	}
	lookup := func(name string) (any, bool, error) {
		switch name {
		case varRuleName:
			return c.RuleName, true, nil
		case varRuleARN:
			return c.RuleARN, true, nil
		case varIngestionTime:
			return c.IngestionTime.UTC().Format(time.RFC3339Nano), true, nil
		case varEventJSON:
			return doc, true, nil
		case varEvent:
			obj, ok := doc.(map[string]any)
			if !ok {
				return doc, true, nil
			}
			cp := make(map[string]any, len(obj))
			for k, v := range obj {
				if k != "data" && k != "data_base64" {
					cp[k] = v
				}
			}
			return cp, true, nil
		}
		p, ok := ct.vars[name]
		if !ok {
			return nil, false, nil
		}
		v, found := p.eval(doc)
		return v, found, nil
	}
	out, err := ct.render(lookup)
	if err != nil {
		return nil, err
	}
	if !json.Valid(out) {
		return nil, fmt.Errorf("transform: input template produced invalid JSON: %.200s", out)
	}
	return out, nil
}

type compiledTransform struct {
	inputPath *jsonPath
	template  []tmplPart
	vars      map[string]*jsonPath
}

// tmplPart is literal text, or a placeholder with whether it sits inside a
// JSON string.
type tmplPart struct {
	lit      string
	name     string
	inString bool
}

func (t Transform) compile() (*compiledTransform, error) {
	ct := &compiledTransform{}
	if t.InputPath != "" && (t.InputTemplate != "" || len(t.InputPathsMap) > 0) {
		return nil, errors.New("transform: input_path cannot be combined with input_template or input_paths_map")
	}
	if t.InputPath != "" {
		p, err := parsePath(t.InputPath)
		if err != nil {
			return nil, fmt.Errorf("transform: input_path: %w", err)
		}
		ct.inputPath = p
		return ct, nil
	}
	if t.InputTemplate == "" {
		if len(t.InputPathsMap) > 0 {
			return nil, errors.New("transform: input_paths_map needs an input_template")
		}
		return ct, nil
	}
	if len(t.InputPathsMap) > MaxTransformVariables {
		return nil, fmt.Errorf("transform: input_paths_map: %d variables, at most %d", len(t.InputPathsMap), MaxTransformVariables)
	}
	ct.vars = make(map[string]*jsonPath, len(t.InputPathsMap))
	for name, path := range t.InputPathsMap {
		if !validVarName(name) {
			return nil, fmt.Errorf("transform: input_paths_map: invalid variable name %q (letters, digits, '_', '-', '.')", name)
		}
		if strings.HasPrefix(name, "aws.") {
			return nil, fmt.Errorf("transform: input_paths_map: variable %q: names starting with \"aws.\" are reserved", name)
		}
		p, err := parsePath(path)
		if err != nil {
			return nil, fmt.Errorf("transform: input_paths_map: variable %q: %w", name, err)
		}
		ct.vars[name] = p
	}
	ct.template = parseTemplate(t.InputTemplate, func(name string) bool {
		switch name {
		case varRuleName, varRuleARN, varIngestionTime, varEvent, varEventJSON:
			return true
		}
		_, ok := ct.vars[name]
		return ok
	})
	// A dry run with every value missing proves the template's structure.
	probe, err := ct.render(func(string) (any, bool, error) { return nil, false, nil })
	if err != nil {
		return nil, err
	}
	if !json.Valid(probe) {
		return nil, fmt.Errorf("transform: input_template is not valid JSON once placeholders are filled: %.200s", probe)
	}
	return ct, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// parseTemplate splits the template at known placeholders, tracking JSON
// string context with a small scanner: a '"' outside a string opens one, and
// inside a string an unescaped '"' closes it.
func parseTemplate(tmpl string, known func(string) bool) []tmplPart {
	var parts []tmplPart
	var lit strings.Builder
	inString := false
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		switch {
		case c == '\\' && inString && i+1 < len(tmpl):
			lit.WriteByte(c)
			i++
			lit.WriteByte(tmpl[i])
			continue
		case c == '"':
			inString = !inString
		case c == '<':
			if end := strings.IndexByte(tmpl[i+1:], '>'); end >= 0 {
				name := tmpl[i+1 : i+1+end]
				if known(name) {
					parts = append(parts, tmplPart{lit: lit.String()})
					lit.Reset()
					parts = append(parts, tmplPart{name: name, inString: inString})
					i += end + 1
					continue
				}
			}
		}
		lit.WriteByte(c)
	}
	return append(parts, tmplPart{lit: lit.String()})
}

func (ct *compiledTransform) render(lookup func(string) (any, bool, error)) ([]byte, error) {
	var out bytes.Buffer
	for _, p := range ct.template {
		if p.name == "" {
			out.WriteString(p.lit)
			continue
		}
		v, found, err := lookup(p.name)
		if err != nil {
			return nil, err
		}
		switch {
		case !found && p.inString:
		case !found:
			out.WriteString("null")
		case p.inString:
			text, ok := v.(string)
			if !ok {
				b, err := marshal(v)
				if err != nil {
					return nil, err
				}
				text = string(b)
			}
			q, err := marshal(text)
			if err != nil {
				return nil, err
			}
			out.Write(q[1 : len(q)-1]) // the escaped content, without quotes
		default:
			b, err := marshal(v)
			if err != nil {
				return nil, err
			}
			out.Write(b)
		}
	}
	return out.Bytes(), nil
}

// marshal encodes without HTML escaping: targets get the text the event had.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("transform: encode: %w", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// jsonPath is the subset of JSONPath EventBridge supports.
type jsonPath struct {
	steps    []pathStep
	wildcard bool
}

type pathStep struct {
	key   string
	index int // >= 0 for [n]
	all   bool
}

func parsePath(s string) (*jsonPath, error) {
	if !strings.HasPrefix(s, "$") {
		return nil, fmt.Errorf("path %q must start with '$'", s)
	}
	p := &jsonPath{}
	rest := s[1:]
	for rest != "" {
		switch rest[0] {
		case '.':
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			name := rest[:end]
			if name == "" {
				return nil, fmt.Errorf("path %q: empty field name", s)
			}
			if name == "*" {
				p.steps = append(p.steps, pathStep{all: true, index: -1})
				p.wildcard = true
			} else {
				p.steps = append(p.steps, pathStep{key: name, index: -1})
			}
			rest = rest[end:]
		case '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("path %q: unclosed '['", s)
			}
			inner := rest[1:end]
			rest = rest[end+1:]
			switch {
			case inner == "*":
				p.steps = append(p.steps, pathStep{all: true, index: -1})
				p.wildcard = true
			case len(inner) >= 2 && (inner[0] == '\'' && inner[len(inner)-1] == '\'' || inner[0] == '"' && inner[len(inner)-1] == '"'):
				p.steps = append(p.steps, pathStep{key: inner[1 : len(inner)-1], index: -1})
			default:
				n, err := strconv.Atoi(inner)
				if err != nil || n < 0 {
					return nil, fmt.Errorf("path %q: bad index [%s]", s, inner)
				}
				p.steps = append(p.steps, pathStep{index: n})
			}
		default:
			return nil, fmt.Errorf("path %q: expected '.' or '[' at %q", s, rest)
		}
	}
	return p, nil
}

// eval returns the selected value. With a wildcard the result is the array
// of all matches (possibly empty); otherwise found is false when any step
// is missing.
func (p *jsonPath) eval(doc any) (any, bool) {
	cur := []any{doc}
	for _, st := range p.steps {
		var next []any
		for _, v := range cur {
			switch {
			case st.all:
				switch v := v.(type) {
				case []any:
					next = append(next, v...)
				case map[string]any:
					keys := make([]string, 0, len(v))
					for k := range v {
						keys = append(keys, k)
					}
					// Deterministic output for object wildcards.
					slices.Sort(keys)
					for _, k := range keys {
						next = append(next, v[k])
					}
				}
			case st.index >= 0:
				if arr, ok := v.([]any); ok && st.index < len(arr) {
					next = append(next, arr[st.index])
				}
			default:
				if obj, ok := v.(map[string]any); ok {
					if e, ok := obj[st.key]; ok {
						next = append(next, e)
					}
				}
			}
		}
		cur = next
	}
	if p.wildcard {
		if cur == nil {
			cur = []any{}
		}
		return cur, true
	}
	if len(cur) == 0 {
		return nil, false
	}
	return cur[0], true
}
