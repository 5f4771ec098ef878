package asl

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// QueryLanguage selects how a state reads and writes data.
type QueryLanguage string

const (
	JSONPath QueryLanguage = "JSONPath"
	JSONata  QueryLanguage = "JSONata"
)

// State type names.
const (
	typePass     = "Pass"
	typeTask     = "Task"
	typeChoice   = "Choice"
	typeWait     = "Wait"
	typeSucceed  = "Succeed"
	typeFail     = "Fail"
	typeParallel = "Parallel"
	typeMap      = "Map"
)

// Machine is a parsed, validated state machine. It is immutable and safe for
// concurrent use; every execution of it is a separate *Execution.
type Machine struct {
	root           *graph
	graphs         map[string]*graph
	timeoutSeconds int64
	lang           QueryLanguage
	definition     json.RawMessage
}

// graph is a list of states with a start: the machine itself, a Parallel
// branch, or a Map item processor.
type graph struct {
	id      string // "" for the machine; "<parent id>/<state>/<n>" below
	startAt string
	states  map[string]*state
	order   []string // definition order, for stable validation messages
}

// optPath is an InputPath/OutputPath: absent (= "$"), null, or a path.
type optPath struct {
	null bool
	path *jsonPath
}

// resultPath is absent/"$" (replace), null (discard), or a reference path.
type resultPathSpec struct {
	null bool
	path *jsonPath
}

// valueSpec is a field that may be a literal, a JSONPath (…Path fields) or a
// JSONata expression.
type valueSpec struct {
	set   bool
	lit   any
	path  *jsonPath
	expr  *jsonataExpr
	field string // name of the field, for messages
	src   string
}

type retrier struct {
	errorEquals []string
	interval    float64
	maxAttempts int
	backoff     float64
	maxDelay    float64 // 0: none
	jitterFull  bool
}

type catcher struct {
	errorEquals []string
	next        string
	resultPath  *resultPathSpec
	assign      *template
	output      *template
}

type choiceRule struct {
	and, or   []*choiceRule
	not       *choiceRule
	variable  *jsonPath
	op        string // comparison operator without "Path"
	isPath    bool
	operand   any
	opPath    *jsonPath
	condition *template // JSONata Condition
	next      string
	assign    *template
	output    *template
}

type batcher struct {
	maxItems   valueSpec
	maxBytes   valueSpec
	batchInput *template
}

// state is one parsed state.
type state struct {
	name    string
	typ     string
	ptr     string // JSON pointer of the state, e.g. /States/Foo
	lang    QueryLanguage
	next    string
	end     bool
	comment string

	inputPath      *optPath
	outputPath     *optPath
	resultPath     *resultPathSpec
	parameters     *template
	resultSelector *template
	result         any
	hasResult      bool

	arguments *template
	output    *template
	assign    *template

	resource         string
	timeoutSeconds   valueSpec
	heartbeatSeconds valueSpec
	retry            []retrier
	catch            []catcher

	choices     []*choiceRule
	defaultNext string

	seconds   valueSpec
	timestamp valueSpec

	errorSpec valueSpec
	causeSpec valueSpec

	branches []*graph

	processor        *graph
	itemsPath        *jsonPath
	items            *template
	itemSelector     *template
	maxConcurrency   valueSpec
	toleratedCount   valueSpec
	toleratedPercent valueSpec
	itemBatcher      *batcher
	itemReader       bool
	resultWriter     bool
}

// Parse parses and validates a state machine definition. An invalid
// definition yields a *DefinitionError listing every problem found.
func Parse(definition []byte) (*Machine, error) {
	raw, err := decodeJSON(definition)
	if err != nil {
		return nil, &DefinitionError{Problems: []Problem{{Code: "INVALID_JSON_DESCRIPTION", Message: err.Error()}}}
	}
	top, ok := raw.(map[string]any)
	if !ok {
		return nil, &DefinitionError{Problems: []Problem{{Code: "INVALID_JSON_DESCRIPTION", Message: "the definition must be a JSON object"}}}
	}
	p := &parser{m: &Machine{graphs: map[string]*graph{}, lang: JSONPath, definition: append(json.RawMessage(nil), definition...)}}
	o := p.obj(top, "")
	if ql, ok := o.str("QueryLanguage"); ok {
		switch QueryLanguage(ql) {
		case JSONPath, JSONata:
			p.m.lang = QueryLanguage(ql)
		default:
			p.fail("SCHEMA_VALIDATION_FAILED", "/QueryLanguage", "The value for the field 'QueryLanguage' must be 'JSONPath' or 'JSONata'")
		}
	}
	o.str("Comment")
	o.str("Version")
	if v, ok := o.get("TimeoutSeconds"); ok {
		n, ok := toInt(v)
		if !ok || n <= 0 {
			p.fail("SCHEMA_VALIDATION_FAILED", "/TimeoutSeconds", "The value for the field 'TimeoutSeconds' must be a positive integer")
		}
		p.m.timeoutSeconds = n
	}
	p.m.root = p.graph(o, "", "", p.m.lang)
	o.done()
	if len(p.problems) > 0 {
		return nil, &DefinitionError{Problems: p.problems}
	}
	return p.m, nil
}

