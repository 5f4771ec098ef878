package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/nimbus-run/nimbus/internal/iox"
)

// Objects bigger than a function should hold: Upload sends one in parts,
// Open reads one in ranges, so a function holds a part at a time whatever
// the object's size (and a wasm function, whose requests and answers pass
// through its memory, can store and read objects bigger than its memory).

const (
	// UploadPartSize is the size of the parts Upload sends: at least the
	// parts' minimum (5 MiB), and few parts for a big object.
	UploadPartSize = 8 << 20
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
// are checked when the object is made, at the end). It holds one part of
// UploadPartSize at a time: a body that fits in one is Put; a bigger one
// a process function streams as one put (of unknown length), and a wasm
// function, whose calls pass whole through its memory, sends as a
// multipart upload, part by part, and completes. The object appears whole
// or not at all: when r fails, a part is refused or ctx ends, the put
// fails, or Upload aborts the upload (its parts are removed), and returns
// the error. A multipart object's ETag is S3's ("<md5 of the parts'
// MD5s>-<parts>"), and its bytes are copied once more when it is
// completed (docs/data.md).
func (b *BucketRef) Upload(ctx context.Context, key string, r io.Reader, opts ...ObjectOption) (*ObjectInfo, error) {
	buf := make([]byte, UploadPartSize)
	n, err := iox.Fill(r, buf) // io.EOF only at r's end: see Fill
	if errors.Is(err, io.EOF) {
		return b.Put(ctx, key, buf[:n], opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: upload %s: reading the body: %w", b.name, key, err)
	}
	if streams {
		req, err := b.putRequest("upload", key, opts)
		if err != nil {
			return nil, err
		}
		resp, err := putStream(ctx, req, io.MultiReader(bytes.NewReader(buf), r))
		return b.putAnswer("upload", key, resp, err)
	}
	var o objectOptions
	for _, f := range opts {
		f(&o)
	}
	if err := b.checkHeaders("upload", key, o.headers); err != nil {
		return nil, err
	}
	up := struct {
		ID          string            `json:"id,omitempty"`
		Key         string            `json:"key"`
		ContentType string            `json:"content_type,omitempty"`
		Metadata    map[string]string `json:"metadata,omitempty"`
		Headers     map[string]string `json:"headers,omitempty"`
	}{Key: key, ContentType: o.contentType, Metadata: o.meta, Headers: o.headers}
	if err := doJSON(ctx, "POST", b.uploadsPath(""), &up, &up); err != nil {
		return nil, fmt.Errorf("bucket %s: upload %s: %w", b.name, key, err)
	}
	info, err := b.sendParts(ctx, up.ID, r, buf, &o)
	if err != nil {
		// Remove the parts now rather than in UploadMaxAge, even if ctx
		// has ended (a wasm function's call is still bounded by its
		// deadline).
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		do(actx, &apiRequest{Method: "DELETE", Path: b.uploadsPath("/" + up.ID)}) //nolint:errcheck // it expires anyway
		return nil, fmt.Errorf("bucket %s: upload %s: %w", b.name, key, err)
	}
	return info, nil
}

type partRef struct {
	Number int    `json:"number"`
	ETag   string `json:"etag"`
}

// sendParts sends buf, full, as the first part of upload id and the rest
// of r as the next ones, then completes the upload.
func (b *BucketRef) sendParts(ctx context.Context, id string, r io.Reader, buf []byte, o *objectOptions) (*ObjectInfo, error) {
	var parts []partRef
	n, last := len(buf), false // last: r has ended
	for {
		var p partRef
		resp, err := do(ctx, &apiRequest{Method: "PUT", Path: b.uploadsPath("/" + id + "/parts/" + strconv.Itoa(len(parts)+1)), Body: buf[:n]})
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", len(parts)+1, err)
		}
		if err := json.Unmarshal(resp.Body, &p); err != nil {
			return nil, fmt.Errorf("part %d: decode answer: %w", len(parts)+1, err)
		}
		parts = append(parts, p)
		if last {
			break
		}
		n, err = iox.Fill(r, buf)
		if errors.Is(err, io.EOF) {
			if n == 0 {
				break
			}
			last = true
		} else if err != nil {
			return nil, fmt.Errorf("reading the body: %w", err)
		}
	}
	done := struct {
		Parts       []partRef `json:"parts"`
		IfNoneMatch string    `json:"if_none_match,omitempty"`
		IfMatch     string    `json:"if_match,omitempty"`
	}{parts, o.ifNoneMatch, o.ifMatch}
	var info ObjectInfo
	if err := doJSON(ctx, "POST", b.uploadsPath("/"+id+"/complete"), &done, &info); err != nil {
		return nil, err
	}
	return &info, nil
}

func (b *BucketRef) uploadsPath(rest string) string {
	return "/api/v1/buckets/" + url.PathEscape(b.name) + "/uploads" + rest
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
