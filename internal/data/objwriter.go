package data

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/internal/httpbody"
	"github.com/nimbus-run/nimbus/internal/iox"
)

// Writing objects. put stores an object as the object store's own Put
// does (chunks on $O.<store>.C.<nuid>, then the info on
// $O.<store>.M.<name>, then the replaced object's chunks purged), so every
// NATS client reads what Nimbus writes; but:
//
//   - the info replaces the previous ones only once the bucket's triggers
//     have read them (objhistory.go), where Put's rollup removes them at
//     once;
//
//   - at most putWindow chunks are unacknowledged at a time: nats.go's Put
//     lets 4,000 run ahead (1 GB of 256 KB chunks), which a fast client and
//     a slow disk turn into memory on the node;
//
//   - the body is read on a goroutine of its own while the caller
//     publishes, and each chunk, once published, is hashed (SHA-256 for
//     the digest, and MD5 for an MD5 ETag) on a third: hashing is a third
//     of a put's CPU and, as the one step that cannot be split, sets its
//     pace. Hashing in the caller held a 100 MB put to 381-515 MB/s; in
//     the reader, between reading a chunk and handing it over, it made
//     514-572 then, and 869-915 on a later machine, where hashing apart
//     makes 1001-1050 (100 MB files put through the HTTP API, the two
//     alternating in one process).
const (
	// putWindow is how many chunks a put has in flight: 4 MB. Four (1 MB)
	// kept a 100 MB put waiting on acknowledgements at 44-59% of a file
	// copy's speed, with a core idle; sixteen reach 64-68%, for some 3 MB
	// more resident memory during the upload.
	putWindow = 16
	// putBuffers is how many chunks a put's reader and hasher hold: 2 MB.
	// Four held the reader back while the hasher caught up (a 100 MB put
	// 6-10% slower than with eight).
	putBuffers = 8
	// ackWait bounds the wait for one chunk's acknowledgement.
	ackWait = 30 * time.Second
)

