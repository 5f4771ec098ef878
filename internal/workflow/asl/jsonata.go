package asl

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"strings"
	"sync"
	"time"

	jsonata "github.com/blues/jsonata-go"
	"github.com/blues/jsonata-go/jtypes"
)

// JSONata support sits on github.com/blues/jsonata-go (a port of
// jsonata-js 1.5 with no dependencies). On top of the library this file adds
// what Step Functions adds: the $states variable, workflow variables, the
// functions $partition, $range, $hash, $random, $uuid and $parse, and a
// deterministic $now/$millis.

// jsonataExpr is the text between "{%" and "%}".
type jsonataExpr struct {
	src  string
	vars []string // $names referenced, to bind only what is used
}

var jsonataVarRE = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)

// isJSONataString reports whether s is a "{% ... %}" expression.
func isJSONataString(s string) bool {
	return len(s) >= 4 && strings.HasPrefix(s, "{%") && strings.HasSuffix(s, "%}")
}

func compileJSONata(s string) (*jsonataExpr, error) {
	src := strings.TrimSpace(s[2 : len(s)-2])
	if src == "" {
		return nil, fmt.Errorf("empty JSONata expression")
	}
	if _, err := safeCompile(src); err != nil {
		return nil, fmt.Errorf("invalid JSONata expression %q: %v", src, err)
	}
	e := &jsonataExpr{src: src}
	seen := map[string]bool{}
	for _, m := range jsonataVarRE.FindAllStringSubmatch(src, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			e.vars = append(e.vars, m[1])
		}
	}
	return e, nil
}

// jsonataEnv is what an expression may read.
type jsonataEnv struct {
	states map[string]any // input, result, errorOutput, context (internal form)
	vars   func(name string) (any, bool)
	rand   func() uint64
	now    time.Time
}

var errUndefined = errors.New("undefined")

// safeCompile is jsonata.Compile that turns the library's panics (its
// lexer indexes past the end of some malformed input, such as invalid
// UTF-8) into errors: a definition must never crash the node.
func safeCompile(src string) (x *jsonata.Expr, err error) {
	defer func() {
		if v := recover(); v != nil {
			x, err = nil, fmt.Errorf("cannot parse the expression: %v", v)
		}
	}()
	return jsonata.Compile(src)
}

// safeEval evaluates x under jsonataMu, turning panics into errors.
func safeEval(x *jsonata.Expr) (out any, err error) {
	jsonataMu.Lock()
	defer jsonataMu.Unlock()
	defer func() {
		if v := recover(); v != nil {
			out, err = nil, fmt.Errorf("the expression failed: %v", v)
		}
	}()
	return x.Eval(nil)
}

// jsonataMu serialises evaluations: blues/jsonata-go names the function
// values of its shared, global environment on every call
// (callableName.SetName in evalFunctionCall), a data race when executions
// evaluate JSONata on several goroutines at once. No extension evaluates
// JSONata itself, so the lock is never taken twice.
var jsonataMu sync.Mutex

// eval returns the expression's value in the internal form, or errUndefined.
func (e *jsonataExpr) eval(env *jsonataEnv) (any, error) {
	x, err := safeCompile(e.src)
	if err != nil {
		return nil, err
	}
	bind := map[string]any{}
	for _, name := range e.vars {
		if name == "states" {
			bind["states"] = toJSONata(env.states)
			continue
		}
		if env.vars != nil {
			if v, ok := env.vars(name); ok {
				bind[name] = toJSONata(v)
			}
		}
	}
	if len(bind) > 0 {
		if err := x.RegisterVars(bind); err != nil {
			return nil, err
		}
	}
	if err := x.RegisterExts(awsExtensions(env)); err != nil {
		return nil, err
	}
	out, err := safeEval(x)
	if err != nil {
		if errors.Is(err, jsonata.ErrUndefined) {
			return nil, errUndefined
		}
		return nil, err
	}
	return fromJSONata(out)
}

func awsExtensions(env *jsonataEnv) map[string]jsonata.Extension {
	now := env.now
	return map[string]jsonata.Extension{
		"partition": {Func: func(a []any, n float64) ([]any, error) {
			if n <= 0 || n != math.Trunc(n) {
				return nil, fmt.Errorf("$partition: size must be a positive integer")
			}
			out := []any{}
			for i := 0; i < len(a); i += int(n) {
				out = append(out, append([]any{}, a[i:min(i+int(n), len(a))]...))
			}
			return out, nil
		}},
		"range": {Func: func(start, end, step float64) ([]any, error) {
			if step == 0 {
				return nil, fmt.Errorf("$range: step cannot be 0")
			}
			out := []any{}
			for v := start; (step > 0 && v <= end) || (step < 0 && v >= end); v += step {
				if len(out) == 1000 {
					return nil, fmt.Errorf("$range: more than 1000 items")
				}
				out = append(out, v)
			}
			return out, nil
		}},
		"hash": {Func: func(data any, alg string) (any, error) {
			return callIntrinsic("Hash", []any{fromJSONataLoose(data), alg}, nil)
		}},
		"random": {Func: func(seed jtypes.OptionalFloat64) float64 {
			var r uint64
			if seed.IsSet() {
				r = rand.New(rand.NewPCG(uint64(int64(seed.Float64)), 0)).Uint64()
			} else {
				r = env.rand()
			}
			return float64(r>>11) / (1 << 53)
		}},
		"uuid": {Func: func() string { return newUUID(env.rand) }},
		"parse": {Func: func(s string) (any, error) {
			v, err := decodeJSON([]byte(s))
			if err != nil {
				return nil, fmt.Errorf("$parse: %v", err)
			}
			return toJSONata(v), nil
		}},
		"now":    {Func: func() string { return now.UTC().Format("2006-01-02T15:04:05.000Z") }},
		"millis": {Func: func() float64 { return float64(now.UnixMilli()) }},
	}
}

// toJSONata converts an internal value to the library's form: float64
// numbers and a typed nil pointer for JSON null (a plain nil is "undefined").
func toJSONata(v any) any {
	switch x := v.(type) {
	case nil:
		return (*any)(nil)
	case json.Number:
		f, _ := x.Float64()
		return f
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = toJSONata(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = toJSONata(e)
		}
		return out
	}
	return v
}

// fromJSONata converts a library result back to the internal form.
func fromJSONata(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string:
		return x, nil
	case *any:
		if x == nil {
			return nil, nil
		}
		return fromJSONata(*x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("the result is not a finite number")
		}
		return numberValue(x), nil
	case int:
		return intValue(int64(x)), nil
	case int64:
		return intValue(x), nil
	case json.Number:
		return x, nil
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			c, err := fromJSONata(e)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			c, err := fromJSONata(e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	}
	// Anything else (functions, Go values from extensions): round-trip it
	// through JSON, or report it as not JSON.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("the result is not a JSON value (%T)", v)
	}
	return decodeJSON(b)
}

func fromJSONataLoose(v any) any {
	out, err := fromJSONata(v)
	if err != nil {
		return nil
	}
	return out
}
