package data

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/store/storetest"
)

// stalled is a consumer that delivers nothing: every wait for a chunk
// ends as if stallCheck had passed.
type stalled struct{ stops int }

func (s *stalled) Next(...jetstream.NextOpt) (jetstream.Msg, error) {
	return nil, context.DeadlineExceeded
}
func (s *stalled) Stop()  { s.stops++ }
func (s *stalled) Drain() { s.stops++ }

// TestReaderResumesAfterStall: a read whose ordered consumer stops
// delivering (as one did on a replicated bucket while its replicas
// settled) starts a new consumer after the last chunk it read, after
// stallRestart checks that find the object unchanged, and returns every
// byte.
func TestReaderResumesAfterStall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := New(Config{}, storetest.Open(t))
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(context.Background()) })
	if _, _, err := s.PutBucket(ctx, "files"); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 3*ChunkSize+100)
	rand.Read(want)
	info, err := s.PutObject(ctx, "files", "blob", bytes.NewReader(want), int64(len(want)), PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	body, err := h.open(ctx, info, 0, info.Size)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	r := body.(*chunkStream)
	got := make([]byte, ChunkSize)
	if _, err := io.ReadFull(r, got); err != nil {
		t.Fatal(err)
	}
	// The consumer stalls after the first chunk.
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
