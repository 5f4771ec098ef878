package data

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// twoNodes starts two data services on one NATS server, as two nodes of a
// cluster share one JetStream.
func twoNodes(t testing.TB) (*Service, *Service) {
	t.Helper()
	open := storetest.Shared(t)
	svc := func() *Service {
		s := New(Config{}, open())
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop(context.Background()) })
		return s
	}
	return svc(), svc()
}

// TestListIndexMatchesFullListing: pages served by the name index hold
// exactly what reading every object's info gives (keys, sizes, ETags,
// content types, metadata, times) (listAll, the listing
// before the index), for prefixes, delimiters, page sizes and cursors,
// with objects deleted and replaced, and written through another node
// after the index started.
func TestListIndexMatchesFullListing(t *testing.T) {
	ctx := context.Background()
	lister, writer := twoNodes(t)
	if _, _, err := writer.PutBucket(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	parts := []string{"a", "b", "a-b", "é", "z", "a/"}
	var keys []string
	for len(keys) < 120 {
		var k []string
		for range 1 + rng.IntN(3) {
			k = append(k, parts[rng.IntN(len(parts))])
		}
		key := strings.Join(k, "/")
		if !slices.Contains(keys, key) {
			keys = append(keys, key)
		}
	}
	put := func(k string) {
		opt := PutObjectOptions{MD5ETag: len(k)%2 == 0}
		if len(k)%3 == 0 {
			opt.ContentType, opt.Metadata = "text/plain", map[string]string{"from": k}
		}
		if _, err := writer.PutObject(ctx, "files", k, strings.NewReader(k), int64(len(k)), opt); err != nil {
			t.Fatal(err)
		}
	}
	del := func(k string) {
		if err := writer.DeleteObject(ctx, "files", k); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range keys {
		put(k)
	}
	for _, k := range keys[:20] {
		del(k)
	}
	for _, k := range keys[20:30] {
		put(k) // replaced
	}
	h, err := lister.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	compare := func(round string) {
		t.Helper()
		pages := 0
		for _, prefix := range []string{"", "a", "a/", "a-b/", "é/z", "zz"} {
			for _, delim := range []string{"", "/", "-", "b/"} {
				for _, limit := range []int{1, 7, 1000} {
					opt := ListOptions{Prefix: prefix, Delimiter: delim, Limit: limit}
					for {
						got, err := lister.ListObjects(ctx, "files", opt)
						if err != nil {
							t.Fatal(err)
						}
						want, err := listAll(ctx, h, opt)
						if err != nil {
							t.Fatal(err)
						}
						if g, w := summary(got), summary(want); g != w {
							t.Fatalf("%s: list %+v:\n got %s\nwant %s", round, opt, g, w)
						}
						pages++
						if !got.Truncated {
							break
						}
						opt.After = got.Next
					}
				}
			}
		}
		// The pages came from the index, caught up at once (not
		// from the fall-back after syncTimeout).
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if h.indexed(sctx) == nil {
			t.Fatalf("%s: %d pages listed without the index", round, pages)
		}
	}
	compare("first listing")
	// Written through the other node after the index started: the next
	// listing sees it.
	for _, k := range keys[30:50] {
		del(k)
	}
	put("a/new")
	put("é/z/new")
	compare("after writes through another node")
}

// summary renders a page for comparison.
func summary(l *ObjectList) string {
	var b strings.Builder
	for _, o := range l.Objects {
		fmt.Fprintf(&b, "%s(%d %s %s %v %s) ", o.Key, o.Size, o.ETag, o.ContentType, o.Metadata, o.Modified.Format(time.RFC3339Nano))
	}
	fmt.Fprintf(&b, "prefixes %q truncated %v next %q", l.CommonPrefixes, l.Truncated, l.Next)
	return b.String()
}

// BenchmarkListObjects lists a page of 100 objects from the middle of a
// bucket of 10,000: through the name index (what ListObjects does, once
// the first listing has built it) and by reading every object's info
// (listAll, the listing before the index).
func BenchmarkListObjects(b *testing.B) {
	ctx := context.Background()
	s, _ := twoNodes(b)
	if _, _, err := s.PutBucket(ctx, "files"); err != nil {
		b.Fatal(err)
	}
	const n = 10_000
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			k := fmt.Sprintf("img/%05d.png", i)
			_, err := s.PutObject(gctx, "files", k, strings.NewReader(k), int64(len(k)), PutObjectOptions{})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	h, err := s.bucket(ctx, "files")
	if err != nil {
		b.Fatal(err)
	}
	opt := ListOptions{Prefix: "img/", After: "img/05000.png", Limit: 100}
	// The first listing builds the index: time the pages after it.
	if _, err := s.ListObjects(ctx, "files", opt); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		list func() (*ObjectList, error)
	}{
		{"index", func() (*ObjectList, error) { return s.ListObjects(ctx, "files", opt) }},
		{"full", func() (*ObjectList, error) { return listAll(ctx, h, opt) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				l, err := c.list()
				if err != nil {
					b.Fatal(err)
				}
				if len(l.Objects) != opt.Limit || l.Objects[0].Key != "img/05001.png" {
					b.Fatalf("page of %d objects from %q", len(l.Objects), l.Objects[0].Key)
				}
			}
		})
	}
}

