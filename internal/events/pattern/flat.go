package pattern

import (
	"fmt"
	"strings"
)

// The Set evaluates rules on a flattened form: each leaf of a pattern becomes
// a path ID into a table shared by all rules of the Set, and each path is
// looked up in the event at most once per match, however many rules test it.
//
// Flattening loses one thing, array consistency: when a path crosses an
// array, which element a value came from matters. Such a lookup reports
// "complex" and the rule falls back to the tree evaluation of matchNode,
// which is the reference semantics (FuzzMatch holds the two to the same
// answers).

// pathTable interns event paths. Every prefix of an interned path is interned
// too, so a lookup resolves its parent first and shares that work.
type pathTable struct {
	ids    map[string]int
	parent []int // -1 for a top-level field
	key    []string
	// kids[p+1] maps a key to the path it continues p with (kids[0]: the
	// top-level fields), for decoding only what the paths reach.
	kids []map[string]int
}

func newPathTable() *pathTable {
	return &pathTable{ids: make(map[string]int), kids: []map[string]int{{}}}
}

func (t *pathTable) intern(segs []string) int {
	parent := -1
	for i := range segs {
		// NUL cannot be confused with a key character the way '.' can.
		full := strings.Join(segs[:i+1], "\x00")
		id, ok := t.ids[full]
		if !ok {
			id = len(t.key)
			t.ids[full] = id
			t.parent = append(t.parent, parent)
			t.key = append(t.key, segs[i])
			t.kids = append(t.kids, nil)
			if t.kids[parent+1] == nil {
				t.kids[parent+1] = make(map[string]int)
			}
			t.kids[parent+1][segs[i]] = id
		}
		parent = id
	}
	return parent
}

type flatNode struct {
	leaves []flatLeaf
	or     [][]*flatNode
}

type flatLeaf struct {
	path     int
	matchers []matcher
	memo     int // index of the leaf's result in evalCtx.memo; leaves alike share it
}

// leafTable interns leaves: the same test of the same path (a "type" prefix,
// a "tier" list) recurs across the rules of a Set, and its answer for one
// event is computed once per match however many rules hold it.
type leafTable struct {
	ids map[string]int
}

func (t *leafTable) intern(path int, ms []matcher) int {
	// %#v prints every field of the compiled matchers, so equal keys mean
	// equal tests; the rare difference in pointer-valued fields only costs
	// a missed share, never a wrong answer.
	key := fmt.Sprintf("%d\x00%#v", path, ms)
	id, ok := t.ids[key]
	if !ok {
		id = len(t.ids)
		t.ids[key] = id
	}
	return id
}

// flatten merges nested pattern objects into one node of full-path leaves;
// AND composes, so nesting adds nothing once paths are absolute.
func flatten(n *node, prefix []string, t *pathTable, lt *leafTable, into *flatNode) *flatNode {
	if into == nil {
		into = &flatNode{}
	}
	for i := range n.fields {
		f := &n.fields[i]
		segs := append(prefix[:len(prefix):len(prefix)], f.key)
		if f.child != nil {
			flatten(f.child, segs, t, lt, into)
			continue
		}
		path := t.intern(segs)
		into.leaves = append(into.leaves, flatLeaf{path: path, matchers: f.matchers, memo: lt.intern(path, f.matchers)})
	}
	for _, alts := range n.or {
		fa := make([]*flatNode, 0, len(alts))
		for _, a := range alts {
			fa = append(fa, flatten(a, prefix, t, lt, nil))
		}
		into.or = append(into.or, fa)
	}
	return into
}

const (
	slotUnresolved uint8 = iota
	slotAbsent
	slotPresent
	slotComplex // an array lies on the path
)

type slot struct {
	v     any
	state uint8
}

// evalCtx is the per-match cache of path lookups and leaf results.
type evalCtx struct {
	event map[string]any
	t     *pathTable
	slots []slot
	memo  []memo   // by flatLeaf.memo
	out   []string // matched ids, reused across matches
}

type memo uint8

const (
	memoUnknown memo = iota
	memoFalse
	memoTrue
)

func (c *evalCtx) get(id int) *slot {
	s := &c.slots[id]
	if s.state != slotUnresolved {
		return s
	}
	var parent any
	if p := c.t.parent[id]; p < 0 {
		parent = c.event
	} else {
		ps := c.get(p)
		switch ps.state {
		case slotAbsent, slotComplex:
			s.state = ps.state
			return s
		}
		parent = ps.v
	}
	switch pv := parent.(type) {
	case map[string]any:
		if v, ok := pv[c.t.key[id]]; ok {
			s.v, s.state = v, slotPresent
		} else {
			s.state = slotAbsent
		}
	case []any:
		s.state = slotComplex
	default:
		s.state = slotAbsent // below a scalar nothing exists
	}
	return s
}

type tri uint8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

// eval decides n where it can. A leaf on a clean path that fails makes the
// node false whatever the complex leaves would say, because the tree
// evaluation reaches exactly that one value for it and ANDs it in.
func (c *evalCtx) eval(n *flatNode) tri {
	unknown := false
	for i := range n.leaves {
		l := &n.leaves[i]
		switch c.memo[l.memo] {
		case memoTrue:
			continue
		case memoFalse:
			return triFalse
		}
		s := c.get(l.path)
		if s.state == slotComplex {
			unknown = true
			continue
		}
		if !matchLeaf(l.matchers, s.v, s.state == slotPresent) {
			c.memo[l.memo] = memoFalse
			return triFalse
		}
		c.memo[l.memo] = memoTrue
	}
	for _, alts := range n.or {
		r := triFalse
		for _, a := range alts {
			switch c.eval(a) {
			case triTrue:
				r = triTrue
			case triUnknown:
				r = triUnknown
				continue
			default:
				continue
			}
			break
		}
		switch r {
		case triFalse:
			return triFalse
		case triUnknown:
			unknown = true
		}
	}
	if unknown {
		return triUnknown
	}
	return triTrue
}
