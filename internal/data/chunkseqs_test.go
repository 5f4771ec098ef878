package data

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"sync"
	"testing"
)

func TestChunkSeqs(t *testing.T) {
	var c chunkSeqs
	for _, s := range []uint64{10, 11, 12, 20, 21, 30} {
		c.add(s)
	}
	v := c.String()
	if want := fmt.Sprintf("%d:10+3,20+2,30+1", ChunkSize); v != want {
		t.Fatalf("String = %q, want %q", v, want)
	}
	for _, tc := range []struct {
		off   int64
		seq   uint64
		index uint32
	}{{0, 10, 0}, {ChunkSize - 1, 10, 0}, {ChunkSize, 11, 1}, {3*ChunkSize + 5, 20, 3}, {4 * ChunkSize, 21, 4}, {5*ChunkSize + 7, 30, 5}} {
		seq, index, skip, ok := chunkAt(v, 6, tc.off)
		if !ok || seq != tc.seq || index != tc.index || skip != tc.off%ChunkSize {
			t.Errorf("chunkAt(%d) = %d, %d, %d, %v; want %d, %d, %d", tc.off, seq, index, skip, ok, tc.seq, tc.index, tc.off%ChunkSize)
		}
	}
	for _, bad := range []struct {
		v      string
		chunks uint32
		off    int64
	}{
		{v, 7, 0},               // the runs name 6 chunks, the object has 7
		{v, 6, 6 * ChunkSize},   // past the last chunk
		{"", 6, 0},              // none kept
		{"10+3", 3, 0},          // no chunk size
		{"0:10+3", 3, 0},        // a chunk size of 0
		{"100:10+x", 3, 0},      // malformed
		{"100:10+0,11+3", 3, 0}, // an empty run
	} {
		if _, _, _, ok := chunkAt(bad.v, bad.chunks, bad.off); ok {
			t.Errorf("chunkAt(%q, %d, %d) found a chunk", bad.v, bad.chunks, bad.off)
		}
	}
	var many chunkSeqs
	for i := range maxSeqRuns + 1 {
		many.add(uint64(2 * i))
	}
	if many.String() != "" {
		t.Fatalf("%d runs kept; past %d, none should be", maxSeqRuns+1, maxSeqRuns)
	}
}

// FuzzChunkAt: whatever an info's chunk sequences say (another client may
// have written them), chunkAt either declines or names a chunk of the
// object, at an offset inside a chunk.
func FuzzChunkAt(f *testing.F) {
	f.Add("262080:10+3,20+2", uint32(5), int64(300000))
	f.Add("1:1+1", uint32(1), int64(0))
	f.Add("9223372036854775807:18446744073709551615+1", uint32(1), int64(5))
	f.Fuzz(func(t *testing.T, v string, chunks uint32, off int64) {
		if off < 0 {
			return
		}
		seq, index, skip, ok := chunkAt(v, chunks, off)
		if ok && (index >= chunks || skip < 0 || seq == 0) {
			t.Fatalf("chunkAt(%q, %d, %d) = %d, %d, %d", v, chunks, off, seq, index, skip)
		}
	})
}

// TestRangesOfInterleavedPuts puts objects at once, so that their chunks
// interleave in the stream, and reads ranges of each at chunk boundaries
// and inside chunks: the chunk sequences the writer kept position each.
func TestRangesOfInterleavedPuts(t *testing.T) {
	ctx := context.Background()
	s := filesService(t)
	bodies := make([][]byte, 4)
	var wg sync.WaitGroup
	for i := range bodies {
		bodies[i] = make([]byte, 12*ChunkSize+1234)
		rand.Read(bodies[i])
		wg.Go(func() {
			if _, err := s.PutObject(ctx, "files", fmt.Sprint("o", i), bytes.NewReader(bodies[i]), int64(len(bodies[i])), PutObjectOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	h, err := s.bucket(ctx, "files")
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for i, body := range bodies {
		info, err := h.info(ctx, fmt.Sprint("o", i))
		if err != nil {
			t.Fatal(err)
		}
		if info.chunkSeqs != "" {
			kept++
		}
		for _, off := range []int64{1, ChunkSize - 1, ChunkSize, 5*ChunkSize + 17, 12 * ChunkSize, int64(len(body)) - 1} {
			rng := fmt.Sprintf("bytes=%d-%d", off, min(off+ChunkSize, int64(len(body))-1))
			obj, err := s.GetObject(ctx, "files", fmt.Sprint("o", i), rng)
			if err != nil {
				t.Fatalf("o%d %s: %v", i, rng, err)
			}
			got, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if want := body[off:min(off+ChunkSize+1, int64(len(body)))]; err != nil || !bytes.Equal(got, want) {
				t.Fatalf("o%d %s: %d bytes (%v), not the object's %d", i, rng, len(got), err, len(want))
			}
		}
	}
	if kept == 0 {
		t.Fatal("no object kept its chunk sequences")
	}

}
