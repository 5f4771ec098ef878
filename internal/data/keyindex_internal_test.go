package data

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestKeyIndexOrder drives a key index with random puts and deletes of
// real keys (strings and numbers, encoded as tables encode them) and
// checks every page of scans, and of forward and reverse queries with
// each kind of sort condition (which seek and stop at the end of their
// run) and without, against a model sorted by the key values themselves
// and filtered by the conditions stated on values.
func TestKeyIndexOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	value := func() KeyValue {
		if rng.IntN(3) == 0 {
			return KeyValue{IsNum: true, Num: float64(rng.IntN(81)-40) / 4}
		}
		var b strings.Builder
		for range rng.IntN(4) {
			b.WriteByte("a-b\x00~é"[rng.IntN(7)])
		}
		return KeyValue{Str: b.String()}
	}
	type item struct{ pk, sk KeyValue }
	x := newKeyIndex("test")
	live := map[string]item{}
	for seq := uint64(1); seq <= 6000; seq++ {
		it := item{value(), value()}
		key := kvKey(it.pk, &it.sk)
		if rng.IntN(4) == 0 {
			x.apply(key, true, seq)
			delete(live, key)
			continue
		}
		x.apply(key, false, seq)
		live[key] = it
	}
	order := func(a, b item) int {
		if c := a.pk.Compare(b.pk); c != 0 {
			return c
		}
		return a.sk.Compare(b.sk)
	}
	var all []item
	for _, it := range live {
		all = append(all, it)
	}
	slices.SortFunc(all, order)
	keysOf := func(items []item) []string {
		out := make([]string, len(items))
		for i, it := range items {
			out[i] = kvKey(it.pk, &it.sk)
		}
		return out
	}
	// pages reads everything next returns, page by page, each page
	// starting after the last key of the one before.
	pages := func(n int, next func(after string, n int) []string) []string {
		var out []string
		after := ""
		for {
			page := next(after, n)
			if len(page) > n {
				t.Fatalf("a page of %d keys for a limit of %d", len(page), n)
			}
			if len(page) == 0 {
				return out
			}
			out = append(out, page...)
			after = page[len(page)-1]
		}
	}
	want := keysOf(all)
	for _, n := range []int{1, 7, 100, 10000} {
		if got := pages(n, x.scan); !slices.Equal(got, want) {
			t.Fatalf("scan in pages of %d: %d keys, want %d in value order", n, len(got), len(want))
		}
	}
	type cond struct {
		cc    *compiled
		holds func(KeyValue) bool // the condition on values, as DynamoDB states it
	}
	conds := []cond{{nil, func(KeyValue) bool { return true }}}
	for _, c := range []Condition{
		{Op: "=", Value: json.RawMessage(`2.5`)}, {Op: "<", Value: json.RawMessage(`0`)}, {Op: "<=", Value: json.RawMessage(`-1`)},
		{Op: ">", Value: json.RawMessage(`3`)}, {Op: ">=", Value: json.RawMessage(`-2.25`)}, {Op: "between", Value: json.RawMessage(`-1`), Value2: json.RawMessage(`1`)},
		{Op: "=", Value: json.RawMessage(`"ab"`)}, {Op: "<", Value: json.RawMessage(`"b"`)}, {Op: "<=", Value: json.RawMessage(`"a-"`)},
		{Op: ">", Value: json.RawMessage(`"a"`)}, {Op: ">=", Value: json.RawMessage(`"b"`)}, {Op: "between", Value: json.RawMessage(`"a"`), Value2: json.RawMessage(`"b-"`)},
		{Op: "begins_with", Value: json.RawMessage(`"a"`)}, {Op: "begins_with", Value: json.RawMessage(`""`)},
		{Op: "begins_with", Value: json.RawMessage(`"b\u0000"`)}, {Op: "begins_with", Value: json.RawMessage(`"é"`)},
	} {
		cc, err := compileCondition(&c)
		if err != nil {
			t.Fatal(err)
		}
		v, _ := ParseKeyValue(c.Value)
		v2, _ := ParseKeyValue(c.Value2)
		holds := func(k KeyValue) bool {
			if k.IsNum != v.IsNum {
				return false // a condition compares keys of its operand's type
			}
			switch d := k.Compare(v); c.Op {
			case "=":
				return d == 0
			case "<":
				return d < 0
			case "<=":
				return d <= 0
			case ">":
				return d > 0
			case ">=":
				return d >= 0
			case "between":
				return d >= 0 && k.Compare(v2) <= 0
			}
			return strings.HasPrefix(k.Str, v.Str)
		}
		conds = append(conds, cond{cc, holds})
	}
	partitions := 0
	for i, it := range all {
		if i > 0 && all[i-1].pk.Compare(it.pk) == 0 {
			continue
		}
		partitions++
		ptok := EncodeToken(it.pk)
		for _, c := range conds {
			cc := c.cc
			var w []string
			for _, o := range all {
				if o.pk.Compare(it.pk) == 0 && c.holds(o.sk) {
					w = append(w, kvKey(o.pk, &o.sk))
				}
			}
			for _, n := range []int{1, 3, 1000} {
				got := pages(n, func(after string, n int) []string { return x.partition(ptok, after, false, cc, n) })
				if !slices.Equal(got, w) {
					t.Fatalf("partition %q, %+v, forward in pages of %d: %q, want %q", it.pk, cc, n, got, w)
				}
				got = pages(n, func(after string, n int) []string { return x.partition(ptok, after, true, cc, n) })
				rw := slices.Clone(w)
				slices.Reverse(rw)
				if !slices.Equal(got, rw) {
					t.Fatalf("partition %q, %+v, reversed in pages of %d: %q, want %q", it.pk, cc, n, got, rw)
				}
			}
		}
	}
	if partitions < 100 {
		t.Fatalf("only %d partitions: the model is too small to test ordering", partitions)
	}
	for key := range live {
		if present, ok := x.has(key); !present || !ok {
			t.Fatalf("has(%q) = %v, %v for a live key", key, present, ok)
		}
	}
	if present, _ := x.has(kvKey(KeyValue{Str: "never written"}, &KeyValue{Str: "x"})); present {
		t.Fatal("has reports a key never written")
	}
}

