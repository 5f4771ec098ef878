package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/store"
)

// ParseRange reads an HTTP Range header of one byte range ("bytes=0-99",
// "bytes=100-", "bytes=-500") against an object of size bytes, as S3 does:
// an end past the object is clipped; a start past it, or a suffix of zero,
// is ErrInvalidRange; several ranges, or a header that does not parse, are
// a field error.
func ParseRange(h string, size int64) (*Range, error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok {
		return nil, invalid("range", "only byte ranges are supported: bytes=START-END")
	}
	if strings.Contains(spec, ",") {
		return nil, invalid("range", "only one range per request is supported")
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return nil, invalid("range", "%q is not a byte range: bytes=START-END", truncate(h, 60))
	}
	num := func(s string) (int64, bool) {
		if s == "" || len(s) > 19 {
			return 0, false
		}
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return 0, false
			}
		}
		n, err := strconv.ParseInt(s, 10, 64)
		return n, err == nil
	}
	if first == "" {
		n, ok := num(last)
		if !ok {
			return nil, invalid("range", "%q is not a byte range: bytes=START-END", truncate(h, 60))
		}
		if n == 0 || size == 0 {
			return nil, wrapf(ErrInvalidRange, "range %s of an object of %d bytes", truncate(h, 60), size)
		}
		n = min(n, size)
		return &Range{Start: size - n, Length: n}, nil
	}
	start, ok := num(first)
	if !ok {
		return nil, invalid("range", "%q is not a byte range: bytes=START-END", truncate(h, 60))
	}
	end := size - 1
	if last != "" {
		e, ok := num(last)
		if !ok || e < start {
			return nil, invalid("range", "%q is not a byte range: bytes=START-END with START <= END", truncate(h, 60))
		}
		end = min(e, size-1)
	}
	if start >= size {
		return nil, wrapf(ErrInvalidRange, "range %s starts past the end of an object of %d bytes", truncate(h, 60), size)
	}
	return &Range{Start: start, Length: end - start + 1}, nil
}

// readAhead is how many chunks a reader pulls ahead of its caller: what a
// download holds in memory is about readAhead*ChunkSize, however slow its
// client. The pulls are what paces a read: a 100 MB object read in
// process went at 561-584 MB/s with two, 660-664 with four and 855-908
// with eight; through the HTTP API (bench/data -only object, five
// alternating runs) at 360-436, 409-504 and 488-583 MB/s. But eight, and
// six, pushed the node's memory growth over a 200 MB upload and download
// to 59-70 MB and 49-64 MB (TestObjectMemory, five runs each; the target
// is 64), where four keep it at 44-56 (nine runs), as two did.
const readAhead = 4

// The reader asks for more chunks as soon as one of the readAhead is
// taken (nats.go's default waits for half), which keeps JetStream's
// delivery and the caller's writes overlapping without holding more:
// BenchmarkGetLargeObject went from 757-881 MB/s to 950-1125 (same run),
// the HTTP benchmark's get from 440 to 460 MB/s (medians of six
// alternating runs), and TestObjectMemory stayed at +49-57 MB.
const pullThreshold = readAhead - 1

// stallCheck is how long a reader waits for a chunk before it checks that
// the object is still there: chunks are stored before the object is
// visible, so a chunk that does not come means the object was replaced or
// deleted while being read.
const stallCheck = time.Second

