package data_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/data"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
)

// BenchmarkTableHTTP times a put and a get through the HTTP API and the
// Go client, from 16 goroutines (go run ./bench/data is the figure the
// README quotes; this one is for comparing changes: allocations per op
// are steadier than time on a shared machine).
func BenchmarkTableHTTP(b *testing.B) {
	_, c := startNode(b)
	c.HTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	ctx := context.Background()
	if _, err := c.PutTable(ctx, &api.Table{Name: "bench", Key: "pk", Sort: "sk"}); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	item := func(i int64) []byte {
		return fmt.Appendf(nil, `{"pk":"p%d","sk":%d,"name":"item %d","tags":["a","b"],"n":%d}`, i%1000, i, i, i)
	}
	b.Run("put", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := c.PutItem(ctx, "bench", &api.PutItemRequest{Item: item(next.Add(1))}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	stored := next.Load()
	b.Run("get", func(b *testing.B) {
		b.SetParallelism(8)
		var i atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := i.Add(1)%stored + 1
				if _, err := c.GetItem(ctx, "bench", fmt.Appendf(nil, `{"pk":"p%d","sk":%d}`, k%1000, k)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkChangesPage reads a page of ten changes of a table from a
// revision, as a follower does (the replay primitive behind the changes
// API), on a node of its own and on a node of a three-server cluster,
// where every consumer a read makes and deletes is a change of the
// cluster's metadata:
// go test -run '^$' -bench ChangesPage -benchtime 300x ./internal/data
func BenchmarkChangesPage(b *testing.B) {
	for _, where := range []string{"node", "cluster"} {
		b.Run(where, func(b *testing.B) {
			cfg := node.Config{Data: data.Config{TTLInterval: time.Hour}}
			if where == "cluster" {
				cfg.NATSURL = nodetest.NATSCluster(b, 3)[0].ClientURL()
			}
			n := nodetest.Start(b, cfg)
			ctx := context.Background()
			if _, _, err := n.Data.PutTable(ctx, data.TableDef{Name: "orders", Key: "id"}); err != nil {
				b.Fatal(err)
			}
			var first uint64
			for i := range 20 {
				rev, err := n.Data.Put(ctx, "orders", json.RawMessage(fmt.Sprintf(`{"id":"k%d"}`, i)), data.PutOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					first = rev
				}
			}
			for b.Loop() {
				cs, err := n.Data.Changes(ctx, "orders", data.Start{Revision: first + 5}, 10, 0)
				if err != nil || len(cs) != 10 {
					b.Fatalf("%d changes, %v", len(cs), err)
				}
			}
		})
	}
}