// put stores r as key. With withMD5 the MD5 of the bytes goes into meta as
// the ETag; without, the ETag is meta's, or infoOf derives it from the
// digest.
func (h *bucketHandle) put(ctx context.Context, key string, r io.Reader, size int64, meta map[string]string, withMD5 bool, limit int64, cond *PutObjectOptions) (*ObjectInfo, error) {
	if size >= 0 {
		limit = min(limit, size)
	}
	old, oldSeq, err := h.lastInfo(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("put %s/%s: %w", h.name, key, err)
	}
	conditional := cond != nil && (cond.IfNoneMatch != "" || cond.IfMatch != "")
	if conditional {
		if err := checkPut(cond, old, h.name); err != nil {
			return nil, err
		}
	}
	// An upload of more than a chunk runs once it has a slot: one whose
	// size says so takes it before its body is read, one of unknown size
	// before it publishes its second chunk.
	slot := uploadSlot{slots: h.slots}
	defer slot.release()
	if size > ChunkSize {
		if err := slot.take(ctx); err != nil {
			return nil, fmt.Errorf("put %s/%s: waiting to run: %w", h.name, key, err)
		}
	}
	id := newNUID()
	h.thisRun.note(id)
	subj := "$O." + h.store + ".C." + id
	body := readBody(r, limit, withMD5)
	defer body.stop()

	var (
		pending []jetstream.PubAckFuture
		chunks  uint32
		total   uint64
		seqs    chunkSeqs // of the chunks acknowledged
		last    time.Time // when the last chunk was published
	)
	fail := func(err error) (*ObjectInfo, error) {
		// Remove what was stored, once the chunks in flight have landed.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackWait)
		defer cancel()
		for _, f := range pending {
			waitAck(cctx, f) //nolint:errcheck // purging anyway
		}
		h.purge(cctx, subj)
		return nil, err
	}
	// A put that leaves its chunks alone for longer than maxWait would look
	// unfinished to the sweep (orphans.go), which may have purged them.
	idle := func() error {
		if d := time.Since(last); chunks > 0 && d > h.maxWait {
			return fmt.Errorf("put %s/%s: %v since its last chunk, longer than an unfinished put is kept", h.name, key, d.Round(time.Second))
		}
		return nil
	}
	for {
		buf, err := body.next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, ErrTooLarge) {
			return fail(err)
		}
		if err != nil {
			return fail(fmt.Errorf("put %s/%s: reading the body: %w", h.name, key, err))
		}
		if chunks == 1 {
			// Its first chunk is published: see idle.
			wctx, cancel := context.WithTimeoutCause(ctx, h.maxWait, ErrBusy)
			err := slot.take(wctx)
			cancel()
			if err != nil {
				recycle(buf)
				if context.Cause(wctx) == ErrBusy && ctx.Err() == nil {
					err = wrapf(ErrBusy, "waited %v for one of the uploads running to end", h.maxWait)
				}
				return fail(fmt.Errorf("put %s/%s: waiting to run: %w", h.name, key, err))
			}
		}
		if err := idle(); err != nil {
			recycle(buf)
			return fail(err)
		}
		last = time.Now()
		f, err := h.js.PublishMsgAsync(&nats.Msg{Subject: subj, Data: buf})
		body.hash(buf) // published: the connection has its own copy
		if err != nil {
			return fail(fmt.Errorf("put %s/%s: %w", h.name, key, err))
		}
		pending = append(pending, f)
		chunks++
		total += uint64(len(buf))
		if len(pending) == putWindow {
			seq, err := waitAck(ctx, pending[0])
			if err != nil {
				return fail(fmt.Errorf("put %s/%s: %w", h.name, key, err))
			}
			seqs.add(seq)
			pending = append(pending[:0], pending[1:]...)
		}
	}
	for len(pending) > 0 {
		seq, err := waitAck(ctx, pending[0])
		if err != nil {
			return fail(fmt.Errorf("put %s/%s: %w", h.name, key, err))
		}
		seqs.add(seq)
		pending = pending[1:]
	}
	if size >= 0 && int64(total) != size {
		return fail(invalid("body", "the body is %d bytes, %d were announced", total, size))
	}
	if err := idle(); err != nil {
		return fail(err)
	}
	sums := body.sums()
	if sums.MD5 != nil {
		meta[metaETag] = hex.EncodeToString(sums.MD5)
	}
	if cond != nil && cond.Expect != nil {
		if err := cond.Expect(sums); err != nil {
			return fail(err)
		}
	}
	if cond != nil && cond.Checksum != nil {
		if c := cond.Checksum(); c != "" {
			meta[metaChecksum] = c
		}
	}
	if chunks > 1 {
		if v := seqs.String(); v != "" {
			meta[metaChunkSeqs] = v
		}
	}
	info := &jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{Name: key, Metadata: meta, Opts: &jetstream.ObjectMetaOptions{ChunkSize: ChunkSize}},
		Bucket:     h.store, NUID: id, Size: total, Chunks: chunks,
		Digest: "SHA-256=" + base64.URLEncoding.EncodeToString(sums.SHA256),
	}
	// The info replaces the one read at the start. A write that landed
	// meanwhile is replaced in turn (its chunks purged too), unless the put
	// was conditional on what it read.
	for {
		err := h.publishInfo(ctx, info, oldSeq)
		if err == nil {
			break
		}
		if !wrongLastSequence(err) {
			return fail(fmt.Errorf("put %s/%s: %w", h.name, key, err))
		}
		if conditional {
			return fail(wrapf(ErrPreconditionFailed, "put %s/%s: the object changed while the body was uploaded", h.name, key))
		}
		if old, oldSeq, err = h.lastInfo(ctx, key); err != nil {
			return fail(fmt.Errorf("put %s/%s: %w", h.name, key, err))
		}
	}
	info.ModTime = time.Now().UTC()
	if old != nil && !old.Deleted && old.NUID != "" {
		h.purgeLater(ctx, "$O."+h.store+".C."+old.NUID)
	}
	return infoOf(h.name, info), nil
}

// lastInfo reads the last info of key, deleted or not, and its stream
// sequence; nil and 0 when the key never held an object.
func (h *bucketHandle) lastInfo(ctx context.Context, key string) (*jetstream.ObjectInfo, uint64, error) {
	m, err := h.stream.GetLastMsgForSubject(ctx, h.metaSubject(key))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	var oi jetstream.ObjectInfo
	if err := json.Unmarshal(m.Data, &oi); err != nil {
		return nil, 0, fmt.Errorf("the info of %s: %w", key, err)
	}
	return &oi, m.Sequence, nil
}

// checkPut checks a conditional put's If-None-Match / If-Match against
// the key's last info.
func checkPut(cond *PutObjectOptions, old *jetstream.ObjectInfo, bucket string) error {
	live := old != nil && !old.Deleted
	if cond.IfNoneMatch == "*" && live {
		return wrapf(ErrPreconditionFailed, "If-None-Match: * but %s/%s exists", bucket, old.Name)
	}
	if cond.IfMatch != "" {
		if !live {
			return wrapf(ErrPreconditionFailed, "If-Match %s but the key holds no object", truncate(cond.IfMatch, 100))
		}
		if etag := infoOf(bucket, old).ETag; !etagIn(cond.IfMatch, etag, false) {
			return wrapf(ErrPreconditionFailed, "If-Match %s but the object's ETag is %q", truncate(cond.IfMatch, 100), etag)
		}
	}
	return nil
}

