package data

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Condition is a sort key condition of a query.
type Condition struct {
	// Op is one of = < <= > >= between begins_with.
	Op string `json:"op"`
	// Value is the operand; Value2 the upper bound of between.
	Value  json.RawMessage `json:"value"`
	Value2 json.RawMessage `json:"value2,omitempty"`
}

// Query selects items of one partition.
type Query struct {
	// Partition is the partition key's value.
	Partition json.RawMessage `json:"partition"`
	// Where is a condition on the sort key in text form (ParseCondition);
	// Condition the same in structured form. At most one is given.
	Where     string     `json:"where,omitempty"`
	Condition *Condition `json:"condition,omitempty"`
	// Reverse returns items in descending sort key order.
	Reverse bool `json:"reverse,omitempty"`
	// Limit bounds the items returned (default 100, at most 1000).
	Limit int `json:"limit,omitempty"`
	// Cursor continues after a previous page.
	Cursor string `json:"cursor,omitempty"`
}

// Page is a page of a query or scan.
type Page struct {
	Items []Entry `json:"items"`
	// Cursor fetches the next page; empty on the last page.
	Cursor string `json:"cursor,omitempty"`
}

// compiled is a condition with its operands as tokens.
type compiled struct {
	op     string
	lo, hi string // token bounds (by op; begins_with: hi is exclusive)
	num    bool   // the operands are numbers: only number keys match
}

// firstString is the smallest string token: every number token is below it.
var firstString = EncodeToken(KeyValue{})

var condOps = []string{"=", "<", "<=", ">", ">=", "between", "begins_with"}

// ParseCondition reads a sort key condition in text form:
//
//	[attr] OP VALUE
//	[attr] between VALUE and VALUE
//	[attr] begins_with VALUE
//
// where OP is = < <= > >=, VALUE is a JSON string or number, and attr, when
// given, must be the table's sort key attribute (checked by the caller).
// Examples: `>= "2024-01-01"`, `created between 1 and 5`, `begins_with "img/"`.
func ParseCondition(s string) (attr string, c *Condition, err error) {
	p := &condParser{s: s}
	p.space()
	// An optional attribute name: a bare word that is not an operator.
	if w := p.word(); w != "" {
		if slices.Contains(condOps, strings.ToLower(w)) {
			p.pos -= len(w)
		} else {
			attr = w
			p.space()
		}
	}
	op := p.op()
	if op == "" {
		return "", nil, invalid("where", "expected an operator (=, <, <=, >, >=, between, begins_with) at offset %d of %q", p.pos, truncate(s, 80))
	}
	c = &Condition{Op: op}
	p.space()
	if c.Value, err = p.value(); err != nil {
		return "", nil, err
	}
	p.space()
	if op == "between" {
		if w := p.word(); !strings.EqualFold(w, "and") {
			return "", nil, invalid("where", "between needs `and` and an upper bound, at offset %d of %q", p.pos, truncate(s, 80))
		}
		p.space()
		if c.Value2, err = p.value(); err != nil {
			return "", nil, err
		}
		p.space()
	}
	if p.pos != len(p.s) {
		// `>= 2024-05` reads as the number 2024 and then "-05".
		hint := ""
		if r, _ := utf8.DecodeLastRuneInString(p.s[:p.pos]); !unicode.IsSpace(r) {
			hint = quoteHint
		}
		return "", nil, invalid("where", "unexpected %q at offset %d%s", truncate(p.s[p.pos:], 20), p.pos, hint)
	}
	return attr, c, nil
}

// quoteHint ends the errors of a condition whose value may be a string
// given without its quotes.
const quoteHint = `: a string value goes in double quotes, as in >= "2024-05"`

type condParser struct {
	s   string
	pos int
}

func (p *condParser) space() {
	for p.pos < len(p.s) {
		r, n := utf8.DecodeRuneInString(p.s[p.pos:])
		if !unicode.IsSpace(r) {
			return
		}
		p.pos += n
	}
}

// word reads a bare word: letters, digits, '_', '-', '.'.
func (p *condParser) word() string {
	start := p.pos
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		if c == '_' || c == '-' || c == '.' || ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			p.pos++
			continue
		}
		break
	}
	w := p.s[start:p.pos]
	// A number is a value, not a word.
	if w != "" && (w[0] == '-' || ('0' <= w[0] && w[0] <= '9')) {
		p.pos = start
		return ""
	}
	return w
}

