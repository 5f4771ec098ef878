package data

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// filesService starts a data service on a store of its own, with an
// empty bucket "files".
func filesService(tb testing.TB) *Service {
	tb.Helper()
	ctx := context.Background()
	s := New(Config{}, storetest.Open(tb))
	if err := s.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Stop(context.Background()) })
	if _, _, err := s.PutBucket(ctx, "files"); err != nil {
		tb.Fatal(err)
	}
	return s
}

// BenchmarkPutSmallObject puts 1 KB objects from 8 goroutines: what a
// put costs beyond the bytes (the info lookup, the chunk buffers, the
// acknowledgements). Allocated bytes per op show whether the chunk
// buffers are recycled.
func BenchmarkPutSmallObject(b *testing.B) {
	ctx := context.Background()
	s := filesService(b)
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

// BenchmarkGetSmallObject reads 1 KB objects whole from 8 goroutines.
func BenchmarkGetSmallObject(b *testing.B) {
	ctx := context.Background()
	s := filesService(b)
	body := bytes.Repeat([]byte("x"), 1024)
	const objects = 100
	for i := range objects {
		if _, err := s.PutObject(ctx, "files", fmt.Sprintf("small/%d", i), bytes.NewReader(body), int64(len(body)), PutObjectOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			obj, err := s.GetObject(ctx, "files", fmt.Sprintf("small/%d", next.Add(1)%objects), "")
			if err != nil {
				b.Error(err)
				return
			}
			got, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil || !bytes.Equal(got, body) {
				b.Errorf("read %d bytes, %v", len(got), err)
				return
			}
		}
	})
}