// MustParse is Parse for definitions known to be valid; it panics otherwise.
func MustParse(definition string) *Machine {
	m, err := Parse([]byte(definition))
	if err != nil {
		panic(err)
	}
	return m
}

// Definition returns the definition text the machine was parsed from.
func (m *Machine) Definition() json.RawMessage { return m.definition }

// QueryLanguage returns the machine's top-level query language.
func (m *Machine) QueryLanguage() QueryLanguage { return m.lang }

type parser struct {
	m        *Machine
	problems []Problem
}

func (p *parser) fail(code, path, format string, args ...any) {
	p.problems = append(p.problems, Problem{Code: code, Path: path, Message: fmt.Sprintf(format, args...)})
}

// obj walks one JSON object, remembering which keys were read so that
// unknown fields can be reported.
type obj struct {
	p    *parser
	m    map[string]any
	ptr  string
	used map[string]bool
}

func (p *parser) obj(m map[string]any, ptr string) *obj {
	return &obj{p: p, m: m, ptr: ptr, used: map[string]bool{}}
}

func (o *obj) has(k string) bool { _, ok := o.m[k]; return ok }

func (o *obj) get(k string) (any, bool) {
	v, ok := o.m[k]
	if ok {
		o.used[k] = true
	}
	return v, ok
}

func (o *obj) field(k string) string { return o.ptr + "/" + k }

func (o *obj) str(k string) (string, bool) {
	v, ok := o.get(k)
	if !ok {
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		o.p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be a STRING", k)
		return "", false
	}
	return s, true
}

func (o *obj) boolean(k string) (bool, bool) {
	v, ok := o.get(k)
	if !ok {
		return false, false
	}
	b, ok := v.(bool)
	if !ok {
		o.p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be a BOOLEAN", k)
	}
	return b, ok
}

func (o *obj) object(k string) (*obj, bool) {
	v, ok := o.get(k)
	if !ok {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		o.p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be an OBJECT", k)
		return nil, false
	}
	return o.p.obj(m, o.field(k)), true
}

func (o *obj) array(k string) ([]any, bool) {
	v, ok := o.get(k)
	if !ok {
		return nil, false
	}
	a, ok := v.([]any)
	if !ok {
		o.p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be an ARRAY", k)
		return nil, false
	}
	return a, true
}

// done reports every key that was not read.
func (o *obj) done() {
	var extra []string
	for k := range o.m {
		if !o.used[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		o.p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "Field '%s' is not supported", k)
	}
}

func (p *parser) graph(o *obj, id, ptr string, lang QueryLanguage) *graph {
	g := &graph{id: id, states: map[string]*state{}}
	p.m.graphs[id] = g
	start, ok := o.str("StartAt")
	if !ok && !o.has("StartAt") {
		p.fail("SCHEMA_VALIDATION_FAILED", ptr, "These fields are required: [StartAt]")
	}
	g.startAt = start
	states, ok := o.object("States")
	if !ok {
		if !o.has("States") {
			p.fail("SCHEMA_VALIDATION_FAILED", ptr, "These fields are required: [States]")
		}
		return g
	}
	names := make([]string, 0, len(states.m))
	for k := range states.m {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		states.used[name] = true
		sptr := states.field(name)
		if len(name) > 80 {
			p.fail("SCHEMA_VALIDATION_FAILED", sptr, "State names must be at most 80 characters long")
		}
		sm, ok := states.m[name].(map[string]any)
		if !ok {
			p.fail("SCHEMA_VALIDATION_FAILED", sptr, "The value for the state '%s' must be an OBJECT", name)
			continue
		}
		st := p.state(p.obj(sm, sptr), g, name, lang)
		if st != nil {
			g.states[name] = st
			g.order = append(g.order, name)
		}
	}
	if len(states.m) == 0 {
		p.fail("SCHEMA_VALIDATION_FAILED", ptr+"/States", "The field 'States' must not be empty")
	}
	if _, ok := g.states[start]; !ok && o.has("StartAt") {
		p.fail("MISSING_TRANSITION_TARGET", ptr+"/StartAt", "Missing 'Next' target: %s", start)
	}
	p.checkTransitions(g)
	return g
}