func (p *condParser) op() string {
	for _, o := range []string{"<=", ">=", "=", "<", ">"} {
		if strings.HasPrefix(p.s[p.pos:], o) {
			p.pos += len(o)
			return o
		}
	}
	w := p.word()
	switch strings.ToLower(w) {
	case "between", "begins_with":
		return strings.ToLower(w)
	}
	p.pos -= len(w)
	return ""
}

// value reads one JSON string or number.
func (p *condParser) value() (json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(p.s[p.pos:]))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, invalid("where", "expected a JSON string or number at offset %d%s", p.pos, quoteHint)
	}
	raw := strings.TrimSpace(p.s[p.pos : p.pos+int(dec.InputOffset())])
	switch v.(type) {
	case string, json.Number:
	default:
		return nil, invalid("where", "a condition value must be a JSON string or number, at offset %d", p.pos)
	}
	p.pos += int(dec.InputOffset())
	return json.RawMessage(raw), nil
}

// compile checks a condition and turns its operands into tokens.
func compileCondition(c *Condition) (*compiled, error) {
	if !slices.Contains(condOps, c.Op) {
		return nil, invalid("condition.op", "%q is not an operator: use one of %s", truncate(c.Op, 20), strings.Join(condOps, " "))
	}
	v, err := ParseKeyValue(c.Value)
	if err == nil {
		err = checkKeyValue(v, MaxSortKeyBytes)
	}
	if err != nil {
		return nil, invalid("condition.value", "%s", err)
	}
	cc := &compiled{op: c.Op, lo: EncodeToken(v), num: v.IsNum}
	switch c.Op {
	case "between":
		v2, err := ParseKeyValue(c.Value2)
		if err == nil {
			err = checkKeyValue(v2, MaxSortKeyBytes)
		}
		if err != nil {
			return nil, invalid("condition.value2", "%s", err)
		}
		cc.hi = EncodeToken(v2)
		if v2.IsNum != v.IsNum {
			return nil, invalid("condition", "between's bounds must both be strings or both numbers")
		}
		if cc.hi < cc.lo {
			return nil, invalid("condition", "between's lower bound is above its upper bound")
		}
	case "begins_with":
		if v.IsNum {
			return nil, invalid("condition.value", "begins_with needs a string")
		}
		// The strings that begin with v are the tokens from v's up to
		// that of v and a 0xff byte, which no UTF-8 string holds.
		cc.hi = tokenEncoding.EncodeToString(append(append([]byte{tagString}, v.Str...), 0xff))
	default:
		if len(c.Value2) > 0 {
			return nil, invalid("condition.value2", "only between takes a second value")
		}
	}
	return cc, nil
}

// sortEnd sorts after every sort token (their alphabet ends at 'z').
const sortEnd = "~"

// seek returns a sort token from which a walk of a partition in order (in
// reverse: down from which) passes no key the condition matches before
// its first: the operand, a bound, or the edge of the operand's type
// (numbers sort before strings, sortEnd after every token).
func (c *compiled) seek(reverse bool) string {
	typeStart, typeEnd := firstString, sortEnd
	if c.num {
		typeStart, typeEnd = "", firstString
	}
	switch {
	case !reverse && (c.op == "<" || c.op == "<="):
		return typeStart
	case !reverse: // = > >= between, and begins_with, whose prefix sorts first
		return c.lo
	case c.op == "between" || c.op == "begins_with":
		return c.hi
	case c.op == "=" || c.op == "<" || c.op == "<=":
		return c.lo
	default: // > >=
		return typeEnd
	}
}

// match reports whether the sort token tok meets the condition. As in
// DynamoDB, a condition compares only keys of its operand's type.
func (c *compiled) match(tok string) bool {
	if (tok < firstString) != c.num {
		return false
	}
	switch c.op {
	case "=":
		return tok == c.lo
	case "<":
		return tok < c.lo
	case "<=":
		return tok <= c.lo
	case ">":
		return tok > c.lo
	case ">=":
		return tok >= c.lo
	case "between":
		return c.lo <= tok && tok <= c.hi
	case "begins_with":
		return c.lo <= tok && tok < c.hi
	}
	return false
}

