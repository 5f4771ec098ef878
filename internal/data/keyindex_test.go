package data_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/nimbus-run/nimbus/internal/data"
)

// TestQueryIndexConsistent checks that queries and scans, served by the
// in-memory key index, see every write acknowledged before they began
// (deletes included) and page correctly in both directions, also while
// other writers run.
func TestQueryIndexConsistent(t *testing.T) {
	n, _ := startNode(t)
	ctx := context.Background()
	svc := n.Data
	if _, _, err := svc.PutTable(ctx, data.TableDef{Name: "ix", Key: "pk", Sort: "sk"}); err != nil {
		t.Fatal(err)
	}
	// A first query starts the index on an empty table.
	if p, err := svc.Query(ctx, "ix", data.Query{Partition: raw(`"p"`)}); err != nil || len(p.Items) != 0 {
		t.Fatalf("empty query = %v, %v", p, err)
	}
	for i := range 300 {
		if _, err := svc.Put(ctx, "ix", raw(fmt.Sprintf(`{"pk":"p","sk":%d}`, i)), data.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		// Read your writes: the item just written is in the next query.
		if i%50 == 0 {
			p, err := svc.Query(ctx, "ix", data.Query{Partition: raw(`"p"`), Where: fmt.Sprintf("= %d", i)})
			if err != nil || len(p.Items) != 1 {
				t.Fatalf("query right after put %d: %d items, %v", i, len(p.Items), err)
			}
		}
	}
	if err := svc.Delete(ctx, "ix", raw(`{"pk":"p","sk":7}`), data.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// Other partitions are written concurrently: they must not disturb p.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			svc.Put(ctx, "ix", raw(fmt.Sprintf(`{"pk":"q%d","sk":%d}`, i%7, i)), data.PutOptions{})
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	for _, tc := range []struct {
		name    string
		where   string
		reverse bool
		want    []int
	}{
		{"all", "", false, seq(0, 300, 7)},
		{"reverse", "", true, reversed(seq(0, 300, 7))},
		{"ge", ">= 250", false, seq(250, 300, -1)},
		{"between reverse", "between 5 and 20", true, reversed(seq(5, 21, 7))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			cur := ""
			for range 100 {
				p, err := svc.Query(ctx, "ix", data.Query{Partition: raw(`"p"`), Where: tc.where, Reverse: tc.reverse, Limit: 37, Cursor: cur})
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range p.Items {
					var it struct{ SK int }
					json.Unmarshal(e.Item, &it)
					got = append(got, it.SK)
				}
				if cur = p.Cursor; cur == "" {
					break
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v\nwant %v", got, tc.want)
			}
		})
	}

	t.Run("scan", func(t *testing.T) {
		// Every page continues where the last stopped: keys strictly
		// increase, and partition p is complete.
		var last string
		inP := 0
		cur := ""
		for range 1000 {
			p, err := svc.Scan(ctx, "ix", 50, cur)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range p.Items {
				var it struct {
					PK string
					SK int
				}
				json.Unmarshal(e.Item, &it)
				k := fmt.Sprintf("%s/%08d", it.PK, it.SK)
				if k <= last {
					t.Fatalf("scan: %s after %s", k, last)
				}
				last = k
				if it.PK == "p" {
					inP++
				}
			}
			if cur = p.Cursor; cur == "" {
				break
			}
		}
		if inP != 299 {
			t.Fatalf("scan saw %d items of partition p, want 299", inP)
		}
	})
}

// seq is lo..hi-1 without skip.
func seq(lo, hi, skip int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		if i != skip {
			out = append(out, i)
		}
	}
	return out
}

func reversed(s []int) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}
