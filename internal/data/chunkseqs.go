package data

import (
	"strconv"
	"strings"
)

// Where an object's chunks are in its bucket's stream. A range read
// starts at the chunk holding its first byte; to find it, a reader could
// only read the chunks' headers from the first one on, which makes the
// server load every chunk before it (a 2 MiB range at the end of a 512 MiB
// object took 110 ms, at its start 5.5 ms; BenchmarkRangeAtEnd), so
// reading a big object in ranges (the SDK's ObjectReader, S3 clients'
// parallel ranged downloads) cost the square of its size. The writer
// knows each chunk's stream sequence from its acknowledgement, and its
// chunks are full but the last: it keeps the sequences in the object's
// info as runs ("<chunk size>:<first>+<count>,..."), so a reader finds
// chunk off/size's sequence at once. A put that shares the stream with
// others interleaves its chunks with theirs; past maxSeqRuns runs the
// writer keeps none, and readers scan as before (as they do for objects
// other NATS clients write).

// metaChunkSeqs holds an object's chunk sequences.
const metaChunkSeqs = "chunk-seqs"

// maxSeqRuns bounds the runs an info keeps (about 20 bytes each).
const maxSeqRuns = 64

type seqRun struct{ first, n uint64 }

// chunkSeqs records the stream sequences of a put's chunks, in order.
type chunkSeqs struct {
	runs     []seqRun
	overflow bool
	first    [2]seqRun // runs' first storage: most puts are one or two runs
}

func (c *chunkSeqs) add(seq uint64) {
	if c.overflow {
		return
	}
	if k := len(c.runs); k > 0 && c.runs[k-1].first+c.runs[k-1].n == seq {
		c.runs[k-1].n++
		return
	}
	if len(c.runs) == maxSeqRuns {
		c.overflow, c.runs = true, nil
		return
	}
	if c.runs == nil {
		c.runs = c.first[:0]
	}
	c.runs = append(c.runs, seqRun{seq, 1})
}

// String is the metadata value, "" when none is kept.
func (c *chunkSeqs) String() string {
	if c.overflow || len(c.runs) == 0 {
		return ""
	}
	b := strconv.AppendInt(nil, ChunkSize, 10)
	for i, r := range c.runs {
		if i == 0 {
			b = append(b, ':')
		} else {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, r.first, 10)
		b = append(b, '+')
		b = strconv.AppendUint(b, r.n, 10)
	}
	return string(b)
}

// chunkAt finds the chunk holding byte off of an object whose chunk
// sequences are v (metaChunkSeqs) and which has chunks chunks: its stream
// sequence, its index and off's offset in it; ok is false when v does not
// say (absent, malformed, or not matching the object).
func chunkAt(v string, chunks uint32, off int64) (seq uint64, index uint32, skip int64, ok bool) {
	size, runs, found := strings.Cut(v, ":")
	cs, err := strconv.ParseInt(size, 10, 64)
	if !found || err != nil || cs <= 0 {
		return 0, 0, 0, false
	}
	want := uint64(off / cs)
	var seen uint64
	for r := range strings.SplitSeq(runs, ",") {
		first, count, found := strings.Cut(r, "+")
		f, err1 := strconv.ParseUint(first, 10, 64)
		n, err2 := strconv.ParseUint(count, 10, 64)
		if !found || err1 != nil || err2 != nil || n == 0 {
			return 0, 0, 0, false
		}
		if seq == 0 && want < seen+n {
			seq = f + (want - seen)
		}
		seen += n
	}
	if seen != uint64(chunks) || seq == 0 {
		return 0, 0, 0, false
	}
	return seq, uint32(want), off % cs, true
}