// cursor is what a page's cursor holds: the table, and the KV key after
// which (or before which, in reverse) the next page starts.
type cursor struct {
	Table string `json:"t"`
	After string `json:"k"`
}

func encodeCursor(table, key string) string {
	b, _ := json.Marshal(cursor{Table: table, After: key})
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(table, s string) (string, error) {
	if s == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err != nil || json.Unmarshal(b, &c) != nil || c.After == "" {
		return "", invalid("cursor", "malformed cursor: pass back the cursor of the previous page unchanged")
	}
	if c.Table != table {
		return "", invalid("cursor", "the cursor belongs to another table")
	}
	for part := range strings.SplitSeq(c.After, ".") {
		if _, err := DecodeToken(part); err != nil {
			return "", invalid("cursor", "malformed cursor: pass back the cursor of the previous page unchanged")
		}
	}
	return c.After, nil
}

func pageLimit(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultLimit, nil
	case n < 0 || n > MaxLimit:
		return 0, invalid("limit", "%d is out of range: use 1 to %d", n, MaxLimit)
	}
	return n, nil
}

// Query returns items of one partition in sort key order.
//
// JetStream KV has no ordered range read, so a query lists the keys of the
// partition (one subject-filtered pass over the bucket's last messages,
// headers only), sorts and filters them in memory, and reads the values of
// the page's items: its cost grows with the partition's size, not the
// page's. docs/data.md gives figures.
func (s *Service) Query(ctx context.Context, table string, q Query) (_ *Page, err error) {
	defer s.ops.done(kindTable, table, opQuery, time.Now(), &err)
	h, err := s.table(ctx, table)
	if err != nil {
		return nil, err
	}
	limit, err := pageLimit(q.Limit)
	if err != nil {
		return nil, err
	}
	pk, err := ParseKeyValue(q.Partition)
	if err == nil {
		err = checkKeyValue(pk, MaxPartitionKeyBytes)
	}
	if err != nil {
		return nil, invalid("partition", "partition key %s", err)
	}
	cond := q.Condition
	if q.Where != "" {
		if cond != nil {
			return nil, invalid("where", "give a condition as where or as condition, not both")
		}
		attr, c, err := ParseCondition(q.Where)
		if err != nil {
			return nil, err
		}
		if attr != "" && attr != h.def.Sort {
			return nil, invalid("where", "%q is not the sort key of table %s (it is %q)", attr, table, h.def.Sort)
		}
		cond = c
	}
	var cc *compiled
	if cond != nil {
		if h.def.Sort == "" {
			return nil, invalid("where", "table %s has no sort key to put a condition on", table)
		}
		if cc, err = compileCondition(cond); err != nil {
			return nil, err
		}
	}
	after, err := decodeCursor(table, q.Cursor)
	if err != nil {
		return nil, err
	}
	ptok := EncodeToken(pk)
	if h.def.Sort == "" {
		// One item per partition.
		if after != "" {
			return &Page{Items: []Entry{}}, nil
		}
		e, err := h.get(ctx, ptok)
		if errors.Is(err, ErrNoSuchKey) {
			return &Page{Items: []Entry{}}, nil
		}
		if err != nil {
			return nil, err
		}
		return &Page{Items: []Entry{*e}}, nil
	}
	if after != "" && !strings.HasPrefix(after, ptok+".") {
		return nil, invalid("cursor", "the cursor belongs to another partition")
	}
	if x := h.indexed(ctx); x != nil {
		return h.page(ctx, func(n int) []string {
			ks := x.partition(ptok, after, q.Reverse, cc, n)
			if len(ks) > 0 {
				after = ks[len(ks)-1]
			}
			return ks
		}, limit)
	}
	keys, err := h.listKeys(ctx, ptok+".>")
	if err != nil {
		return nil, err
	}
	// Tokens sort as their values do, so sorting the keys of one partition
	// sorts by sort key.
	sort.Strings(keys)
	if q.Reverse {
		slices.Reverse(keys)
	}
	cand := keys[:0]
	for _, k := range keys {
		if after != "" && ((!q.Reverse && k <= after) || (q.Reverse && k >= after)) {
			continue
		}
		if cc != nil && !cc.match(k[len(ptok)+1:]) {
			continue
		}
		cand = append(cand, k)
	}
	return h.page(ctx, sliceKeys(cand), limit)
}