func (p *parser) checkTransitions(g *graph) {
	target := func(from *state, next, field string) {
		if next == "" {
			return
		}
		if _, ok := g.states[next]; !ok {
			p.fail("MISSING_TRANSITION_TARGET", from.ptr+field, "Missing 'Next' target: %s", next)
		}
	}
	for _, name := range g.order {
		st := g.states[name]
		target(st, st.next, "/Next")
		target(st, st.defaultNext, "/Default")
		for i, c := range st.catch {
			target(st, c.next, fmt.Sprintf("/Catch[%d]/Next", i))
		}
		for i, r := range st.choices {
			target(st, r.next, fmt.Sprintf("/Choices[%d]/Next", i))
		}
	}
	if _, ok := g.states[g.startAt]; !ok {
		return
	}
	seen := map[string]bool{g.startAt: true}
	queue := []string{g.startAt}
	for len(queue) > 0 {
		st := g.states[queue[0]]
		queue = queue[1:]
		visit := func(n string) {
			if _, ok := g.states[n]; ok && !seen[n] {
				seen[n] = true
				queue = append(queue, n)
			}
		}
		visit(st.next)
		visit(st.defaultNext)
		for _, c := range st.catch {
			visit(c.next)
		}
		for _, r := range st.choices {
			visit(r.next)
		}
	}
	for _, name := range g.order {
		if !seen[name] {
			p.fail("UNREACHABLE_STATE", g.states[name].ptr, "State '%s' is not reachable", name)
		}
	}
}

// fields allowed by state type, beyond Type, Comment and QueryLanguage.
var (
	jsonPathOnly = map[string]bool{"InputPath": true, "OutputPath": true, "Parameters": true, "ResultSelector": true,
		"ResultPath": true, "ItemsPath": true, "SecondsPath": true, "TimestampPath": true, "TimeoutSecondsPath": true,
		"HeartbeatSecondsPath": true, "MaxConcurrencyPath": true, "ToleratedFailureCountPath": true,
		"ToleratedFailurePercentagePath": true, "ErrorPath": true, "CausePath": true, "Result": true, "Iterator": true,
		"Variable": true}
	jsonataOnly = map[string]bool{"Arguments": true, "Output": true, "Items": true, "Condition": true}
)

func (p *parser) state(o *obj, g *graph, name string, parentLang QueryLanguage) *state {
	st := &state{name: name, ptr: o.ptr, lang: parentLang}
	typ, ok := o.str("Type")
	if !ok {
		if !o.has("Type") {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [Type]")
		}
		return nil
	}
	st.typ = typ
	st.comment, _ = o.str("Comment")
	if ql, ok := o.str("QueryLanguage"); ok {
		switch QueryLanguage(ql) {
		case JSONPath:
			if parentLang == JSONata {
				p.fail("SCHEMA_VALIDATION_FAILED", o.field("QueryLanguage"), "A state cannot use 'JSONPath' when the state machine's QueryLanguage is 'JSONata'")
			}
			st.lang = JSONPath
		case JSONata:
			st.lang = JSONata
		default:
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("QueryLanguage"), "The value for the field 'QueryLanguage' must be 'JSONPath' or 'JSONata'")
		}
	}
	// Mixed-language misuse.
	for k := range o.m {
		if st.lang == JSONata && jsonPathOnly[k] {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The field '%s' is not supported in a state with QueryLanguage 'JSONata'", k)
			o.used[k] = true
		}
		if st.lang == JSONPath && jsonataOnly[k] {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The field '%s' is only supported in a state with QueryLanguage 'JSONata'", k)
			o.used[k] = true
		}
	}
	switch typ {
	case typePass:
		p.transition(o, st)
		p.io(o, st, true, false, true)
		if v, ok := o.get("Result"); ok && st.lang == JSONPath {
			st.result, st.hasResult = v, true
		}
		p.assignOutput(o, st)
	case typeTask:
		p.transition(o, st)
		p.io(o, st, true, true, true)
		p.assignOutput(o, st)
		res, ok := o.str("Resource")
		if !ok && !o.has("Resource") {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [Resource]")
		}
		st.resource = res
		if st.lang == JSONata {
			st.arguments = p.jsonataTemplate(o, "Arguments")
		}
		st.timeoutSeconds = p.numberField(o, st, "TimeoutSeconds", "TimeoutSecondsPath", 1)
		st.heartbeatSeconds = p.numberField(o, st, "HeartbeatSeconds", "HeartbeatSecondsPath", 1)
		o.get("Credentials")
		p.retryCatch(o, st)
	case typeChoice:
		p.io(o, st, false, false, false)
		p.assignOutput(o, st)
		st.defaultNext, _ = o.str("Default")
		rules, ok := o.array("Choices")
		if !ok {
			if !o.has("Choices") {
				p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [Choices]")
			}
		} else if len(rules) == 0 {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("Choices"), "The field 'Choices' must not be empty")
		}
		for i, r := range rules {
			rptr := fmt.Sprintf("%s/Choices[%d]", o.ptr, i)
			rm, ok := r.(map[string]any)
			if !ok {
				p.fail("SCHEMA_VALIDATION_FAILED", rptr, "A choice rule must be an OBJECT")
				continue
			}
			if rule := p.choiceRule(p.obj(rm, rptr), st, true); rule != nil {
				st.choices = append(st.choices, rule)
			}
		}
		if o.has("Next") || o.has("End") {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "A Choice state cannot have 'Next' or 'End'")
			o.get("Next")
			o.get("End")
		}
	case typeWait:
		p.transition(o, st)
		p.io(o, st, false, false, false)
		p.assignOutput(o, st)
		st.seconds = p.numberField(o, st, "Seconds", "SecondsPath", 0)
		st.timestamp = p.timestampField(o, st)
		n := 0
		for _, s := range []valueSpec{st.seconds, st.timestamp} {
			if s.set {
				n++
			}
		}
		if n != 1 {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "A Wait state must have exactly one of 'Seconds', 'SecondsPath', 'Timestamp' or 'TimestampPath'")
		}
	case typeSucceed:
		p.io(o, st, false, false, false)
		if st.lang == JSONata {
			st.output = p.jsonataTemplate(o, "Output")
		}
		st.end = true
	case typeFail:
		st.errorSpec = p.stringField(o, st, "Error", "ErrorPath")
		st.causeSpec = p.stringField(o, st, "Cause", "CausePath")
		st.end = true
	case typeParallel:
		p.transition(o, st)
		p.io(o, st, true, true, true)
		p.assignOutput(o, st)
		if st.lang == JSONata {
			st.arguments = p.jsonataTemplate(o, "Arguments")
		}
		branches, ok := o.array("Branches")
		if !ok && !o.has("Branches") {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [Branches]")
		}
		for i, b := range branches {
			bptr := fmt.Sprintf("%s/Branches[%d]", o.ptr, i)
			bm, ok := b.(map[string]any)
			if !ok {
				p.fail("SCHEMA_VALIDATION_FAILED", bptr, "A branch must be an OBJECT")
				continue
			}
			bo := p.obj(bm, bptr)
			bo.str("Comment")
			bql := p.subLanguage(bo, st.lang)
			st.branches = append(st.branches, p.graph(bo, fmt.Sprintf("%s/%s/%d", g.id, name, i), bptr, bql))
			bo.done()
		}
		p.retryCatch(o, st)
	case typeMap:
		p.transition(o, st)
		p.io(o, st, false, true, true)
		p.assignOutput(o, st)
		p.mapFields(o, g, st)
		p.retryCatch(o, st)
	default:
		p.fail("SCHEMA_VALIDATION_FAILED", o.field("Type"), "The value for the field 'Type' must be one of [Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map]")
		return nil
	}
	o.done()
	return st
}

