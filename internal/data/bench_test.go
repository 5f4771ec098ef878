package data_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/nimbus-run/nimbus/api"
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