// TestIndexStartsAgainAfterFailure: a bucket whose name index stopped
// following its stream is listed correctly the slow way, and gets a new
// index at the next listing once indexRetry has passed (before, one
// failure meant the slow way until the node restarted).
func TestIndexStartsAgainAfterFailure(t *testing.T) {
	ctx := context.Background()
	s := filesService(t)
	put := func(k string) { putKey(t, s, k) }
	list := func() string { return strings.Join(listKeys(t, s), " ") }
	put("a")
	if got := list(); got != "a" {
		t.Fatalf("listed %q", got)
	}
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	first := h.idx.cur.Load()
	first.stop() // as when its consumer fails for good

	put("b")
	if got := list(); got != "a b" {
		t.Fatalf("listed %q with the index stopped", got)
	}
	if h.idx.cur.Load() != first {
		t.Fatal("the index was started again before indexRetry passed")
	}

	defer func(d time.Duration) { indexRetry = d }(indexRetry)
	indexRetry = 0
	put("c")
	if got := list(); got != "a b c" {
		t.Fatalf("listed %q after the index restarted", got)
	}
	if x := h.idx.cur.Load(); x == first || x == nil || !x.usable() || h.indexed(ctx) != x {
		t.Fatal("no new index after indexRetry")
	}
}

// TestIdleIndexIsDropped: a bucket not listed for indexIdle loses its name
// index (its memory and its consumer); the next listing builds a new one
// and misses nothing written meanwhile.
func TestIdleIndexIsDropped(t *testing.T) {
	ctx := context.Background()
	s := filesService(t)
	put := func(k string) { putKey(t, s, k) }
	count := func() int { return len(listKeys(t, s)) }
	put("a")
	if n := count(); n != 1 {
		t.Fatalf("listed %d", n)
	}
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	checkIdleDrop(t, s, &h.idx, h.stream, func() { put("b") }, count, 2)
}

// checkIdleDrop checks the life of index l of stream, used a moment ago:
// kept by dropIdleIndexes then, dropped with its consumer once idle, and
// built anew after write, by then holding want items (count).
func checkIdleDrop[T any, P interface {
	*T
	usable() bool
	stop()
}](t *testing.T, s *Service, l *lazyIndex[T, P], stream jetstream.Stream, write func(), count func() int, want int) {
	t.Helper()
	first := l.cur.Load()
	if first == nil {
		t.Fatal("no index after a use")
	}
	s.dropIdleIndexes()
	if l.cur.Load() != first {
		t.Fatal("an index used a moment ago was dropped")
	}
	defer func(d time.Duration) { indexIdle = d }(indexIdle)
	indexIdle = 0
	s.dropIdleIndexes()
	if l.cur.Load() != nil {
		t.Fatal("the idle index is still there")
	}
	if n := settledConsumers(t, stream, 0); n != 0 {
		t.Fatalf("the stream holds %d consumers after the drop, want 0", n)
	}
	write()
	if n := count(); n != want {
		t.Fatalf("%d items after the drop, want %d", n, want)
	}
	if x := l.cur.Load(); x == nil || x == first {
		t.Fatal("no new index after the drop")
	}
}

// putKey stores files/k, its own name for bytes.
func putKey(t *testing.T, s *Service, k string) {
	t.Helper()
	if _, err := s.PutObject(context.Background(), "files", k, strings.NewReader(k), int64(len(k)), PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

// listKeys lists the keys of the first page of files.
func listKeys(t *testing.T, s *Service) []string {
	t.Helper()
	l, err := s.ListObjects(context.Background(), "files", ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range l.Objects {
		keys = append(keys, o.Key)
	}
	return keys
}

// BenchmarkListParts lists one upload's 50 parts among 5,000 parts of 100
// uploads in progress, through the uploads store's name index and by
// reading every part's info (the listing before the index).
func BenchmarkListParts(b *testing.B) {
	ctx := context.Background()
	s, _ := twoNodes(b)
	if _, _, err := s.PutBucket(ctx, "files"); err != nil {
		b.Fatal(err)
	}
	var last *Upload
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for range 100 {
		u, err := s.CreateUpload(ctx, "files", "big.bin", PutObjectOptions{}, "")
		if err != nil {
			b.Fatal(err)
		}
		for n := 1; n <= 50; n++ {
			g.Go(func() error {
				_, err := s.UploadPart(gctx, "files", "big.bin", u.ID, n, strings.NewReader("part"), 4, PartOptions{})
				return err
			})
		}
		last = u
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		list func() (int, error)
	}{
		{"index", func() (int, error) { ps, err := s.Parts(ctx, "files", "big.bin", last.ID); return len(ps), err }},
		{"full", func() (int, error) {
			l, err := listAll(ctx, s.partsH, ListOptions{Prefix: last.ID + "/", Limit: MaxParts + 1})
			if err != nil {
				return 0, err
			}
			return len(l.Objects), nil
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if n, err := c.list(); err != nil || n != 50 {
					b.Fatalf("%d parts, %v; want 50", n, err)
				}
			}
		})
	}
}