// purge removes the messages of subject from the object store's stream;
// a failure leaves unreachable chunks, which cost space, not correctness.
func (h *bucketHandle) purge(ctx context.Context, subject string) {
	if h.stream == nil {
		return
	}
	h.stream.Purge(ctx, jetstream.WithPurgeSubject(subject)) //nolint:errcheck // see above
}

// uploadSlots are the places of the uploads that run at once
// (Config.MaxUploads), and the count of those waiting for one (metrics).
type uploadSlots struct {
	ch      chan struct{}
	waiting atomic.Int64
}

func newUploadSlots(n int) *uploadSlots { return &uploadSlots{ch: make(chan struct{}, n)} }

// uploadSlot is a put's place among them; nil slots: no bound.
type uploadSlot struct {
	slots *uploadSlots
	held  bool
}

func (s *uploadSlot) take(ctx context.Context) error {
	if s.held || s.slots == nil {
		return nil
	}
	select {
	case s.slots.ch <- struct{}{}:
		s.held = true
		return nil
	default:
	}
	s.slots.waiting.Add(1)
	defer s.slots.waiting.Add(-1)
	select {
	case s.slots.ch <- struct{}{}:
		s.held = true
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *uploadSlot) release() {
	if s.held {
		<-s.slots.ch
		s.held = false
	}
}

// waitAck waits for a chunk's acknowledgement and returns the chunk's
// stream sequence.
func waitAck(ctx context.Context, f jetstream.PubAckFuture) (uint64, error) {
	t := time.NewTimer(ackWait)
	defer t.Stop()
	select {
	case ack := <-f.Ok():
		return ack.Sequence, nil
	case err := <-f.Err():
		return 0, err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
		return 0, errors.New("no acknowledgement from JetStream")
	}
}

// newNUID returns a random identifier for an object's chunks, like the
// object store's (22 characters of [0-9A-Za-z]).
func newNUID() string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	var b [22]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b[:])
}

// bodyReader reads an object's body into full chunks (every chunk but the
// last is full, which keeps range reads cheap to position) on a goroutine
// of its own, counting what passes against the limit, up to putBuffers
// chunks ahead of the publisher. The publisher hands each chunk back to
// be hashed: the first at once, the others on a goroutine of their own
// (a hasher), in order, which returns their buffers to the reader.
type bodyReader struct {
	sha  hash.Hash
	md5  hash.Hash // nil but for an MD5 ETag
	free chan []byte
	full chan filled
	quit chan struct{}
	done chan struct{} // closed when the reader has returned

	// Used by the publisher only.
	chunks int
	hashes chan []byte   // chunks for the hasher, nil until the second
	hashed chan struct{} // closed when the hasher has returned
}

type filled struct {
	buf []byte
	err error
}

// chunkBufs recycles the body readers' chunk buffers across puts: each put
// allocated (and zeroed) its own, a megabyte for an object of a few bytes,
// which was most of the CPU of putting small objects.
var chunkBufs = sync.Pool{New: func() any { return new([ChunkSize]byte) }}

func recycle(buf []byte) { chunkBufs.Put((*[ChunkSize]byte)(buf[:ChunkSize])) }

func readBody(r io.Reader, limit int64, withMD5 bool) *bodyReader {
	b := &bodyReader{
		free: make(chan []byte, putBuffers), full: make(chan filled, putBuffers),
		quit: make(chan struct{}), done: make(chan struct{}), sha: sha256.New(),
	}
	if withMD5 {
		b.md5 = md5.New()
	}
	go b.run(r, limit)
	return b
}