func (p *parser) subLanguage(o *obj, parent QueryLanguage) QueryLanguage {
	ql, ok := o.str("QueryLanguage")
	if !ok {
		return parent
	}
	switch QueryLanguage(ql) {
	case JSONata:
		return JSONata
	case JSONPath:
		if parent == JSONata {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("QueryLanguage"), "A nested state machine cannot use 'JSONPath' inside a 'JSONata' state")
		}
		return JSONPath
	}
	p.fail("SCHEMA_VALIDATION_FAILED", o.field("QueryLanguage"), "The value for the field 'QueryLanguage' must be 'JSONPath' or 'JSONata'")
	return parent
}

func (p *parser) transition(o *obj, st *state) {
	next, hasNext := o.str("Next")
	end, hasEnd := o.boolean("End")
	switch {
	case hasNext && hasEnd && end:
		p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "Only one of 'Next' or 'End' can be set")
	case hasNext:
		if next == "" {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("Next"), "The value for the field 'Next' must not be empty")
		}
		st.next = next
	case hasEnd && end:
		st.end = true
	default:
		if !o.has("Next") && !o.has("End") {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [Next | End]")
		} else if hasEnd && !end {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("End"), "The value for the field 'End' must be true when 'Next' is absent")
		}
	}
}

// io reads the JSONPath data-flow fields a state type supports.
func (p *parser) io(o *obj, st *state, params, resultSelector, resultPath bool) {
	if st.lang == JSONata {
		return
	}
	st.inputPath = p.optPath(o, "InputPath")
	st.outputPath = p.optPath(o, "OutputPath")
	if params {
		st.parameters = p.pathTemplate(o, "Parameters")
	}
	if resultSelector {
		st.resultSelector = p.pathTemplate(o, "ResultSelector")
	}
	if resultPath {
		st.resultPath = p.resultPath(o, "ResultPath")
	}
}

func (p *parser) assignOutput(o *obj, st *state) {
	if st.lang == JSONata {
		st.output = p.jsonataTemplate(o, "Output")
		st.assign = p.jsonataTemplate(o, "Assign")
		return
	}
	st.assign = p.pathTemplate(o, "Assign")
}

