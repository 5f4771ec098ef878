package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// TestOrphanedChunksSwept: the chunks of a put whose node died before it
// published the info that names them (kill -9 mid-upload) are purged
// when a sole writer starts again; the chunks of stored objects, and of a
// put of the new run still in progress, are not. Before, they stayed in
// the bucket's stream for good, invisible and counted against its size.
func TestOrphanedChunksSwept(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t)
	first := New(Config{SoleWriter: true}, st)
	if err := first.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, _, err := first.PutBucket(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	kept := bytes.Repeat([]byte("k"), ChunkSize+10) // two chunks
	if _, err := first.PutObject(ctx, "files", "kept", bytes.NewReader(kept), int64(len(kept)), PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	// More objects than one fetch of infos holds: the sweep must read
	// them all, or it would purge live objects' chunks.
	const many = 1500
	for i := range many {
		if _, err := first.PutObject(ctx, "files", fmt.Sprint("small/", i), strings.NewReader("small"), 5, PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h, err := first.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	// The dead put: three chunks, and no info.
	dead := "$O." + h.store + ".C." + newNUID()
	for range 3 {
		if _, err := st.JS.Publish(ctx, dead, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	first.Stop(ctx)

	chunks := func(h *bucketHandle) map[string]uint64 { return chunkSubjects(t, h) }
	second := New(Config{SoleWriter: true}, st)
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Stop(context.Background()) })
	h2, err := second.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	// Until the start's sweep is over (it stops recording this run's puts).
	recording := func() bool {
		second.thisRun.mu.Lock()
		defer second.thisRun.mu.Unlock()
		return second.thisRun.ids != nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for recording() {
		if time.Now().After(deadline) {
			t.Fatal("the sweep at start has not ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if chunks(h2)[dead] != 0 {
		t.Fatalf("the dead put's chunks are still there: %v", chunks(h2))
	}
	if c := chunks(h2); len(c) != many+1 {
		t.Fatalf("%d chunk subjects after the sweep, want the %d of the objects kept", len(c), many+1)
	}
	obj, err := second.GetObject(ctx, "files", "kept", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil || !bytes.Equal(got, kept) {
		t.Fatalf("the kept object after the sweep: %d bytes, %v", len(got), err)
	}

	// A put of this run, its chunks published and its info not yet: a
	// sweep leaves it.
	second.thisRun.start()
	defer second.thisRun.stop()
	running := newNUID()
	h2.thisRun.note(running)
	if _, err := st.JS.Publish(ctx, "$O."+h2.store+".C."+running, []byte("in progress")); err != nil {
		t.Fatal(err)
	}
	if n := second.sweepOrphans(ctx, 0); n != 0 {
		t.Fatalf("the sweep purged %d, want none", n)
	}
	if c := chunks(h2); len(c) != many+2 {
		t.Fatalf("%d chunk subjects, want the objects' and the put in progress's, %d", len(c), many+2)
	}
}

// TestOrphansSweptByAge: on nodes that share their NATS cluster (no sole
// writer), the chunks no info names are purged once their newest chunk
// is OrphanAge old, and not before: those of a put still publishing stay,
// whichever node runs it. Before, such nodes kept every dead put's chunks
// for good.
func TestOrphansSweptByAge(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t)
	const age = 1200 * time.Millisecond // slack for a loaded machine: live publishes every age/6
	reg := prometheus.NewRegistry()
	s := New(Config{OrphanAge: age, TTLInterval: age / 6, Metrics: reg}, st)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	if _, _, err := s.PutBucket(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	kept := bytes.Repeat([]byte("k"), ChunkSize+10)
	if _, err := s.PutObject(ctx, "files", "kept", bytes.NewReader(kept), int64(len(kept)), PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	chunks := func() map[string]uint64 { return chunkSubjects(t, h) }
	publish := func(subj string) {
		t.Helper()
		if _, err := st.JS.Publish(ctx, subj, make([]byte, 1000)); err != nil {
			t.Fatal(err)
		}
	}
	dead := "$O." + h.store + ".C." + newNUID()
	live := "$O." + h.store + ".C." + newNUID() // another node's put, publishing
	died := time.Now()                          // before the stream stamps the dead chunks
	for range 3 {
		publish(dead)
	}
	publish(live)
	// The sweeps run every age/2 (the upkeep ticks every age/6): the dead
	// put goes after one age, the live one stays while it publishes a
	// chunk every age/6.
	for chunks()[dead] != 0 {
		if time.Since(died) > 20*age {
			t.Fatalf("the dead put's chunks are still there after %v", time.Since(died))
		}
		time.Sleep(age / 6)
		publish(live)
	}
	if d := time.Since(died); d < age {
		t.Fatalf("the dead put's chunks were purged after %v, before they were %v old", d, age)
	}
	for range 6 {
		time.Sleep(age / 6)
		publish(live)
	}
	if c := chunks(); c[live] == 0 || len(c) != 2 {
		t.Fatalf("chunk subjects %v: want the kept object's and the live put's", c)
	}
	// The live put dies in turn.
	stopped := time.Now()
	for chunks()[live] != 0 {
		if time.Since(stopped) > 20*age {
			t.Fatal("the second dead put's chunks are still there")
		}
		time.Sleep(age / 6)
	}
	obj, err := s.GetObject(ctx, "files", "kept", "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	if err != nil || !bytes.Equal(got, kept) {
		t.Fatalf("the kept object after the sweeps: %d bytes, %v", len(got), err)
	}
	// Operators see what the sweeps purged.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	purged := -1.0
	for _, mf := range mfs {
		if mf.GetName() == "nimbus_bucket_orphans_purged_total" {
			purged = mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if purged != 2 {
		t.Errorf("nimbus_bucket_orphans_purged_total is %v, want 2 (-1: not served)", purged)
	}
}

// TestPutsDoNotOutwaitTheSweep: a put that would leave its published
// chunks alone for OrphanAge/2 (waiting for its turn to run, or for its
// body) fails and purges them, instead of naming chunks that a sweep may
// have purged meanwhile (a broken object).
func TestPutsDoNotOutwaitTheSweep(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t)
	const age = 600 * time.Millisecond
	s := New(Config{OrphanAge: age, MaxUploads: 1}, st)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	if _, _, err := s.PutBucket(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	// A: two chunks, then nothing until released; it holds the one slot.
	release := make(chan struct{})
	slow := io.MultiReader(bytes.NewReader(make([]byte, 2*ChunkSize)), readerFunc(func(p []byte) (int, error) {
		<-release
		return 0, io.EOF
	}), strings.NewReader("end"))
	aErr := make(chan error, 1)
	go func() {
		_, err := s.PutObject(ctx, "files", "a", slow, -1, PutObjectOptions{})
		aErr <- err
	}()
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	chunks := func() map[string]uint64 { return chunkSubjects(t, h) }
	for deadline := time.Now().Add(10 * time.Second); len(chunks()) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("put a published nothing")
		}
	}
	// B: of unknown size, it publishes its first chunk and waits its turn.
	start := time.Now()
	bErr := make(chan error, 1)
	go func() {
		_, err := s.PutObject(ctx, "files", "b", bytes.NewReader(make([]byte, 3*ChunkSize)), -1, PutObjectOptions{})
		bErr <- err
	}()
	select {
	case err = <-bErr:
	case <-time.After(20 * age):
		close(release)
		t.Fatalf("put b still waits its turn after %v", 20*age)
	}
	if !errors.Is(err, ErrBusy) || !errors.Is(err, function.ErrUnavailable) {
		t.Fatalf("put b: %v, want ErrBusy", err)
	}
	if d := time.Since(start); d < age/2 {
		t.Fatalf("put b failed after %v, before it had waited %v", d, age/2)
	}
	time.Sleep(age - time.Since(start)) // a's body silent for longer than age/2
	close(release)
	if err := <-aErr; err == nil || !strings.Contains(err.Error(), "since its last chunk") {
		t.Fatalf("put a, its body silent for %v: %v", time.Since(start), err)
	}
	if c := chunks(); len(c) != 0 {
		t.Fatalf("chunks left by the failed puts: %v", c)
	}
	for _, key := range []string{"a", "b"} {
		if _, err := s.HeadObject(ctx, "files", key); !errors.Is(err, ErrNoSuchKey) {
			t.Fatalf("head %s: %v, want no such key", key, err)
		}
	}
}

type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// chunkSubjects returns the chunk subjects of h's stream and their
// message counts.
func chunkSubjects(tb testing.TB, h *bucketHandle) map[string]uint64 {
	tb.Helper()
	info, err := h.stream.Info(context.Background(), jetstream.WithSubjectFilter("$O."+h.store+".C.>"))
	if err != nil {
		tb.Fatal(err)
	}
	return info.State.Subjects
}
