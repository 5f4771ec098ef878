package data

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// stalled is a consumer that delivers nothing: every wait for a chunk
// ends as if stallCheck had passed.
type stalled struct{ stops int }

func (s *stalled) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	return nil, context.DeadlineExceeded
}
func (s *stalled) Stop()  { s.stops++ }
func (s *stalled) Drain() { s.stops++ }

// putBlob stores an object of size bytes as "blob" in a bucket of its own
// service, and returns the service, the bucket, the object and its bytes.
func putBlob(ctx context.Context, t *testing.T, size int) (*Service, *bucketHandle, *ObjectInfo, []byte) {
	t.Helper()
	s := filesService(t)
	want := make([]byte, size)
	rand.Read(want)
	info, err := s.PutObject(ctx, "files", "blob", bytes.NewReader(want), int64(len(want)), PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	return s, h, info, want
}

// readPastFetch opens a read of an object of chunks chunks and reads the
// chunks of its first fetch and one more, which the consumer's pulls
// bring: the read, the bytes read and all the object's.
func readPastFetch(ctx context.Context, t *testing.T, chunks int) (*chunkStream, []byte, []byte) {
	t.Helper()
	_, h, info, want := putBlob(ctx, t, (chunks-1)*ChunkSize+100) // the last chunk short
	body, err := h.open(ctx, info, 0, info.Size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { body.Close() })
	r := body.(*chunkStream)
	got := make([]byte, (readAhead+1)*ChunkSize)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	if r.it == nil {
		t.Fatal("the read took no chunk from the consumer's pulls")
	}
	return r, got, want
}

// TestReaderResumesAfterStall: a read whose consumer stops delivering (as
// an ordered consumer did on a replicated bucket while its replicas
// settled) starts a new consumer after the last chunk it read, after
// stallRestart checks that find the object unchanged, and returns every
// byte.
func TestReaderResumesAfterStall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, got, want := readPastFetch(ctx, t, readAhead+2)
	r.it.Stop()
	stall := &stalled{}
	r.it = stall
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read after the stall: %v", err)
	}
	if got = append(got, rest...); !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}
	if stall.stops != 1 {
		t.Fatalf("the stalled consumer was stopped %d times, want once", stall.stops)
	}
}

// dropping loses the first chunk its consumer delivers, as a connection
// lost mid-pull would.
type dropping struct {
	jetstream.MessagesContext
	dropped bool
}

func (d *dropping) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	if !d.dropped {
		d.dropped = true
		if _, err := d.MessagesContext.Next(opts...); err != nil {
			return nil, err
		}
	}
	return d.MessagesContext.Next(opts...)
}

// TestReaderResumesAfterLoss: a read whose consumer loses a chunk on its
// way (store.OnceReader.InOrder), or is itself lost (deleted on the
// server: a reader idle for longer than store.ReadConsumerIdle, a server
// restarted), reads on from after the last chunk on a new consumer, and
// returns every byte, in order.
func TestReaderResumesAfterLoss(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, lose := range []string{"a chunk", "the consumer"} {
		t.Run(lose, func(t *testing.T) {
			// More chunks to come than the consumer pulls ahead.
			r, got, want := readPastFetch(ctx, t, 4*readAhead)
			if lose == "a chunk" {
				r.it = &dropping{MessagesContext: r.it}
			} else if err := r.h.stream.DeleteConsumer(ctx, r.cons.CachedInfo().Name); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			rest, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("read after losing %s: %v", lose, err)
			}
			if got = append(got, rest...); !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
			}
			// A lost consumer is noticed at the first stall check.
			if took := time.Since(start); took > 2*stallCheck {
				t.Errorf("the read took %v to resume", took)
			}
		})
	}
}