// open returns a reader of length bytes of an object from offset start.
//
// An object of one chunk is one direct get (readChunk). For a larger one:
// the object store's own reader pushes chunks as fast as JetStream sends
// them and has no offset; this one pulls readAhead chunks at a time
// through one ordered consumer on the object's chunk subject, and, for a
// range not at the start, first finds the chunk holding the offset from
// the chunks' sizes alone (a headers-only pass), so skipping never moves
// the bytes.
//
// Integrity: JetStream's file store checks each chunk's checksum
// (HighwayHash, per record) when it reads it from disk, and on a bucket of
// one replica the reader checks with every chunk that the stream holds
// exactly the object's chunks (the chunk's index and the consumer's count
// of those after it), so a lost chunk fails the read before its bytes are
// returned. (On a replicated bucket the consumer may sit on a replica
// still applying the stream, whose count is short for a while.) The bytes
// are not hashed again: a SHA-256 of every download cost a third of a
// node's CPU per byte read (docs/data.md).
func (h *bucketHandle) open(ctx context.Context, info *ObjectInfo, start, length int64) (io.ReadCloser, error) {
	if length == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	subj := "$O." + h.store + ".C." + info.nuid
	if info.chunks == 1 {
		return h.readChunk(ctx, info, subj, start, length)
	}
	var seq uint64
	var index uint32
	skip := start
	if start > 0 {
		var ok bool
		if seq, index, skip, ok = chunkAt(info.chunkSeqs, info.chunks, start); !ok {
			var err error
			if seq, index, skip, err = h.seek(ctx, subj, start); err != nil {
				return nil, err
			}
		}
	}
	r := &chunkStream{ctx: ctx, h: h, key: info.Key, nuid: info.nuid, subj: subj, first: seq, next: index, chunks: info.chunks,
		skip: skip, left: length, name: h.name + "/" + info.Key, counted: h.stream.CachedInfo().Config.Replicas <= 1}
	if err := r.consume(seq); err != nil {
		return nil, err
	}
	return r, nil
}

// readChunk reads an object of one chunk (256 KB or less: most objects)
// with one direct get, where a consumer would cost two more round trips
// (its creation and deletion) and the server's work of setting it up.
// The chunk's size must be the object's.
func (h *bucketHandle) readChunk(ctx context.Context, info *ObjectInfo, subj string, start, length int64) (io.ReadCloser, error) {
	name := h.name + "/" + info.Key
	m, err := h.stream.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("read %s: the object was replaced or deleted while being read: %w", name, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(m.Data)) != info.Size {
		return nil, fmt.Errorf("read %s: its chunk holds %d bytes of its %d: %w", name, len(m.Data), info.Size, io.ErrUnexpectedEOF)
	}
	return io.NopCloser(bytes.NewReader(m.Data[start : start+length])), nil
}

// seek finds the sequence and index of the chunk holding byte off, and
// off's offset in it.
func (h *bucketHandle) seek(ctx context.Context, subj string, off int64) (seq uint64, index uint32, skip int64, err error) {
	var pos int64
	var found bool
	var bad error
	err = store.ReadAll(ctx, h.stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, HeadersOnly: true}, 256,
		func(m jetstream.Msg, md *jetstream.MsgMetadata) bool {
			size, perr := strconv.ParseInt(m.Headers().Get("Nats-Msg-Size"), 10, 64)
			if perr != nil {
				bad = errors.New("chunk without a size")
				return false
			}
			if pos+size > off {
				seq, skip, found = md.Sequence.Stream, off-pos, true
				return false
			}
			pos += size
			index++
			return true
		})
	if err == nil {
		err = bad
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("seek: %w", err)
	}
	if !found {
		return 0, 0, 0, fmt.Errorf("seek: the object's chunks end at %d bytes, before %d (was it replaced?)", pos, off)
	}
	return seq, index, skip, nil
}

// chunkStream reads chunks in order through a consumer (store.OnceReader):
// the first readAhead chunks with one fetch, the rest, if any, as the
// consumer's pulls bring them.
type chunkStream struct {
	ctx    context.Context
	h      *bucketHandle
	key    string
	nuid   string
	subj   string // of the object's chunks
	first  uint64 // stream sequence the read starts at; 0: the first chunk
	next   uint32 // index of the chunk to come
	chunks uint32 // the object's
	// counted: the consumer's counts of chunks to come are exact.
	counted bool
	cons    *store.OnceReader
	done    func()          // deletes cons
	fetched []jetstream.Msg // the first fetch's chunks not yet read
	it      jetstream.MessagesContext
	last    uint64 // stream sequence of the last chunk read
	stalls  int    // stall checks in a row that found the object unchanged
	// restarts counts the consumers started anew with no chunk read yet.
	restarts int
	// lost counts the consumers started anew, in a row, because one lost
	// a chunk on its way (store.ErrMessagesLost).
	lost int
	name string
	skip int64 // bytes of the first chunk to drop
	left int64 // bytes still to return
	buf  []byte
	err  error
}

