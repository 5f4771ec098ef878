package data

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// fetchBatch is how many chunks a reader asks for at once: what a download
// holds in memory is about fetchBatch*ChunkSize, however slow its client.
const fetchBatch = 16

// open returns a reader of length bytes of an object from offset start.
//
// The object store's own reader pushes chunks as fast as JetStream sends
// them and has no offset; this one pulls a few chunks at a time through an
// ordered consumer on the object's chunk subject, and, for a range not at
// the start, first finds the chunk holding the offset from the chunks'
// sizes alone (a headers-only pass), so skipping never moves the bytes.
func (h *bucketHandle) open(ctx context.Context, info *ObjectInfo, start, length int64) (io.ReadCloser, error) {
	if length == 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	subj := "$O." + h.store + ".C." + info.nuid
	var seq uint64
	skip := start
	if start > 0 {
		var err error
		if seq, skip, err = h.seek(ctx, subj, start); err != nil {
			return nil, err
		}
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}}
	if seq > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
	}
	cons, err := h.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("read %s/%s: %w", h.name, info.Key, err)
	}
	r := &chunkStream{ctx: ctx, cons: cons, skip: skip, left: length, name: h.name + "/" + info.Key}
	if start == 0 && length == info.Size {
		// A whole object is checked against its digest at the end.
		r.sum, r.digest = sha256.New(), info.Digest
	}
	return r, nil
}

// seek finds the sequence of the chunk holding byte off, and off's offset
// in it.
func (h *bucketHandle) seek(ctx context.Context, subj string, off int64) (uint64, int64, error) {
	cons, err := h.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subj}, HeadersOnly: true})
	if err != nil {
		return 0, 0, fmt.Errorf("seek: %w", err)
	}
	var pos int64
	for {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return 0, 0, fmt.Errorf("seek: %w", err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			size, err := strconv.ParseInt(m.Headers().Get("Nats-Msg-Size"), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("seek: chunk without a size")
			}
			if pos+size > off {
				md, err := m.Metadata()
				if err != nil {
					return 0, 0, fmt.Errorf("seek: %w", err)
				}
				return md.Sequence.Stream, off - pos, nil
			}
			pos += size
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return 0, 0, fmt.Errorf("seek: %w", err)
		}
		if n == 0 {
			return 0, 0, fmt.Errorf("seek: the object's chunks end at %d bytes, before %d (was it replaced?)", pos, off)
		}
	}
}

// chunkStream reads chunks in order through an ordered consumer.
type chunkStream struct {
	ctx    context.Context
	cons   jetstream.Consumer
	name   string
	skip   int64 // bytes of the first chunk to drop
	left   int64 // bytes still to return
	buf    []byte
	batch  jetstream.MessageBatch
	got    int // messages of batch so far
	sum    hash.Hash
	digest string
	err    error
}

func (r *chunkStream) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.left == 0 {
			r.err = io.EOF
			if r.sum != nil {
				want, err := jetstream.DecodeObjectDigest(r.digest)
				if err != nil || !bytes.Equal(want, r.sum.Sum(nil)) {
					r.err = fmt.Errorf("read %s: the bytes do not match the object's digest", r.name)
				}
			}
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// next loads the next chunk into buf. Chunks are stored before the object
// is visible, so a fetch that finds none means the object went away.
func (r *chunkStream) next() error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	for {
		if r.batch == nil {
			b, err := r.cons.FetchNoWait(fetchBatch)
			if err != nil {
				return fmt.Errorf("read %s: %w", r.name, err)
			}
			r.batch, r.got = b, 0
		}
		m, ok := <-r.batch.Messages()
		if !ok {
			err := r.batch.Error()
			r.batch = nil
			if err != nil && !errors.Is(err, nats.ErrTimeout) {
				return fmt.Errorf("read %s: %w", r.name, err)
			}
			if r.got == 0 {
				return fmt.Errorf("read %s: %d bytes missing (the object was replaced or deleted while being read): %w", r.name, r.left, io.ErrUnexpectedEOF)
			}
			continue
		}
		r.got++
		data := m.Data()
		if r.sum != nil {
			r.sum.Write(data)
		}
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

func (r *chunkStream) Close() error {
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	return nil
}
