package data

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// TestPurgesOutliveTheirRequests: deletes return before their objects'
// chunks are purged (purges.go), and a Service that stops with purges
// queued does them before it returns, so a clean stop leaves no chunk
// behind. The objects (4 MB) are deleted eight at a time, so their purges,
// done one at a time, queue up.
func TestPurgesOutliveTheirRequests(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t)
	s := New(Config{}, st)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutBucket(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	const objects = 32
	body := bytes.Repeat([]byte("p"), 4<<20)
	for i := range objects {
		if _, err := s.PutObject(ctx, "files", fmt.Sprint("o", i), bytes.NewReader(body), int64(len(body)), PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	subjects := func() int { return len(chunkSubjects(t, h)) }
	var g errgroup.Group
	g.SetLimit(8)
	for i := range objects {
		g.Go(func() error { return s.DeleteObject(ctx, "files", fmt.Sprint("o", i)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	left := subjects()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if n := subjects(); n != 0 {
		t.Fatalf("%d objects' chunks left after a clean stop (%d when the deletes returned)", n, left)
	}
	if left == 0 {
		t.Logf("every purge was done by the time the deletes returned")
	}
}

// BenchmarkLargeObjectWrites: deleting a 64 MB object, and putting one
// over another of the same key, which waited for the old chunks' purge
// before purges were queued (purges.go).
func BenchmarkLargeObjectWrites(b *testing.B) {
	ctx := context.Background()
	s := filesService(b)
	body := bytes.Repeat([]byte("w"), 64<<20)
	put := func(key string) {
		if _, err := s.PutObject(ctx, "files", key, bytes.NewReader(body), int64(len(body)), PutObjectOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("delete", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			put("d")
			b.StartTimer()
			if err := s.DeleteObject(ctx, "files", "d"); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Each replace on an idle node, as a user's occasional overwrite:
	// back to back, the queued purges share the CPU with the next puts.
	b.Run("replace", func(b *testing.B) {
		put("r")
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			b.StopTimer()
			time.Sleep(100 * time.Millisecond)
			b.StartTimer()
			put("r")
		}
	})
}
