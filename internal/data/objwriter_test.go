package data

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// BenchmarkPutSmallObject puts 1 KB objects from 8 goroutines: what a
// put costs beyond the bytes (the info lookup, the chunk buffers, the
// acknowledgements). Allocated bytes per op show whether the chunk
// buffers are recycled.
func BenchmarkPutSmallObject(b *testing.B) {
	ctx := context.Background()
	s := New(Config{}, storetest.Open(b))
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Stop(context.Background()) })
	if _, _, err := s.PutBucket(ctx, "files"); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 1024)
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := fmt.Sprintf("small/%d", next.Add(1))
			if _, err := s.PutObject(ctx, "files", k, bytes.NewReader(body), int64(len(body)), PutObjectOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