// Scan returns every item of the table, a page at a time, in key order
// (partition token, then sort token). A page costs a seek in the key
// index and its reads; without the index (it could not start or catch
// up) each page lists the whole table's keys, so a full scan costs
// O(n²/limit).
func (s *Service) Scan(ctx context.Context, table string, limit int, cur string) (_ *Page, err error) {
	defer s.ops.done(kindTable, table, opScan, time.Now(), &err)
	h, err := s.table(ctx, table)
	if err != nil {
		return nil, err
	}
	if limit, err = pageLimit(limit); err != nil {
		return nil, err
	}
	after, err := decodeCursor(table, cur)
	if err != nil {
		return nil, err
	}
	if x := h.indexed(ctx); x != nil {
		return h.page(ctx, func(n int) []string {
			ks := x.scan(after, n)
			if len(ks) > 0 {
				after = ks[len(ks)-1]
			}
			return ks
		}, limit)
	}
	keys, err := h.listKeys(ctx, ">")
	if err != nil {
		return nil, err
	}
	// In the key index's order (indexKey), so that a cursor means the
	// same to either way of scanning: each key turned once, not at every
	// comparison.
	for i, k := range keys {
		keys[i] = indexKey(k)
	}
	sort.Strings(keys)
	i, found := slices.BinarySearch(keys, indexKey(after))
	if found {
		i++
	}
	keys = keys[i:]
	for i, k := range keys {
		keys[i] = kvKeyOf(k)
	}
	return h.page(ctx, sliceKeys(keys), limit)
}

// sliceKeys hands out cand n keys at a time, for page.
func sliceKeys(cand []string) func(n int) []string {
	return func(n int) []string {
		n = min(n, len(cand))
		ks := cand[:n]
		cand = cand[n:]
		return ks
	}
}

// page reads the values of the first limit live items of the candidate
// keys next hands out (in order, at most n per call, none when done),
// skipping keys deleted or expired since they were listed.
func (h *tableHandle) page(ctx context.Context, next func(n int) []string, limit int) (*Page, error) {
	out := &Page{Items: make([]Entry, 0, limit)}
	// One candidate beyond the page tells whether a next page exists.
	pending := next(limit + 1)
	for len(pending) > 0 && len(out.Items) < limit {
		n := min(len(pending), limit-len(out.Items))
		batch, rest := pending[:n], pending[n:]
		got := make([]*Entry, n)
		errs := make([]error, n)
		parallel(n, 16, func(i int) {
			e, err := h.get(ctx, batch[i])
			if err != nil && !errors.Is(err, ErrNoSuchKey) {
				errs[i] = err
			}
			got[i] = e
		})
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		for i, e := range got {
			if e == nil {
				continue
			}
			out.Items = append(out.Items, *e)
			if len(out.Items) == limit {
				if i == n-1 && len(rest) == 0 {
					rest = next(1)
				}
				if i < n-1 || len(rest) > 0 {
					out.Cursor = encodeCursor(h.def.Name, batch[i])
				}
				return out, nil
			}
		}
		// Some candidates were gone: top up to the page's remainder and
		// one more.
		pending = append(rest, next(limit-len(out.Items)+1-len(rest))...)
	}
	return out, nil
}

// listKeys returns the live keys matching filter (a KV key pattern).
func (h *tableHandle) listKeys(ctx context.Context, filter string) ([]string, error) {
	kl, err := h.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("table %s: list keys: %w", h.def.Name, err)
	}
	defer kl.Stop()
	var keys []string
	seen := map[string]struct{}{}
	for k := range kl.Keys() {
		// The lister may repeat a key written while it runs.
		if _, dup := seen[k]; !dup {
			seen[k] = struct{}{}
			keys = append(keys, k)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

// count counts live keys, stopping at stop.
func (h *tableHandle) count(ctx context.Context, stop int) (int, error) {
	kl, err := h.kv.ListKeys(ctx)
	if err != nil {
		return 0, fmt.Errorf("table %s: list keys: %w", h.def.Name, err)
	}
	defer kl.Stop()
	n := 0
	for range kl.Keys() {
		n++
		if n >= stop {
			break
		}
	}
	return n, nil
}