func (b *bodyReader) run(r io.Reader, limit int64) {
	defer close(b.done)
	send := func(f filled) bool {
		select {
		case b.full <- f:
			return true
		case <-b.quit:
			if f.buf != nil {
				recycle(f.buf)
			}
			return false
		}
	}
	var n int64
	made := 0 // buffers taken from chunkBufs, at most putBuffers
	for {
		var buf []byte
		select {
		case buf = <-b.free:
		default:
			if made < putBuffers {
				buf, made = chunkBufs.Get().(*[ChunkSize]byte)[:], made+1
				break
			}
			select {
			case buf = <-b.free:
			case <-b.quit:
				return
			}
		}
		k, err := iox.Fill(r, buf) // io.EOF only at the end: see Fill
		n += int64(k)
		if n > limit {
			recycle(buf)
			send(filled{err: wrapf(ErrTooLarge, "object is over the limit of %d bytes", limit)})
			return
		}
		if errors.Is(err, io.EOF) {
			if k == 0 {
				recycle(buf)
			} else if !send(filled{buf: buf[:k]}) {
				return
			}
			send(filled{err: io.EOF})
			return
		}
		if err != nil {
			recycle(buf)
			send(filled{err: err})
			return
		}
		if !send(filled{buf: buf}) {
			return
		}
	}
}

// hasher hashes the chunks handed to hash, in order, and gives their
// buffers back to the reader. With an MD5 too, a second goroutine computes
// it, a chunk behind the SHA-256: MD5 is the slower of the two (930 MB/s
// on one core here, SHA-256 2.1 GB/s), and one goroutine doing both held
// an S3 put of 100 MB to 419-448 MB/s, against 448-509 with the two apart
// (the AWS SDK in the same process, two alternating runs of five).
func (b *bodyReader) hasher() {
	defer close(b.hashed)
	if b.md5 == nil {
		for buf := range b.hashes {
			b.sha.Write(buf)
			b.free <- buf[:cap(buf)]
		}
		return
	}
	md5s, done := make(chan []byte, putBuffers), make(chan struct{})
	go func() {
		defer close(done)
		for buf := range md5s {
			b.md5.Write(buf)
			b.free <- buf[:cap(buf)]
		}
	}()
	for buf := range b.hashes {
		b.sha.Write(buf)
		md5s <- buf // never blocks: at most putBuffers buffers
	}
	close(md5s)
	<-done
}

func (b *bodyReader) write(buf []byte) {
	b.sha.Write(buf)
	if b.md5 != nil {
		b.md5.Write(buf)
	}
	// There are at most putBuffers buffers, so this never blocks.
	b.free <- buf[:cap(buf)]
}

// next returns the next chunk, or io.EOF after the last one.
func (b *bodyReader) next(ctx context.Context) ([]byte, error) {
	select {
	case f := <-b.full:
		return f.buf, f.err
	case <-ctx.Done():
		return nil, b.why(ctx)
	}
}

// why is the error of a put whose context ended while it waited for the
// body. net/http ends a request's context when a read of its connection
// fails, a stalled body's too (httpbody): then the reader's error, which
// comes a moment later, says what happened, where the context says only
// "canceled".
func (b *bodyReader) why(ctx context.Context) error {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-b.done: // the reader has sent all it will
	case <-t.C:
		return ctx.Err()
	}
	for {
		select {
		case f := <-b.full:
			if errors.Is(f.err, httpbody.ErrStalled) {
				return f.err
			}
			if f.buf != nil {
				recycle(f.buf)
			}
		default:
			return ctx.Err()
		}
	}
}

// hash takes a published chunk to hash and then give back to the reader.
// An object of one chunk (most are) is hashed at once, without a hasher.
func (b *bodyReader) hash(buf []byte) {
	b.chunks++
	if b.chunks == 1 {
		b.write(buf)
		return
	}
	if b.hashes == nil {
		b.hashes, b.hashed = make(chan []byte, putBuffers), make(chan struct{})
		go b.hasher()
	}
	b.hashes <- buf // never blocks, as in write
}

// sums waits for the chunks handed to hash to be hashed and returns their
// sums.
func (b *bodyReader) sums() Sums {
	b.stopHasher()
	s := Sums{SHA256: b.sha.Sum(nil)}
	if b.md5 != nil {
		s.MD5 = b.md5.Sum(nil)
	}
	return s
}

// stopHasher waits for the hasher, if any, to hash what it was handed.
func (b *bodyReader) stopHasher() {
	if b.hashes != nil {
		close(b.hashes)
		<-b.hashed
		b.hashes = nil
	}
}

// stop ends the reading and hashing goroutines and waits for them, so the
// body is never read after put returns (net/http forbids reading a
// request body after its handler has returned), and recycles the buffers.
func (b *bodyReader) stop() {
	close(b.quit)
	<-b.done
	b.stopHasher()
	for {
		select {
		case buf := <-b.free:
			recycle(buf)
		case f := <-b.full:
			if f.buf != nil {
				recycle(f.buf)
			}
		default:
			return
		}
	}
}
