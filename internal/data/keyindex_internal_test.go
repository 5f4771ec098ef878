package data

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// TestKeyIndexOrder drives a key index with random puts and deletes of
// real keys (strings and numbers, encoded as tables encode them) and
// checks every page of scans and of forward and reverse queries, with and
// without a sort condition, against a model sorted by the key values
// themselves.
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
	nonNegative := func(stok string) bool {
		v, err := DecodeToken(stok)
		return err == nil && (!v.IsNum || v.Num >= 0)
	}
	partitions := 0
	for i, it := range all {
		if i > 0 && all[i-1].pk.Compare(it.pk) == 0 {
			continue
		}
		partitions++
		ptok := EncodeToken(it.pk)
		var part, kept []item
		for _, o := range all {
			if o.pk.Compare(it.pk) == 0 {
				part = append(part, o)
				if nonNegative(EncodeToken(o.sk)) {
					kept = append(kept, o)
				}
			}
		}
		for _, c := range []struct {
			keep func(string) bool
			want []item
		}{{nil, part}, {nonNegative, kept}} {
			for _, n := range []int{1, 3, 1000} {
				got := pages(n, func(after string, n int) []string { return x.partition(ptok, after, false, c.keep, n) })
				if w := keysOf(c.want); !slices.Equal(got, w) {
					t.Fatalf("partition %q forward in pages of %d: %q, want %q", it.pk, n, got, w)
				}
				got = pages(n, func(after string, n int) []string { return x.partition(ptok, after, true, c.keep, n) })
				w := keysOf(c.want)
				slices.Reverse(w)
				if !slices.Equal(got, w) {
					t.Fatalf("partition %q reversed in pages of %d: %q, want %q", it.pk, n, got, w)
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

// TestKeyLess: partitions sort by token, though '-', a token character,
// sorts before the '.' that ends a partition token.
func TestKeyLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"a.x", "a-.x", true}, {"a-.x", "a.x", false}, // partition a before a-
		{"a.x", "a.y", true}, {"a.y", "a.x", false},
		{"a", "a-", true}, {"a", "a.x", true}, // a key without a sort token first
		{"a.x", "a" + partitionEnd, true}, {"a-", "a" + partitionEnd, false},
	} {
		if got := keyLess(c.a, c.b); got != c.less {
			t.Errorf("keyLess(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
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
