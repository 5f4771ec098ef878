package pattern

import (
	"fmt"
	"slices"
	"sync"
)

// Set matches one event against many patterns. Each pattern is filed under
// an ID (a rule name); Match returns the IDs whose pattern matches.
//
// Most rules pin an attribute such as "type" or "source" to a few exact
// strings, so the Set indexes each rule under one such top-level field (its
// discriminator) and, per event, evaluates only the rules filed under the
// event's values for those fields, plus the rules that have no discriminator.
// Matching cost thus grows with the rules that could match, not with all rules.
//
// A Set is safe for concurrent use; Match takes a read lock, Add and Remove a
// write lock.
type Set struct {
	mu      sync.RWMutex
	rules   map[string]*rule
	fields  []string                      // discriminator fields in use
	index   []map[string][]*rule          // parallel to fields: value -> rules
	scan    []*rule                       // rules without a discriminator
	byField map[string]map[string][]*rule // fields/index by name, for updates
	paths   *pathTable                    // leaf paths of all rules ever added
	leaves  *leafTable                    // leaf tests of all rules ever added
	ctxs    sync.Pool                     // *evalCtx, reused across matches
}

type rule struct {
	id    string
	p     *Pattern
	flat  *flatNode
	field string   // discriminator, "" when scanned
	vals  []string // discriminator values
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{
		rules:   make(map[string]*rule),
		byField: make(map[string]map[string][]*rule),
		paths:   newPathTable(),
		leaves:  &leafTable{ids: make(map[string]int)},
	}
}

// Add files p under id, replacing any pattern already filed under it.
func (s *Set) Add(id string, p *Pattern) error {
	if p == nil {
		return fmt.Errorf("pattern set: add %q: nil pattern", id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(id)
	r := &rule{id: id, p: p, flat: flatten(p.root, nil, s.paths, s.leaves, nil)}
	r.field, r.vals = discriminator(p.root)
	s.rules[id] = r
	if r.field == "" {
		s.scan = append(s.scan, r)
		return nil
	}
	idx, ok := s.byField[r.field]
	if !ok {
		idx = make(map[string][]*rule)
		s.byField[r.field] = idx
		s.fields = append(s.fields, r.field)
		s.index = append(s.index, idx)
	}
	for _, v := range r.vals {
		idx[v] = append(idx[v], r)
	}
	return nil
}

// Remove deletes the pattern filed under id and reports whether there was one.
func (s *Set) Remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(id)
}

// Len returns the number of patterns in the set.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.rules)
}

func (s *Set) removeLocked(id string) bool {
	r, ok := s.rules[id]
	if !ok {
		return false
	}
	delete(s.rules, id)
	drop := func(rs []*rule) []*rule {
		return slices.DeleteFunc(rs, func(x *rule) bool { return x == r })
	}
	if r.field == "" {
		s.scan = drop(s.scan)
		return true
	}
	idx := s.byField[r.field]
	for _, v := range r.vals {
		if rs := drop(idx[v]); len(rs) > 0 {
			idx[v] = rs
		} else {
			delete(idx, v)
		}
	}
	return true
}

// Match decodes the JSON event once and returns the IDs of the matching
// patterns, sorted. It returns an error only when the event is not a JSON
// object.
func (s *Set) Match(event []byte) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// Only the fields some rule reads are decoded (the whole event is still
	// checked to be valid JSON): rules evaluated on this partial event see
	// every path they look up exactly as in the full one. The path table is
	// read under the lock that Add takes to extend it.
	obj, err := decodeEventPaths(event, s.paths)
	if err != nil {
		return nil, fmt.Errorf("pattern set: decode event: %w", err)
	}
	return s.matchLocked(obj), nil
}

// MatchValue is Match for an event already decoded into map[string]any.
func (s *Set) MatchValue(event map[string]any) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.matchLocked(event)
}

func (s *Set) matchLocked(event map[string]any) []string {
	c, _ := s.ctxs.Get().(*evalCtx)
	if c == nil {
		c = &evalCtx{}
	}
	n := len(s.paths.key)
	if cap(c.slots) < n {
		c.slots = make([]slot, n)
	}
	if m := len(s.leaves.ids); cap(c.memo) < m {
		c.memo = make([]memo, m)
	}
	c.event, c.t, c.slots, c.memo = event, s.paths, c.slots[:n], c.memo[:len(s.leaves.ids)]
	clear(c.slots)
	clear(c.memo)
	out := c.out[:0]
	for i, f := range s.fields {
		idx := s.index[i]
		switch v := event[f].(type) {
		case string:
			out = c.matchRules(out, idx[v])
		case []any:
			for _, e := range v {
				if str, ok := e.(string); ok {
					out = c.matchRules(out, idx[str])
				}
			}
		}
	}
	out = c.matchRules(out, s.scan)
	if len(out) > 1 {
		slices.Sort(out)
		// An array-valued discriminator can reach one rule twice.
		out = slices.Compact(out)
	}
	// The caller owns the result; the buffer stays with the context.
	var res []string
	if len(out) > 0 {
		res = slices.Clone(out)
	}
	c.out = out[:0]
	clear(c.slots) // drop references into the event before pooling
	c.event = nil
	s.ctxs.Put(c)
	return res
}

func (c *evalCtx) matchRules(out []string, rs []*rule) []string {
	for _, r := range rs {
		switch c.eval(r.flat) {
		case triTrue:
			out = append(out, r.id)
		case triUnknown:
			if matchNode(r.p.root, c.event) {
				out = append(out, r.id)
			}
		}
	}
	return out
}

// discriminator picks a top-level field of the pattern whose every allowed
// value is an exact string: an event whose value for that field is not among
// them cannot match, so the rule need not be evaluated for it.
func discriminator(root *node) (string, []string) {
	// The CloudEvents attributes that most often separate rules come first;
	// any other exact-string field is better than none.
	preference := [...]string{"type", "source", "subject"}
	var best *field
	bestRank := len(preference) + 1
	for i := range root.fields {
		f := &root.fields[i]
		if f.child != nil || !allExactStrings(f.matchers) {
			continue
		}
		rank := len(preference)
		for j, name := range preference {
			if f.key == name {
				rank = j
			}
		}
		if rank < bestRank {
			best, bestRank = f, rank
		}
	}
	if best == nil {
		return "", nil
	}
	vals := make([]string, 0, len(best.matchers))
	for _, m := range best.matchers {
		vals = append(vals, m.s)
	}
	slices.Sort(vals)
	return best.key, slices.Compact(vals)
}

func allExactStrings(ms []matcher) bool {
	for _, m := range ms {
		if m.kind != kString {
			return false
		}
	}
	return len(ms) > 0
}