func (p *parser) optPath(o *obj, k string) *optPath {
	v, ok := o.get(k)
	if !ok {
		return nil
	}
	if v == nil {
		return &optPath{null: true}
	}
	s, ok := v.(string)
	if !ok {
		p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be a STRING", k)
		return nil
	}
	path, err := parsePath(s)
	if err != nil {
		p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be a valid JSONPath", k)
		return nil
	}
	if path.root == rootInput && len(path.segs) == 0 {
		return nil // "$" is the default
	}
	return &optPath{path: path}
}

func (p *parser) resultPath(o *obj, k string) *resultPathSpec {
	v, ok := o.get(k)
	if !ok {
		return nil
	}
	if v == nil {
		return &resultPathSpec{null: true}
	}
	s, ok := v.(string)
	if !ok {
		p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be a STRING", k)
		return nil
	}
	path, err := parsePath(s)
	if err != nil || !path.isReference() {
		p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be a valid ReferencePath", k)
		return nil
	}
	if len(path.segs) == 0 {
		return nil
	}
	return &resultPathSpec{path: path}
}

// numberField reads a field that holds a number (JSONPath: literal, or the
// …Path variant; JSONata: literal or "{% %}").
func (p *parser) numberField(o *obj, st *state, k, pathKey string, minimum int64) valueSpec {
	spec := valueSpec{field: k}
	if v, ok := o.get(k); ok {
		spec.set = true
		if s, isStr := v.(string); isStr && st.lang == JSONata && isJSONataString(s) {
			spec.expr = p.expr(o.field(k), k, s)
			spec.src = s
		} else if n, ok := toInt(v); ok && n >= minimum {
			spec.lit = n
		} else {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be an integer greater than or equal to %d", k, minimum)
		}
	}
	if pathKey != "" && st.lang == JSONPath {
		if v, ok := o.get(pathKey); ok {
			if spec.set {
				p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "Only one of '%s' or '%s' can be set", k, pathKey)
			}
			spec.set = true
			spec.field = pathKey
			spec.path = p.refPath(o, pathKey, v)
			spec.src, _ = v.(string)
		}
	}
	return spec
}

func (p *parser) refPath(o *obj, k string, v any) *jsonPath {
	s, ok := v.(string)
	if !ok {
		p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be a STRING", k)
		return nil
	}
	path, err := parsePath(s)
	if err != nil {
		p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' must be a valid JSONPath", k)
		return nil
	}
	return path
}

func (p *parser) timestampField(o *obj, st *state) valueSpec {
	spec := valueSpec{field: "Timestamp"}
	if v, ok := o.get("Timestamp"); ok {
		spec.set = true
		s, isStr := v.(string)
		switch {
		case !isStr:
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("Timestamp"), "The value for the field 'Timestamp' must be a STRING")
		case st.lang == JSONata && isJSONataString(s):
			spec.expr = p.expr(o.field("Timestamp"), "Timestamp", s)
		default:
			if _, err := parseTimestamp(s); err != nil {
				p.fail("SCHEMA_VALIDATION_FAILED", o.field("Timestamp"), "The value for the field 'Timestamp' must be a valid ISO-8601 timestamp")
			}
			spec.lit = s
		}
	}
	if st.lang == JSONPath {
		if v, ok := o.get("TimestampPath"); ok {
			if spec.set {
				p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "Only one of 'Timestamp' or 'TimestampPath' can be set")
			}
			spec.set = true
			spec.field = "TimestampPath"
			spec.path = p.refPath(o, "TimestampPath", v)
			spec.src, _ = v.(string)
		}
	}
	return spec
}

// stringField reads Fail's Error/Cause: literal, ErrorPath (path or
// intrinsic), or JSONata.
func (p *parser) stringField(o *obj, st *state, k, pathKey string) valueSpec {
	spec := valueSpec{field: k}
	if s, ok := o.str(k); ok {
		spec.set = true
		if st.lang == JSONata && isJSONataString(s) {
			spec.expr = p.expr(o.field(k), k, s)
		} else {
			spec.lit = s
		}
	}
	if st.lang == JSONPath {
		if s, ok := o.str(pathKey); ok {
			if spec.set {
				p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "Only one of '%s' or '%s' can be set", k, pathKey)
			}
			spec.set = true
			spec.field = pathKey
			spec.src = s
			node, err := pathOrIntrinsic(s)
			if err != nil {
				p.fail("SCHEMA_VALIDATION_FAILED", o.field(pathKey), "The value for the field '%s' must be a valid JSONPath or a valid intrinsic function call", pathKey)
			} else {
				spec.lit = node // *tmplNode
			}
		}
	}
	return spec
}

func (p *parser) expr(ptr, field, s string) *jsonataExpr {
	e, err := compileJSONata(s)
	if err != nil {
		p.fail("SCHEMA_VALIDATION_FAILED", ptr, "The value for the field '%s' must be a valid JSONata expression: %v", field, err)
		return nil
	}
	return e
}

