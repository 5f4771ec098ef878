package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nimbus-run/nimbus/internal/iox"
)

// Objects bigger than a function should hold: Upload streams one, Open
// reads one in ranges, so a function holds a few MiB at a time whatever
// the object's size (and a wasm function, whose requests and answers pass
// through its memory, can store and read objects bigger than its memory).

const (
	// UploadBufferSize is the most of a body Upload holds: a body up to
	// it is one Put, a bigger one is streamed.
	UploadBufferSize = 8 << 20
	// ReadRangeSize is the most an ObjectReader reads at once. Every
	// range read is a new buffer (two in a wasm function: the answer, and
	// the body cut from it), so the size sets the garbage a read makes
	// for the collector: reading 72 MB in ranges of 8 MiB (the most a
	// wasm function's call answers) took a process function to 82 MB of
	// memory and a wasm function to 64; in ranges of 2 MiB, to 22 and 34.
	ReadRangeSize = 2 << 20
)

// Upload stores what r yields, up to io.EOF, under key, replacing any
// object there, with opts as Put takes them (PutIfAbsent and PutIfMatch
// are checked when the object is made, at the end). A body of at most
// UploadBufferSize is one Put; a bigger one is streamed as one put of
// unknown length, holding at most UploadBufferSize of it at a time: over
// HTTP from a process function, through nimbus.body_open, body_write and
// body_close from a wasm function, whose other calls pass whole through
// its memory. The object appears whole or not at all: when r fails
// (io.ErrUnexpectedEOF too, which is what net/http says of a download cut
// off) or ctx ends, the put fails, stores nothing, and Upload returns the
// error.
func (b *BucketRef) Upload(ctx context.Context, key string, r io.Reader, opts ...ObjectOption) (*ObjectInfo, error) {
	buf := make([]byte, UploadBufferSize)
	n, err := iox.Fill(r, buf) // io.EOF only at r's end: see Fill
	if errors.Is(err, io.EOF) {
		return b.Put(ctx, key, buf[:n], opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: upload %s: reading the body: %w", b.name, key, err)
	}
	req, err := b.putRequest("upload", key, opts)
	if err != nil {
		return nil, err
	}
	resp, err := putStream(ctx, req, io.MultiReader(bytes.NewReader(buf), r))
	return b.putAnswer("upload", key, resp, err)
}

// Open reads the object under key as a stream, ReadRangeSize bytes at a
// time, each read asking for the next range of the object as Open found it
// (by its ETag): if the object is replaced or deleted meanwhile, a read
// fails with ErrConditionFailed instead of mixing two objects' bytes.
// The reader also reads at offsets (ReadAt, for archive/zip) and seeks.
// A missing object fails with ErrNotFound.
func (b *BucketRef) Open(ctx context.Context, key string) (*ObjectReader, error) {
	info, err := b.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	return &ObjectReader{Info: *info, ctx: ctx, b: b}, nil
}

// ObjectReader reads an object Open found, in ranges.
type ObjectReader struct {
	// Info describes the object read.
	Info ObjectInfo

	ctx    context.Context
	b      *BucketRef
	off    int64  // of the next Read
	buf    []byte // bytes from bufOff, read ahead
	bufOff int64
	closed bool
}

var (
	_ io.ReadSeekCloser = (*ObjectReader)(nil)
	_ io.ReaderAt       = (*ObjectReader)(nil)
)

// Read reads the next bytes of the object, fetching the next range when
// what it read ahead is used up.
func (r *ObjectReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errors.New("read of a closed ObjectReader")
	}
	if r.off >= r.Info.Size {
		return 0, io.EOF
	}
	if r.off < r.bufOff || r.off >= r.bufOff+int64(len(r.buf)) {
		got, err := r.fetch(r.off, ReadRangeSize)
		if err != nil {
			return 0, err
		}
		r.buf, r.bufOff = got, r.off
	}
	n := copy(p, r.buf[r.off-r.bufOff:])
	r.off += int64(n)
	return n, nil
}

// ReadAt reads len(p) bytes at off, in ranges of at most ReadRangeSize;
// it does not move the offset Read reads from.
func (r *ObjectReader) ReadAt(p []byte, off int64) (int, error) {
	if r.closed {
		return 0, errors.New("read of a closed ObjectReader")
	}
	if off < 0 {
		return 0, fmt.Errorf("bucket %s: read %s: negative offset %d", r.b.name, r.Info.Key, off)
	}
	n := 0
	for n < len(p) {
		if off+int64(n) >= r.Info.Size {
			return n, io.EOF
		}
		got, err := r.fetch(off+int64(n), int64(min(len(p)-n, ReadRangeSize)))
		if err != nil {
			return n, err
		}
		n += copy(p[n:], got)
	}
	return n, nil
}

// fetch reads up to length bytes at off of the object as Open found it.
func (r *ObjectReader) fetch(off, length int64) ([]byte, error) {
	obj, err := r.b.getRange(r.ctx, r.Info.Key, off, length, r.Info.ETag)
	if err != nil {
		return nil, err
	}
	if len(obj.Body) == 0 {
		return nil, fmt.Errorf("bucket %s: read %s: no bytes at %d of %d", r.b.name, r.Info.Key, off, r.Info.Size)
	}
	return obj.Body, nil
}

// Seek sets the offset of the next Read, as io.Seeker says.
func (r *ObjectReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.Info.Size
	default:
		return 0, fmt.Errorf("seek: whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("bucket %s: seek %s: negative offset %d", r.b.name, r.Info.Key, offset)
	}
	r.off = offset
	return offset, nil
}

// Close drops what was read ahead; reads after it fail.
func (r *ObjectReader) Close() error {
	r.closed, r.buf = true, nil
	return nil
}
