package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"

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

// BenchmarkDeleteObjects deletes 1,000 objects: in one DeleteObjects call
// (S3's batch delete) and one DeleteObject at a time, as it did before.
func BenchmarkDeleteObjects(b *testing.B) {
	ctx := context.Background()
	s := filesService(b)
	keys := make([]string, 1000)
	for i := range keys {
		keys[i] = fmt.Sprintf("del/%d", i)
	}
	fill := func() {
		b.StopTimer()
		defer b.StartTimer()
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(32)
		for _, k := range keys {
			g.Go(func() error {
				_, err := s.PutObject(gctx, "files", k, strings.NewReader(k), int64(len(k)), PutObjectOptions{})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("batch", func(b *testing.B) {
		for b.Loop() {
			fill()
			errs, err := s.DeleteObjects(ctx, "files", keys)
			if err != nil || len(errs) != len(keys) || errors.Join(errs...) != nil {
				b.Fatal(err, errors.Join(errs...))
			}
		}
	})
	b.Run("one-by-one", func(b *testing.B) {
		for b.Loop() {
			fill()
			for _, k := range keys {
				if err := s.DeleteObject(ctx, "files", k); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	if l, err := s.ListObjects(ctx, "files", ListOptions{Prefix: "del/"}); err != nil || len(l.Objects) != 0 {
		b.Fatalf("left after the deletes: %d, %v", len(l.Objects), err)
	}
}