func (p *parser) retryCatch(o *obj, st *state) {
	if rs, ok := o.array("Retry"); ok {
		for i, r := range rs {
			ptr := fmt.Sprintf("%s/Retry[%d]", o.ptr, i)
			rm, ok := r.(map[string]any)
			if !ok {
				p.fail("SCHEMA_VALIDATION_FAILED", ptr, "A retrier must be an OBJECT")
				continue
			}
			ro := p.obj(rm, ptr)
			rt := retrier{interval: 1, maxAttempts: 3, backoff: 2}
			rt.errorEquals = p.errorEquals(ro)
			ro.str("Comment")
			if v, ok := ro.get("IntervalSeconds"); ok {
				n, ok := toInt(v)
				if !ok || n < 1 {
					p.fail("SCHEMA_VALIDATION_FAILED", ro.field("IntervalSeconds"), "The value for the field 'IntervalSeconds' must be a positive integer")
				}
				rt.interval = float64(n)
			}
			if v, ok := ro.get("MaxAttempts"); ok {
				n, ok := toInt(v)
				if !ok || n < 0 || n > 99999999 {
					p.fail("SCHEMA_VALIDATION_FAILED", ro.field("MaxAttempts"), "The value for the field 'MaxAttempts' must be a non-negative integer")
				}
				rt.maxAttempts = int(n)
			}
			if v, ok := ro.get("BackoffRate"); ok {
				f, ok := toFloat(v)
				if !ok || f < 1 {
					p.fail("SCHEMA_VALIDATION_FAILED", ro.field("BackoffRate"), "The value for the field 'BackoffRate' must be a number greater than or equal to 1.0")
				}
				rt.backoff = f
			}
			if v, ok := ro.get("MaxDelaySeconds"); ok {
				n, ok := toInt(v)
				if !ok || n < 1 {
					p.fail("SCHEMA_VALIDATION_FAILED", ro.field("MaxDelaySeconds"), "The value for the field 'MaxDelaySeconds' must be a positive integer")
				}
				rt.maxDelay = float64(n)
			}
			if s, ok := ro.str("JitterStrategy"); ok {
				switch s {
				case "FULL":
					rt.jitterFull = true
				case "NONE":
				default:
					p.fail("SCHEMA_VALIDATION_FAILED", ro.field("JitterStrategy"), "The value for the field 'JitterStrategy' must be FULL or NONE")
				}
			}
			ro.done()
			st.retry = append(st.retry, rt)
		}
	}
	if cs, ok := o.array("Catch"); ok {
		for i, c := range cs {
			ptr := fmt.Sprintf("%s/Catch[%d]", o.ptr, i)
			cm, ok := c.(map[string]any)
			if !ok {
				p.fail("SCHEMA_VALIDATION_FAILED", ptr, "A catcher must be an OBJECT")
				continue
			}
			co := p.obj(cm, ptr)
			ct := catcher{errorEquals: p.errorEquals(co)}
			co.str("Comment")
			next, ok := co.str("Next")
			if !ok && !co.has("Next") {
				p.fail("SCHEMA_VALIDATION_FAILED", ptr, "These fields are required: [Next]")
			}
			ct.next = next
			if st.lang == JSONata {
				for _, k := range []string{"ResultPath"} {
					if co.has(k) {
						co.get(k)
						p.fail("SCHEMA_VALIDATION_FAILED", co.field(k), "The field '%s' is not supported in a state with QueryLanguage 'JSONata'", k)
					}
				}
				ct.output = p.jsonataTemplate(co, "Output")
				ct.assign = p.jsonataTemplate(co, "Assign")
			} else {
				if co.has("Output") {
					co.get("Output")
					p.fail("SCHEMA_VALIDATION_FAILED", co.field("Output"), "The field 'Output' is only supported in a state with QueryLanguage 'JSONata'")
				}
				ct.resultPath = p.resultPath(co, "ResultPath")
				ct.assign = p.pathTemplate(co, "Assign")
			}
			co.done()
			st.catch = append(st.catch, ct)
		}
	}
}

func (p *parser) errorEquals(o *obj) []string {
	a, ok := o.array("ErrorEquals")
	if !ok {
		if !o.has("ErrorEquals") {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [ErrorEquals]")
		}
		return nil
	}
	if len(a) == 0 {
		p.fail("SCHEMA_VALIDATION_FAILED", o.field("ErrorEquals"), "The field 'ErrorEquals' must not be empty")
	}
	out := make([]string, 0, len(a))
	for _, e := range a {
		s, ok := e.(string)
		if !ok {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("ErrorEquals"), "Error names must be strings")
			continue
		}
		out = append(out, s)
	}
	for i, s := range out {
		if s == ErrALL && (len(out) > 1 || i != 0) {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("ErrorEquals"), "'States.ALL' must appear alone in 'ErrorEquals'")
		}
	}
	return out
}