// TestIndexKeyOrder: index keys sort by partition token, then sort token,
// though '-', a token character, sorts before the '.' that ends a
// partition token in a KV key; and they convert back.
func TestIndexKeyOrder(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"a.x", "a-.x", true}, {"a-.x", "a.x", false}, // partition a before a-
		{"a.x", "a.y", true}, {"a.y", "a.x", false},
		{"a", "a-", true}, {"a", "a.x", true}, // a key without a sort token first
		{"a.zz", "a-", true}, {"a.x-y", "a.x", false},
	} {
		if got := indexKey(c.a) < indexKey(c.b); got != c.less {
			t.Errorf("%q < %q in index form = %v, want %v", c.a, c.b, got, c.less)
		}
		for _, k := range []string{c.a, c.b} {
			if back := kvKeyOf(indexKey(k)); back != k {
				t.Errorf("%q comes back as %q", k, back)
			}
		}
	}
	if end := "a" + partitionEnd; !(indexKey("a.zzz") < end && end < indexKey("a-") && end < indexKey("a-.a")) {
		t.Error("partitionEnd does not fall between partition a and partition a-")
	}
	if e := indexKey("a.") + sortEnd; !(indexKey("a.zzz") < e && e < indexKey("a-")) {
		t.Error("sortEnd does not fall between a's last sort token and the next partition")
	}
}

// BenchmarkKeyIndexBuild indexes n keys arriving in random order (as a
// table's stream delivers them), in one partition and in a partition
// each: what a node spends to build a table's index on its first query.
// The sorted slices before the B-tree took 36 µs a key at 100,000 keys.
func BenchmarkKeyIndexBuild(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		rng := rand.New(rand.NewPCG(1, 2))
		one, each := make([]string, n), make([]string, n)
		for i, v := range rng.Perm(n) {
			num := KeyValue{IsNum: true, Num: float64(v)}
			one[i] = kvKey(KeyValue{Str: "p"}, &num)
			each[i] = kvKey(KeyValue{Str: fmt.Sprintf("user-%d", v)}, &num)
		}
		for name, keys := range map[string][]string{"one-partition": one, "partition-each": each} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				for b.Loop() {
					x := newKeyIndex("bench")
					for i, k := range keys {
						x.apply(k, false, uint64(i+1))
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
			})
		}
	}
}

