package asl

import "strings"

// evalRule evaluates a JSONPath Choice rule against the state's effective
// input. Comparisons between values of different types are false, not
// errors; a Variable (or …Path operand) that selects nothing is a
// States.Runtime error, except for IsPresent.
func evalRule(r *choiceRule, rt *roots) (bool, error) {
	switch {
	case r.and != nil:
		for _, sub := range r.and {
			ok, err := evalRule(sub, rt)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case r.or != nil:
		for _, sub := range r.or {
			ok, err := evalRule(sub, rt)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case r.not != nil:
		ok, err := evalRule(r.not, rt)
		return !ok, err
	}
	v, err := r.variable.eval(rt)
	present := err == nil
	if r.op == "IsPresent" {
		want, _ := r.operand.(bool)
		return present == want, nil
	}
	if !present {
		return false, runtimeFail("Invalid path '%s': The choice state's condition path references an invalid value.", r.variable.src)
	}
	operand := r.operand
	if r.isPath {
		operand, err = r.opPath.eval(rt)
		if err != nil {
			return false, runtimeFail("Invalid path '%s': The choice state's condition path references an invalid value.", r.opPath.src)
		}
	}
	return compare(r.op, v, operand), nil
}

func compare(op string, v, operand any) bool {
	switch op {
	case "IsNull":
		want, _ := operand.(bool)
		return (v == nil) == want
	case "IsNumeric":
		want, _ := operand.(bool)
		return isNumber(v) == want
	case "IsString":
		want, _ := operand.(bool)
		_, ok := v.(string)
		return ok == want
	case "IsBoolean":
		want, _ := operand.(bool)
		_, ok := v.(bool)
		return ok == want
	case "IsTimestamp":
		want, _ := operand.(bool)
		s, ok := v.(string)
		if ok {
			_, err := parseTimestamp(s)
			ok = err == nil
		}
		return ok == want
	case "BooleanEquals":
		a, ok1 := v.(bool)
		b, ok2 := operand.(bool)
		return ok1 && ok2 && a == b
	case "StringMatches":
		a, ok1 := v.(string)
		b, ok2 := operand.(string)
		return ok1 && ok2 && wildcardMatch(b, a)
	}
	var c int
	switch {
	case strings.HasPrefix(op, "String"):
		a, ok1 := v.(string)
		b, ok2 := operand.(string)
		if !ok1 || !ok2 {
			return false
		}
		c = strings.Compare(a, b)
	case strings.HasPrefix(op, "Numeric"):
		a, ok1 := toFloat(v)
		b, ok2 := toFloat(operand)
		if !ok1 || !ok2 {
			return false
		}
		switch {
		case a < b:
			c = -1
		case a > b:
			c = 1
		}
	case strings.HasPrefix(op, "Timestamp"):
		as, ok1 := v.(string)
		bs, ok2 := operand.(string)
		if !ok1 || !ok2 {
			return false
		}
		a, err1 := parseTimestamp(as)
		b, err2 := parseTimestamp(bs)
		if err1 != nil || err2 != nil {
			return false
		}
		c = a.Compare(b)
	default:
		return false
	}
	switch {
	case strings.HasSuffix(op, "LessThanEquals"):
		return c <= 0
	case strings.HasSuffix(op, "GreaterThanEquals"):
		return c >= 0
	case strings.HasSuffix(op, "LessThan"):
		return c < 0
	case strings.HasSuffix(op, "GreaterThan"):
		return c > 0
	case strings.HasSuffix(op, "Equals"):
		return c == 0
	}
	return false
}

// wildcardMatch implements StringMatches: '*' matches any run of
// characters, "\*" a literal star and "\\" a literal backslash.
func wildcardMatch(pattern, s string) bool {
	type tok struct {
		star bool
		ch   rune
	}
	var toks []tok
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		if rs[i] == '\\' && i+1 < len(rs) && (rs[i+1] == '*' || rs[i+1] == '\\') {
			toks = append(toks, tok{ch: rs[i+1]})
			i++
			continue
		}
		toks = append(toks, tok{star: rs[i] == '*', ch: rs[i]})
	}
	str := []rune(s)
	// Iterative glob matching with backtracking to the last star.
	p, q := 0, 0
	starP, starQ := -1, 0
	for q < len(str) {
		if p < len(toks) && !toks[p].star && toks[p].ch == str[q] {
			p++
			q++
			continue
		}
		if p < len(toks) && toks[p].star {
			starP, starQ = p, q
			p++
			continue
		}
		if starP >= 0 {
			p = starP + 1
			starQ++
			q = starQ
			continue
		}
		return false
	}
	for p < len(toks) && toks[p].star {
		p++
	}
	return p == len(toks)
}