// stallRestart is how many stall checks in a row that find the object
// unchanged make the reader start a new consumer after the last chunk it
// read. On a replicated bucket an ordered consumer created while the
// stream's replicas settle could deliver nothing at all, and the read
// waited for ever (a loaded run of TestReplicatedData hung so); a new one
// resumes the read.
const stallRestart = 3

// consume starts the consumer the chunks come through, from stream
// sequence seq, or from the first chunk when seq is 0, and fetches the
// first chunks. The fetch, unlike the consumer's pulls, tells a request
// that met no one, and asks again (store.OnceReader.Available); the first
// pull of a consumer just made on a cluster may meet no one, which the
// pulls ignored: a read from a node on another server than the bucket's
// stream stalled for 3 s (the stall checks) in 1 to 3 of 200 reads.
func (r *chunkStream) consume(seq uint64) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{r.subj}}
	if seq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
	}
	cons, done, err := store.ReadOnce(r.ctx, r.h.stream, cfg)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.name, err)
	}
	r.cons, r.done = cons, done
	if r.fetched, err = cons.Available(r.ctx, readAhead); err != nil {
		r.stop()
		return fmt.Errorf("read %s: %w", r.name, err)
	}
	return nil
}

// restart resumes the read on a new consumer, after the last chunk read.
func (r *chunkStream) restart() error {
	r.stop()
	from := r.last + 1
	if r.last == 0 {
		from = r.first
	}
	return r.consume(from)
}

func (r *chunkStream) Read(p []byte) (int, error) {
	if err := r.fill(); err != nil {
		return 0, err
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// WriteTo hands w the chunks as they come, saving io.Copy's copy into a
// buffer of its own.
func (r *chunkStream) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if err := r.fill(); err != nil {
			if errors.Is(err, io.EOF) {
				return n, nil
			}
			return n, err
		}
		k, err := w.Write(r.buf)
		n += int64(k)
		r.buf = r.buf[k:]
		if err != nil {
			return n, err
		}
	}
}

// fill makes buf hold the next bytes, or returns io.EOF after the last.
func (r *chunkStream) fill() error {
	for len(r.buf) == 0 {
		if r.err != nil {
			return r.err
		}
		if r.left == 0 {
			r.err = io.EOF
			r.stop()
			return r.err
		}
		r.err = r.load()
	}
	return nil
}

// load loads the next chunk into buf.
func (r *chunkStream) load() error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	for {
		m, err := r.nextMsg()
		if err != nil {
			return err
		}
		data := m.Data()
		if r.skip > 0 {
			if r.skip >= int64(len(data)) {
				r.skip -= int64(len(data))
				continue
			}
			data = data[r.skip:]
			r.skip = 0
		}
		if int64(len(data)) > r.left {
			data = data[:r.left]
		}
		r.left -= int64(len(data))
		r.buf = data
		return nil
	}
}