// BenchmarkQueryRun pages 100 keys out of a 100,000-key partition with a
// condition whose run is at its start, its middle or its end: with the
// seek, all three cost the same; filtering from the partition's first key
// made the last one walk 99,900 keys first.
func BenchmarkQueryRun(b *testing.B) {
	const n = 100_000
	x := newKeyIndex("bench")
	pk := KeyValue{Str: "sensor-1"}
	for i := range n {
		v := KeyValue{IsNum: true, Num: float64(i)}
		x.apply(kvKey(pk, &v), false, uint64(i+1))
	}
	ptok := EncodeToken(pk)
	for name, c := range map[string]Condition{
		"start":  {Op: "<", Value: json.RawMessage(`100`)},
		"middle": {Op: "between", Value: json.RawMessage(`50000`), Value2: json.RawMessage(`50099`)},
		"end":    {Op: ">=", Value: json.RawMessage(`99900`)},
	} {
		cc, err := compileCondition(&c)
		if err != nil {
			b.Fatal(err)
		}
		for _, reverse := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/reverse=%v", name, reverse), func(b *testing.B) {
				for b.Loop() {
					if got := x.partition(ptok, "", reverse, cc, 101); len(got) != 100 {
						b.Fatalf("%d keys, want 100", len(got))
					}
				}
			})
		}
	}
}

// TestIdleTableIndexIsDropped: a table's key index that served nothing for
// indexIdle is stopped with its consumer, and the next write or query
// builds a new one that holds the writes made in between.
func TestIdleTableIndexIsDropped(t *testing.T) {
	ctx := context.Background()
	s := filesService(t)
	if _, _, err := s.PutTable(ctx, TableDef{Name: "events", Key: "pk", Sort: "n"}); err != nil {
		t.Fatal(err)
	}
	put := func(n int) {
		t.Helper()
		if _, err := s.Put(ctx, "events", json.RawMessage(fmt.Sprintf(`{"pk":"p","n":%d}`, n)), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		t.Helper()
		p, err := s.Query(ctx, "events", Query{Partition: json.RawMessage(`"p"`)})
		if err != nil {
			t.Fatal(err)
		}
		return len(p.Items)
	}
	put(1)
	if n := count(); n != 1 {
		t.Fatalf("queried %d items", n)
	}
	h, err := s.table(ctx, "events")
	if err != nil {
		t.Fatal(err)
	}
	// The put starts a new index, which reads both items from the stream.
	checkIdleDrop(t, s, &h.idx, h.stream, func() { put(2) }, count, 2)
}

// TestScanOrderWithoutIndex: a scan listed through JetStream (the key
// index not running) pages the table in the index's order, so a cursor
// from either way continues the same sequence.
func TestScanOrderWithoutIndex(t *testing.T) {
	ctx := context.Background()
	s := filesService(t)
	if _, _, err := s.PutTable(ctx, TableDef{Name: "mixed", Key: "pk", Sort: "sk"}); err != nil {
		t.Fatal(err)
	}
	// Partition "ab" encodes to a token that is a prefix of "ab\x01"'s,
	// which continues with '-': KV keys compared whole would put the
	// second partition first.
	pks := []string{`"ab"`, `"ab\u0001"`, `"ab\u0001x"`, `"abc"`, `"a"`, `1`, `-2.5`}
	for i := range 300 {
		item := fmt.Sprintf(`{"pk":%s,"sk":%d}`, pks[i%len(pks)], i)
		if _, err := s.Put(ctx, "mixed", json.RawMessage(item), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	scan := func() []string {
		var keys []string
		cur := ""
		for {
			p, err := s.Scan(ctx, "mixed", 7, cur)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Items {
				keys = append(keys, string(e.Item))
			}
			if cur = p.Cursor; cur == "" {
				return keys
			}
		}
	}
	indexed := scan()
	h, err := s.table(ctx, "mixed")
	if err != nil {
		t.Fatal(err)
	}
	h.idx.close()
	h.idx.cur.Store(nil) // no index from now on: scans list keys through JetStream
	listed := scan()
	if len(indexed) != 300 || !slices.Equal(listed, indexed) {
		t.Fatalf("scanned %d items through the index and %d without, in another order", len(indexed), len(listed))
	}
}