var comparisonOps = []string{
	"StringEquals", "StringLessThan", "StringGreaterThan", "StringLessThanEquals", "StringGreaterThanEquals",
	"StringMatches",
	"NumericEquals", "NumericLessThan", "NumericGreaterThan", "NumericLessThanEquals", "NumericGreaterThanEquals",
	"BooleanEquals",
	"TimestampEquals", "TimestampLessThan", "TimestampGreaterThan", "TimestampLessThanEquals", "TimestampGreaterThanEquals",
	"IsNull", "IsPresent", "IsNumeric", "IsString", "IsBoolean", "IsTimestamp",
}

func (p *parser) choiceRule(o *obj, st *state, top bool) *choiceRule {
	r := &choiceRule{}
	o.str("Comment")
	if top {
		next, ok := o.str("Next")
		if !ok && !o.has("Next") {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [Next]")
		}
		r.next = next
		if st.lang == JSONata {
			r.output = p.jsonataTemplate(o, "Output")
			r.assign = p.jsonataTemplate(o, "Assign")
		} else {
			r.assign = p.pathTemplate(o, "Assign")
		}
	}
	if st.lang == JSONata {
		v, ok := o.get("Condition")
		if !ok {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [Condition]")
			o.done()
			return r
		}
		switch c := v.(type) {
		case bool:
			r.condition = &template{kind: tmplLiteral, lit: c}
		case string:
			if !isJSONataString(c) {
				p.fail("SCHEMA_VALIDATION_FAILED", o.field("Condition"), "The value for the field 'Condition' must be a JSONata expression or a boolean")
			} else if e := p.expr(o.field("Condition"), "Condition", c); e != nil {
				r.condition = &template{kind: tmplExpr, expr: e, src: c}
			}
		default:
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("Condition"), "The value for the field 'Condition' must be a JSONata expression or a boolean")
		}
		o.done()
		return r
	}
	rules := func(k string) []*choiceRule {
		a, _ := o.array(k)
		var out []*choiceRule
		for i, x := range a {
			ptr := fmt.Sprintf("%s/%s[%d]", o.ptr, k, i)
			m, ok := x.(map[string]any)
			if !ok {
				p.fail("SCHEMA_VALIDATION_FAILED", ptr, "A choice rule must be an OBJECT")
				continue
			}
			if sub := p.choiceRule(p.obj(m, ptr), st, false); sub != nil {
				out = append(out, sub)
			}
		}
		if len(out) == 0 {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The field '%s' must hold at least one rule", k)
		}
		return out
	}
	n := 0
	switch {
	case o.has("And"):
		r.and = rules("And")
		n++
	case o.has("Or"):
		r.or = rules("Or")
		n++
	case o.has("Not"):
		if so, ok := o.object("Not"); ok {
			r.not = p.choiceRule(so, st, false)
		}
		n++
	default:
		if v, ok := o.str("Variable"); ok {
			path, err := parsePath(v)
			if err != nil {
				p.fail("SCHEMA_VALIDATION_FAILED", o.field("Variable"), "The value for the field 'Variable' must be a valid JSONPath")
			}
			r.variable = path
		} else if !o.has("Variable") {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [Variable]")
		}
		for _, op := range comparisonOps {
			for _, suffix := range []string{"", "Path"} {
				k := op + suffix
				v, ok := o.get(k)
				if !ok {
					continue
				}
				n++
				r.op = op
				if suffix == "Path" {
					if strings.HasPrefix(op, "Is") {
						p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "Field '%s' is not supported", k)
						continue
					}
					r.isPath = true
					r.opPath = p.refPath(o, k, v)
					continue
				}
				if !validOperand(op, v) {
					p.fail("SCHEMA_VALIDATION_FAILED", o.field(k), "The value for the field '%s' has the wrong type", k)
				}
				r.operand = v
			}
		}
		if n == 0 {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "A choice rule needs a comparison operator, And, Or or Not")
		}
	}
	if n > 1 {
		p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "A choice rule must have exactly one comparison operator, And, Or or Not")
	}
	o.done()
	return r
}

func validOperand(op string, v any) bool {
	switch {
	case strings.HasPrefix(op, "String"):
		_, ok := v.(string)
		return ok
	case strings.HasPrefix(op, "Numeric"):
		return isNumber(v)
	case strings.HasPrefix(op, "Timestamp"):
		s, ok := v.(string)
		if !ok {
			return false
		}
		_, err := parseTimestamp(s)
		return err == nil
	default: // BooleanEquals and Is*
		_, ok := v.(bool)
		return ok
	}
}

