package data

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

	chunks := func(h *bucketHandle) map[string]uint64 {
		t.Helper()
		info, err := h.stream.Info(ctx, jetstream.WithSubjectFilter("$O."+h.store+".C.>"))
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Subjects
	}
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
	if n := second.sweepOrphans(ctx); n != 0 {
		t.Fatalf("the sweep purged %d, want none", n)
	}
	if c := chunks(h2); len(c) != many+2 {
		t.Fatalf("%d chunk subjects, want the objects' and the put in progress's, %d", len(c), many+2)
	}
}