func (r *chunkStream) nextMsg() (jetstream.Msg, error) {
	for {
		m, md, err := r.pull()
		if errors.Is(err, store.ErrMessagesLost) || errors.Is(err, jetstream.ErrConsumerDeleted) {
			// A chunk went missing on its way, or the consumer did:
			// read on from after the last chunk.
			if r.lost++; r.lost > stallRestart {
				return nil, fmt.Errorf("read %s: %w", r.name, err)
			}
			if err := r.restart(); err != nil {
				return nil, err
			}
			continue
		}
		if err == nil {
			r.stalls, r.lost = 0, 0
			// A read that starts inside the object starts at the chunk
			// it was positioned at (chunkAt, seek), or not at all.
			if r.last == 0 && r.first != 0 && md.Sequence.Stream != r.first {
				return nil, fmt.Errorf("read %s: its chunk %d is not at stream sequence %d: %w", r.name, r.next, r.first, io.ErrUnexpectedEOF)
			}
			// The chunks after this one, and this one's index, must
			// add up to the object's count.
			if r.counted && uint64(r.next)+1+md.NumPending != uint64(r.chunks) {
				return nil, fmt.Errorf("read %s: the store holds %d of the object's %d chunks (it was replaced or deleted while being read, or a chunk was lost): %w",
					r.name, uint64(r.next)+1+md.NumPending, r.chunks, io.ErrUnexpectedEOF)
			}
			r.next++
			r.last = md.Sequence.Stream
			return m, nil
		}
		if cerr := r.ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("read %s: %w", r.name, err)
		}
		// No chunk for a while: is the object still there?
		info, err := r.h.obs.GetInfo(r.ctx, r.key)
		if errors.Is(err, jetstream.ErrObjectNotFound) || (err == nil && info.NUID != r.nuid) {
			return nil, fmt.Errorf("read %s: %d bytes missing (the object was replaced or deleted while being read): %w", r.name, r.left, io.ErrUnexpectedEOF)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", r.name, err)
		}
		// Or has the consumer gone (a reader idle for longer than
		// store.ReadConsumerIdle, a server restarted)?
		_, cerr := r.cons.Info(r.ctx)
		if r.stalls++; r.stalls < stallRestart && !errors.Is(cerr, jetstream.ErrConsumerNotFound) {
			continue
		}
		// It is there, and the consumer has delivered nothing for
		// stallRestart checks: resume on a new one. A read positioned
		// inside the object that gets no chunk at all from a few
		// consumers in turn is missing the chunk it starts at.
		if r.last == 0 && r.first != 0 {
			if r.restarts++; r.restarts > stallRestart {
				return nil, fmt.Errorf("read %s: no chunk at stream sequence %d, where its chunk %d was: %w", r.name, r.first, r.next, io.ErrUnexpectedEOF)
			}
		}
		r.stalls = 0
		if err := r.restart(); err != nil {
			return nil, err
		}
	}
}

// pull returns the next chunk the consumer brings, the chunk after the
// last: one fetched first, or one of its pulls, for which it waits up to
// stallCheck (context.DeadlineExceeded).
func (r *chunkStream) pull() (jetstream.Msg, *jetstream.MsgMetadata, error) {
	var m jetstream.Msg
	if len(r.fetched) > 0 {
		m, r.fetched = r.fetched[0], r.fetched[1:]
	} else {
		if r.it == nil {
			it, err := r.cons.Messages(jetstream.PullMaxMessages(readAhead), jetstream.PullThresholdMessages(pullThreshold))
			if err != nil {
				return nil, nil, err
			}
			r.it = it
		}
		ctx, cancel := context.WithTimeout(r.ctx, stallCheck)
		var err error
		m, err = r.it.Next(jetstream.NextContext(ctx))
		cancel()
		if err != nil {
			return nil, nil, err
		}
	}
	md, err := m.Metadata()
	if err == nil {
		err = r.cons.InOrder(md)
	}
	if err != nil {
		return nil, nil, err
	}
	return m, md, nil
}

// stop ends the consumer and deletes it.
func (r *chunkStream) stop() {
	if r.it != nil {
		r.it.Stop()
		r.it = nil
	}
	if r.done != nil {
		r.done()
		r.cons, r.done, r.fetched = nil, nil, nil
	}
}

func (r *chunkStream) Close() error {
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	r.stop()
	return nil
}