func (p *parser) mapFields(o *obj, g *graph, st *state) {
	proc, hasProc := o.object("ItemProcessor")
	if !hasProc {
		if st.lang == JSONPath {
			proc, hasProc = o.object("Iterator")
		}
	}
	if !hasProc {
		if !o.has("ItemProcessor") && !o.has("Iterator") {
			p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "These fields are required: [ItemProcessor]")
		}
	} else {
		proc.str("Comment")
		if pc, ok := proc.object("ProcessorConfig"); ok {
			if mode, ok := pc.str("Mode"); ok && mode != "INLINE" && mode != "DISTRIBUTED" {
				p.fail("SCHEMA_VALIDATION_FAILED", pc.field("Mode"), "The value for the field 'Mode' must be INLINE or DISTRIBUTED")
			}
			pc.str("ExecutionType")
			pc.done()
		}
		ql := p.subLanguage(proc, st.lang)
		st.processor = p.graph(proc, g.id+"/"+st.name+"/0", proc.ptr, ql)
		proc.done()
	}
	if st.lang == JSONPath {
		if s, ok := o.str("ItemsPath"); ok {
			path, err := parsePath(s)
			if err != nil {
				p.fail("SCHEMA_VALIDATION_FAILED", o.field("ItemsPath"), "The value for the field 'ItemsPath' must be a valid JSONPath")
			}
			st.itemsPath = path
		}
		st.itemSelector = p.pathTemplate(o, "ItemSelector")
		if params := p.pathTemplate(o, "Parameters"); params != nil {
			if st.itemSelector != nil {
				p.fail("SCHEMA_VALIDATION_FAILED", o.ptr, "Only one of 'ItemSelector' or 'Parameters' can be set")
			}
			st.itemSelector = params
		}
	} else {
		st.items = p.jsonataTemplate(o, "Items")
		st.itemSelector = p.jsonataTemplate(o, "ItemSelector")
	}
	st.maxConcurrency = p.numberField(o, st, "MaxConcurrency", "MaxConcurrencyPath", 0)
	st.toleratedCount = p.numberField(o, st, "ToleratedFailureCount", "ToleratedFailureCountPath", 0)
	st.toleratedPercent = p.percentField(o, st)
	o.str("Label")
	if _, ok := o.get("ItemReader"); ok {
		st.itemReader = true
	}
	if _, ok := o.get("ResultWriter"); ok {
		st.resultWriter = true
	}
	if bo, ok := o.object("ItemBatcher"); ok {
		b := &batcher{}
		b.maxItems = p.numberField(bo, st, "MaxItemsPerBatch", "MaxItemsPerBatchPath", 1)
		b.maxBytes = p.numberField(bo, st, "MaxInputBytesPerBatch", "MaxInputBytesPerBatchPath", 1)
		if st.lang == JSONPath {
			b.batchInput = p.pathTemplate(bo, "BatchInput")
		} else {
			b.batchInput = p.jsonataTemplate(bo, "BatchInput")
		}
		if !b.maxItems.set && !b.maxBytes.set {
			p.fail("SCHEMA_VALIDATION_FAILED", bo.ptr, "ItemBatcher needs MaxItemsPerBatch or MaxInputBytesPerBatch")
		}
		bo.done()
		st.itemBatcher = b
	}
}

func (p *parser) percentField(o *obj, st *state) valueSpec {
	spec := valueSpec{field: "ToleratedFailurePercentage"}
	if v, ok := o.get("ToleratedFailurePercentage"); ok {
		spec.set = true
		if s, isStr := v.(string); isStr && st.lang == JSONata && isJSONataString(s) {
			spec.expr = p.expr(o.field("ToleratedFailurePercentage"), "ToleratedFailurePercentage", s)
		} else if f, ok := toFloat(v); ok && f >= 0 && f <= 100 {
			spec.lit = f
		} else {
			p.fail("SCHEMA_VALIDATION_FAILED", o.field("ToleratedFailurePercentage"), "The value for the field 'ToleratedFailurePercentage' must be a number between 0 and 100")
		}
	}
	if st.lang == JSONPath {
		if v, ok := o.get("ToleratedFailurePercentagePath"); ok {
			spec.set = true
			spec.field = "ToleratedFailurePercentagePath"
			spec.path = p.refPath(o, "ToleratedFailurePercentagePath", v)
			spec.src, _ = v.(string)
		}
	}
	return spec
}

// parseTimestamp accepts RFC 3339 timestamps with an upper-case T and an
// offset, as AWS does ("2016-03-14T01:59:00Z", fractions to nanoseconds).
func parseTimestamp(s string) (time.Time, error) {
	if len(s) < 20 || s[10] != 'T' {
		return time.Time{}, fmt.Errorf("not an ISO-8601 timestamp: %q", s)
	}
	return time.Parse(time.RFC3339Nano, s)
}

// intOf reads a non-negative integer from a resolved field value.
func intOf(v any) (int64, bool) {
	if n, ok := toInt(v); ok {
		return n, true
	}
	if s, ok := v.(string); ok {
		if n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return n, true
		}
	}
	if f, ok := toFloat(v); ok && !math.IsNaN(f) && f == math.Trunc(f) {
		return int64(f), true
	}
	return 0, false
}
