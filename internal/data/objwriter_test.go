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
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/store/storetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// filesService starts a data service on a store of its own, with an
// empty bucket "files".
func filesService(tb testing.TB) *Service { return filesServiceWith(tb, Config{}) }

// filesServiceWith is filesService with cfg.
func filesServiceWith(tb testing.TB, cfg Config) *Service {
	tb.Helper()
	s := startService(tb, cfg)
	if _, _, err := s.PutBucket(context.Background(), "files"); err != nil {
		tb.Fatal(err)
	}
	return s
}

// startService starts a data service with cfg on a store of its own,
// stopped at cleanup.
func startService(tb testing.TB, cfg Config) *Service {
	tb.Helper()
	s := New(cfg, storetest.Open(tb))
	if err := s.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Stop(context.Background()) })
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

// BenchmarkGetSmallObject reads objects whole from 8 goroutines: of 1 KB
// (one chunk) and of 600 KB (three chunks, an image, say).
func BenchmarkGetSmallObject(b *testing.B) {
	ctx := context.Background()
	s := filesService(b)
	for _, size := range []int{1 << 10, 600 << 10} {
		body := bytes.Repeat([]byte("x"), size)
		const objects = 100
		for i := range objects {
			if _, err := s.PutObject(ctx, "files", fmt.Sprintf("%d/%d", size, i), bytes.NewReader(body), int64(len(body)), PutObjectOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(fmt.Sprintf("%dKB", size>>10), func(b *testing.B) {
			var next atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					obj, err := s.GetObject(ctx, "files", fmt.Sprintf("%d/%d", size, next.Add(1)%objects), "")
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
		})
	}
}

// BenchmarkGetLargeObject reads a 32 MB object whole, in process: the
// bytes per op allocated (by the server and the client, which share the
// process) show how many times each chunk is copied into a new buffer on
// its way.
func BenchmarkGetLargeObject(b *testing.B) {
	ctx := context.Background()
	s := filesService(b)
	const size = 32 << 20
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	if _, err := s.PutObject(ctx, "files", "large", bytes.NewReader(body), size, PutObjectOptions{}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		obj, err := s.GetObject(ctx, "files", "large", "")
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, obj.Body)
		obj.Body.Close()
		if err != nil || n != size {
			b.Fatalf("read %d bytes, %v", n, err)
		}
	}
}

// BenchmarkDeleteObjects deletes 1,000 objects: in one DeleteObjects call
// (S3's batch delete) and one DeleteObject at a time, as it did before.
func BenchmarkDeleteObjects(b *testing.B) {
	ctx := context.Background()
	s := filesService(b)
	keys := make([]string, 1000)
	objs := make([]DeleteOne, len(keys))
	for i := range keys {
		keys[i] = fmt.Sprintf("del/%d", i)
		objs[i] = DeleteOne{Key: keys[i]}
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
			errs, err := s.DeleteObjects(ctx, "files", objs)
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

// TestConditionalPut: If-None-Match: * stores only where no object is,
// If-Match only over the named ETag; of racing creators exactly one wins,
// and the losers leave no chunks behind.
func TestConditionalPut(t *testing.T) {
	ctx := context.Background()
	s := filesService(t)
	put := func(key, body string, opt PutObjectOptions) (*ObjectInfo, error) {
		return s.PutObject(ctx, "files", key, strings.NewReader(body), int64(len(body)), opt)
	}
	read := func(key string) string {
		t.Helper()
		obj, err := s.GetObject(ctx, "files", key, "")
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Body.Close()
		b, err := io.ReadAll(obj.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	first, err := put("k", "one", PutObjectOptions{IfNoneMatch: "*"})
	if err != nil {
		t.Fatalf("If-None-Match: * on a new key: %v", err)
	}
	if _, err := put("k", "two", PutObjectOptions{IfNoneMatch: "*"}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-None-Match: * over an object: %v, want ErrPreconditionFailed", err)
	}
	if _, err := put("k", "two", PutObjectOptions{IfMatch: `"stale"`}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-Match another ETag: %v, want ErrPreconditionFailed", err)
	}
	if got := read("k"); got != "one" {
		t.Fatalf("after refused puts the object holds %q", got)
	}
	if _, err := put("k", "two", PutObjectOptions{IfMatch: `"` + first.ETag + `"`}); err != nil {
		t.Fatalf("If-Match its ETag: %v", err)
	}
	if got := read("k"); got != "two" {
		t.Fatalf("after If-Match the object holds %q", got)
	}
	if _, err := put("absent", "x", PutObjectOptions{IfMatch: "*"}); !errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-Match on an absent key: %v, want ErrPreconditionFailed", err)
	}
	if err := s.DeleteObject(ctx, "files", "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := put("k", "three", PutObjectOptions{IfNoneMatch: "*"}); err != nil {
		t.Fatalf("If-None-Match: * over a deleted object: %v", err)
	}
	if _, err := put("k", "x", PutObjectOptions{IfNoneMatch: `"abc"`}); err == nil || errors.Is(err, ErrPreconditionFailed) {
		t.Fatalf("If-None-Match with an ETag on a write: %v, want a field error", err)
	}

	// Racing creators of one key, each with a body of several chunks.
	const racers = 8
	var wins atomic.Int32
	var winner atomic.Value
	errs := make(chan error, racers)
	for i := range racers {
		go func() {
			body := strings.Repeat(string(rune('a'+i)), 2*ChunkSize+1)
			_, err := put("lock", body, PutObjectOptions{IfNoneMatch: "*"})
			if err == nil {
				wins.Add(1)
				winner.Store(body)
			}
			if errors.Is(err, ErrPreconditionFailed) {
				err = nil
			}
			errs <- err
		}()
	}
	for range racers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if wins.Load() != 1 {
		t.Fatalf("%d racing creators won, want 1", wins.Load())
	}
	if got := read("lock"); got != winner.Load().(string) {
		t.Fatalf("the object holds %d bytes of %q, not the winner's", len(got), got[:1])
	}
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	// The losers purge their chunks before they return; the replaced
	// objects' are purged a moment later (purges.go).
	testutil.Eventually(t, `the chunks of "k" and "lock" alone`, func() bool {
		info, err := h.stream.Info(ctx, jetstream.WithSubjectFilter("$O."+h.store+".C.>"))
		if err != nil {
			t.Fatal(err)
		}
		return len(info.State.Subjects) == 2
	})
}

// TestFailedPutLeavesNothing: a put that fails part way (a body over the
// limit, shorter than announced, or broken off; a cancelled request; sums
// its caller refuses) returns its error, leaves the key's object as it
// was and purges the chunks it had published.
func TestFailedPutLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := filesServiceWith(t, Config{MaxObjectBytes: 5 * ChunkSize})
	before := bytes.Repeat([]byte("v1"), ChunkSize) // two chunks
	if _, err := s.PutObject(ctx, "files", "k", bytes.NewReader(before), int64(len(before)), PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	chunks := func() uint64 {
		t.Helper()
		info, err := h.stream.Info(ctx, jetstream.WithSubjectFilter("$O."+h.store+".C.>"))
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, c := range info.State.Subjects {
			n += c
		}
		return n
	}
	body := func(n int) io.Reader { return io.LimitReader(neverEnding('x'), int64(n)) }
	broken := errors.New("connection reset")
	refused := errors.New("checksum mismatch")
	cancelled, cancel := context.WithCancel(ctx)
	for _, tc := range []struct {
		name string
		ctx  context.Context
		r    io.Reader
		size int64
		opt  PutObjectOptions
		want func(error) bool
	}{
		{"over the limit, size unknown", ctx, body(6 * ChunkSize), -1, PutObjectOptions{},
			func(err error) bool { return errors.Is(err, ErrTooLarge) }},
		{"shorter than announced", ctx, body(3*ChunkSize + 5), 4 * ChunkSize, PutObjectOptions{},
			func(err error) bool { return errors.Is(err, function.ErrInvalid) }},
		{"broken off", ctx, io.MultiReader(body(3*ChunkSize+5), failing{broken}), -1, PutObjectOptions{},
			func(err error) bool { return errors.Is(err, broken) }},
		// What net/http's chunked reader says of a client gone mid-body:
		// taken for the body's end, it stored the part received.
		{"cut short", ctx, io.MultiReader(body(3*ChunkSize+5), failing{io.ErrUnexpectedEOF}), -1, PutObjectOptions{},
			func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"cut short at a chunk's end", ctx, io.MultiReader(body(2*ChunkSize), failing{io.ErrUnexpectedEOF}), -1, PutObjectOptions{},
			func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"cancelled", cancelled, io.MultiReader(body(2*ChunkSize), cancelOnRead(cancel), body(2*ChunkSize)), -1, PutObjectOptions{},
			func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"sums refused", ctx, body(3*ChunkSize + 5), -1, PutObjectOptions{MD5ETag: true, Expect: func(Sums) error { return refused }},
			func(err error) bool { return errors.Is(err, refused) }},
	} {
		_, err := s.PutObject(tc.ctx, "files", "k", tc.r, tc.size, tc.opt)
		if !tc.want(err) {
			t.Errorf("%s: %v", tc.name, err)
		}
		obj, err := s.GetObject(ctx, "files", "k", "")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil || !bytes.Equal(got, before) {
			t.Fatalf("%s: the key holds %d bytes (%v), not the object before", tc.name, len(got), err)
		}
		if n := chunks(); n != 2 {
			t.Errorf("%s: the bucket holds %d chunks, want the 2 of the object before", tc.name, n)
		}
		// The bucket's last message is now a purged chunk, which the
		// name index does not follow: listings waited for it for 5 s
		// (syncTimeout), then listed the slow way, until the next write.
		start := time.Now()
		l, err := s.ListObjects(ctx, "files", ListOptions{})
		if err != nil || len(l.Objects) != 1 || l.Objects[0].Key != "k" {
			t.Fatalf("%s: listing %+v, %v", tc.name, l, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("%s: the listing after the failed put took %v", tc.name, took)
		}
	}
}

// neverEnding is an endless reader of one byte.
type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// failing is a reader that fails with err.
type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }

// cancelOnRead is a reader that cancels a context when read, and reads
// nothing.
type cancelOnRead context.CancelFunc

func (c cancelOnRead) Read([]byte) (int, error) { c(); return 0, io.EOF }

// gatedReader reads size bytes of x, telling started when first read, and
// blocks after its first chunk until release is closed.
type gatedReader struct {
	left    int
	first   bool
	started chan<- struct{}
	release <-chan struct{}
}

func (g *gatedReader) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if !g.first {
		g.first = true
		g.started <- struct{}{}
	} else if g.left < 2*ChunkSize {
		<-g.release
	}
	n := min(len(p), g.left)
	for i := range p[:n] {
		p[i] = 'x'
	}
	g.left -= n
	return n, nil
}

// TestUploadsWaitTheirTurn: no more than MaxUploads uploads of more than a
// chunk run at once; the others wait, their bodies unread, and run when
// one ends. Each running upload holds some 10 MB: 32 concurrent 30 MB
// puts grew a node's resident memory by 330 MB, with no bound.
func TestUploadsWaitTheirTurn(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	s := filesServiceWith(t, Config{MaxUploads: 2, Metrics: reg})
	gauge := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	const puts, size = 4, 3 * ChunkSize
	started := make(chan struct{}, puts)
	release := make(chan struct{})
	errs := make(chan error, puts)
	for i := range puts {
		go func() {
			r := &gatedReader{left: size, started: started, release: release}
			_, err := s.PutObject(ctx, "files", fmt.Sprint("k", i), r, size, PutObjectOptions{})
			errs <- err
		}()
	}
	for range 2 {
		<-started
	}
	select {
	case <-started:
		t.Fatal("a third upload read its body while two ran")
	case <-time.After(300 * time.Millisecond):
	}
	// Operators see it.
	if r, w := gauge("nimbus_bucket_uploads_running"), gauge("nimbus_bucket_uploads_waiting"); r != 2 || w != 2 {
		t.Errorf("uploads running %v, waiting %v; want 2 and 2", r, w)
	}
	// A one-chunk put does not wait.
	if _, err := s.PutObject(ctx, "files", "small", strings.NewReader("small"), 5, PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	close(release)
	for range puts {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	l, err := s.ListObjects(ctx, "files", ListOptions{})
	if err != nil || len(l.Objects) != puts+1 {
		t.Fatalf("listing: %+v, %v", l, err)
	}
}

// BenchmarkRangeAtEnd reads 2 MiB ranges (what the SDK's ObjectReader
// asks for) at the start and at the end of a 512 MiB object: a range is
// found by its chunk, which takes a seek.
func BenchmarkRangeAtEnd(b *testing.B) {
	ctx := context.Background()
	s := filesService(b)
	const size = 512 << 20
	if _, err := s.PutObject(ctx, "files", "large", io.LimitReader(zeros{}, size), size, PutObjectOptions{}); err != nil {
		b.Fatal(err)
	}
	for _, at := range []struct {
		name string
		off  int64
	}{{"start", 4 << 20}, {"end", size - 4<<20}} {
		b.Run(at.name, func(b *testing.B) {
			rng := fmt.Sprintf("bytes=%d-%d", at.off, at.off+2<<20-1)
			for b.Loop() {
				obj, err := s.GetObject(ctx, "files", "large", rng)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.Copy(io.Discard, obj.Body)
				obj.Body.Close()
				if err != nil || n != 2<<20 {
					b.Fatalf("read %d bytes, %v", n, err)
				}
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