// TestReaderCountsChunks: a read fails, before it returns a byte of the
// chunks that follow, when the stream holds fewer chunks than the object
// has (one lost), instead of returning shifted bytes or waiting for a
// chunk that cannot come.
func TestReaderCountsChunks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, h, info, want := putBlob(ctx, t, 3*ChunkSize+100) // four chunks, the last one short
	if info.chunkSeqs == "" {
		t.Fatal("the writer kept no chunk sequences")
	}
	// An object another NATS client wrote keeps none: its range reads
	// are positioned by scanning the chunks.
	scanned := *info
	scanned.chunkSeqs = ""
	readOf := func(info *ObjectInfo, start, length int64) ([]byte, error) {
		body, err := h.open(ctx, info, start, length)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		return io.ReadAll(body)
	}
	read := func(start, length int64) ([]byte, error) { return readOf(info, start, length) }
	// Intact, whole and from the third chunk.
	if got, err := read(0, info.Size); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("whole read: %d bytes, %v", len(got), err)
	}
	if got, err := read(2*ChunkSize+5, 10); err != nil || !bytes.Equal(got, want[2*ChunkSize+5:2*ChunkSize+15]) {
		t.Fatalf("range read: %d bytes, %v", len(got), err)
	}

	// Lose the second chunk.
	last, err := h.stream.GetLastMsgForSubject(ctx, "$O."+h.store+".C."+info.nuid)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.stream.DeleteMsg(ctx, last.Sequence-2); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	got, err := read(0, info.Size)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "3 of the object's 4 chunks") {
		t.Fatalf("whole read of an object missing a chunk: %d bytes, %v", len(got), err)
	}
	if len(got) != 0 {
		t.Fatalf("the failed read returned %d bytes", len(got))
	}
	if _, err := read(5, ChunkSize+10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("range read across the lost chunk: %v", err)
	}
	if _, err := readOf(&scanned, 2*ChunkSize+5, 10); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("range read after the lost chunk, positioned by a scan: %v", err)
	}
	// Positioned by its sequence, the third chunk is found where it is:
	// its bytes are intact.
	if got, err := read(2*ChunkSize+5, 10); err != nil || !bytes.Equal(got, want[2*ChunkSize+5:2*ChunkSize+15]) {
		t.Fatalf("range read after the lost chunk, positioned by its sequence: %d bytes, %v", len(got), err)
	}
	if d := time.Since(start); d >= stallCheck {
		t.Fatalf("the reads took %v to fail: they waited for the chunk", d)
	}
}

// TestReaderObjectReplaced: a read of an object replaced after its first
// chunks were read fails as cut short, and what it returned is a prefix of
// the old bytes: it never mixes the two objects' chunks.
func TestReaderObjectReplaced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, h, info, want := putBlob(ctx, t, 12*ChunkSize)
	body, err := h.open(ctx, info, 0, info.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	got := make([]byte, ChunkSize)
	if _, err := io.ReadFull(body, got); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{7}, len(want))
	if _, err := s.PutObject(ctx, "files", "blob", bytes.NewReader(other), int64(len(other)), PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(body)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read of a replaced object: %d more bytes, %v", len(rest), err)
	}
	if got = append(got, rest...); len(got) >= len(want) || !bytes.Equal(got, want[:len(got)]) {
		t.Fatalf("the read returned %d bytes, not a prefix of the old object", len(got))
	}
}

// TestReadsDeleteTheirConsumers: the consumers of short reads (a range's
// seek and download, a page of changes) are deleted when the read ends.
// nats.go leaves an ordered consumer on the server for 5 idle minutes, and
// a stream holds at most 1,000: 600 ranged reads (1,200 consumers) of one
// bucket failed with "maximum consumers limit reached".
func TestReadsDeleteTheirConsumers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, h, _, want := putBlob(ctx, t, 2*ChunkSize+100)
	for i := range 600 {
		obj, err := s.GetObject(ctx, "files", "blob", "bytes=300000-300009")
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		got, err := io.ReadAll(obj.Body)
		obj.Body.Close()
		if err != nil || !bytes.Equal(got, want[300000:300010]) {
			t.Fatalf("read %d: %q, %v", i, got, err)
		}
	}
	if n := settledConsumers(t, h.stream, 0); n != 0 {
		t.Errorf("the bucket's stream holds %d consumers after the reads, want 0", n)
	}

	if _, _, err := s.PutTable(ctx, TableDef{Name: "orders", Key: "id"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "orders", []byte(`{"id":"a"}`), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	th, err := s.table(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	before := settledConsumers(t, th.stream, -1)
	for range 20 {
		if c, err := s.Changes(ctx, "orders", Start{Revision: 1}, 10, 0); err != nil || len(c) != 1 {
			t.Fatalf("changes: %d, %v", len(c), err)
		}
	}
	if n := settledConsumers(t, th.stream, before); n != before {
		t.Errorf("the table's stream holds %d consumers after reading its changes, %d before", n, before)
	}
}

// settledConsumers returns how many consumers stream holds, once that is
// want or 5 s have passed (want -1: at once). An ordered consumer makes a
// new server consumer for each fetch and deletes the last one in the
// background: this allows those a moment.
func settledConsumers(t *testing.T, stream jetstream.Stream, want int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := stream.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n := info.State.Consumers; want < 0 || n == want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}
