package data

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/nimbus-run/nimbus/api"
)

// Objects live in a JetStream object store per bucket. Nimbus keeps its
// own attributes in the object's metadata map: an ETag that is not the
// digest's (hex MD5 of the bytes, or S3's multipart form), the content
// type, user metadata under "m-<name>" and its stored headers (api.ObjectHeaders) under "h-<name>".
const (
	metaETag         = "etag"
	metaContentType  = "content-type"
	metaParts        = "parts" // a multipart object's part sizes (partsLayout)
	metaUserPrefix   = "m-"
	metaHeaderPrefix = "h-"
	// ChunkSize is the chunk size of objects Nimbus writes. Every chunk but
	// the last is full, which keeps range reads cheap to position. It is
	// 64 bytes short of 256 KB because nats-server appends the protocol's
	// CRLF to each message it delivers to a consumer: a chunk that filled
	// its page-rounded buffer was copied into a new one on every delivery
	// (BenchmarkGetLargeObject: 491-597 MB/s then, 819-956 now). Objects
	// stored with other chunk sizes read the same.
	ChunkSize = 256<<10 - 64
	// MaxObjectKeyBytes is S3's limit on key length.
	MaxObjectKeyBytes = 1024
	// MaxUserMetadataBytes is S3's limit on user metadata.
	MaxUserMetadataBytes = 2 << 10
)

type bucketHandle struct {
	def    *BucketDef
	js     jetstream.JetStream
	obs    jetstream.ObjectStore
	stream jetstream.Stream
	name   string // the bucket's name
	store  string // its object store's name

	// idx is the name index (objindex.go), started on first listing.
	idx lazyIndex[objIndex, *objIndex]
	// hist keeps old infos for the bucket's triggers (objhistory.go).
	hist infoHistory
	log  *slog.Logger
	// thisRun records the puts of this run while orphans are swept
	// (orphans.go); nil for the uploads' store.
	thisRun *putsThisRun
	// slots bounds the uploads that run at once (Config.MaxUploads).
	slots *uploadSlots
	// maxWait is how long a put may leave its chunks alone:
	// Config.OrphanAge/2 (orphans.go).
	maxWait time.Duration
	// purges is the Service's purge queue (purges.go).
	purges chan<- purgeJob
}

// metaSubject is the subject of the infos of the object named key.
func (h *bucketHandle) metaSubject(key string) string {
	return "$O." + h.store + ".M." + base64.URLEncoding.EncodeToString([]byte(key))
}

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Bucket      string            `json:"bucket"`
	Key         string            `json:"key"`
	Size        int64             `json:"size"`
	ETag        string            `json:"etag"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// Headers are the object's stored headers (api.ObjectHeaders), by canonical name.
	Headers  map[string]string `json:"headers,omitempty"`
	Modified time.Time         `json:"modified"`
	// Digest is the SHA-256 of the bytes, "SHA-256=<base64url>".
	Digest string `json:"digest,omitempty"`
	// Checksum is the checksum the object was uploaded with, once checked,
	// as its writer put it (PutObjectOptions.Checksum): the S3 API's
	// "CRC32 <base64>", with "-<parts>" for a multipart object's checksum
	// of its parts' checksums; "" if none.
	Checksum string `json:"checksum,omitempty"`

	nuid   string
	chunks uint32
	parts  string // the part sizes of a multipart object (partsLayout)
	// chunkSeqs are the chunks' stream sequences (chunkseqs.go).
	chunkSeqs string
}

// SHA256 returns the SHA-256 of the object's bytes, from its digest; nil
// when it has none.
func (o *ObjectInfo) SHA256() []byte {
	d, err := jetstream.DecodeObjectDigest(o.Digest)
	if err != nil || len(d) != sha256.Size {
		return nil
	}
	return d
}

// PutObjectOptions describe a new object.
type PutObjectOptions struct {
	ContentType string
	// Metadata is user metadata (S3's x-amz-meta-*), names lower-cased.
	Metadata map[string]string
	// Headers are stored headers (api.ObjectHeaders) to keep with the object (HeadersOf).
	Headers map[string]string
	// MD5ETag makes the ETag the hex MD5 of the bytes, which S3 clients
	// expect of a single-part object (the S3 API sets it). Otherwise the
	// ETag is the hex SHA-256 the object store's digest holds anyway: MD5
	// runs at about 550 MB/s on one core, and a second pass over the bytes
	// took a quarter of an upload's speed (docs/data.md).
	MD5ETag bool
	// IfNoneMatch "*" stores the object only if the key holds none, and
	// IfMatch only if it holds one with that ETag (S3's conditional
	// writes; quotes are optional). Either is checked before the body is
	// read and made atomic by the info's write, which expects the key's
	// info to be the one checked: a put that loses a race is
	// ErrPreconditionFailed and leaves nothing behind.
	IfNoneMatch, IfMatch string
	// Expect, when set, sees the sums of the body once it is read whole,
	// before the object is visible: an error fails the put, which then
	// stores nothing. The S3 API checks Content-MD5 and SHA-256 checksums
	// so, without hashing the bytes a second time.
	Expect func(Sums) error
	// Checksum, when not nil, is called once Expect has passed: a checksum
	// to keep with the object (ObjectInfo.Checksum), "" for none.
	Checksum func() string
	// MaxBytes, when positive, bounds this object below the service's
	// limit (a POST Object policy's content-length-range).
	MaxBytes int64
	// etag overrides the computed ETag (multipart completion, copies).
	etag string
	// parts is the part sizes of a multipart completion (partsLayout).
	parts string
}

// Sums are what a put computes of a body: its SHA-256, always, and its
// MD5 with MD5ETag (nil otherwise).
type Sums struct{ MD5, SHA256 []byte }

// BucketStoredBytes is what the bucket's stream holds, in bytes: its
// objects, their infos, and the older infos kept for its triggers.
func (s *Service) BucketStoredBytes(ctx context.Context, name string) (uint64, error) {
	h, err := s.bucket(ctx, name)
	if err != nil {
		return 0, err
	}
	return storedBytes(ctx, h.stream, "bucket "+name)
}

// TableStoredBytes is what the table's stream holds, in bytes: its items
// and the revisions kept of them.
func (s *Service) TableStoredBytes(ctx context.Context, name string) (uint64, error) {
	h, err := s.table(ctx, name)
	if err != nil {
		return 0, err
	}
	return storedBytes(ctx, h.stream, "table "+name)
}

func storedBytes(ctx context.Context, stream jetstream.Stream, what string) (uint64, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return info.State.Bytes, nil
}

// PutBucket creates a bucket; an existing one is unchanged.
func (s *Service) PutBucket(ctx context.Context, name string) (*BucketDef, Change, error) {
	if err := ValidateBucketName(name); err != nil {
		return nil, "", err
	}
	if d, err := s.Bucket(name); err == nil {
		return d, Unchanged, nil
	}
	d := BucketDef{Name: name, Created: s.cfg.Now().UTC()}
	if _, err := s.st.ObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: StoreName(name), Description: "objects of bucket " + name,
		Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
	}); err != nil {
		return nil, "", fmt.Errorf("create bucket %s: %w", name, err)
	}
	stream := "OBJ_" + StoreName(name)
	left, err := s.leftovers(ctx, stream)
	if err != nil {
		return nil, "", fmt.Errorf("create bucket %s: %w", name, err)
	}
	b, _ := json.Marshal(&d)
	if _, err := s.meta.Create(ctx, keyBucket+name, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			got, gerr := s.Bucket(name)
			if gerr == nil {
				return got, Unchanged, nil
			}
			return nil, "", wrapf(ErrExists, "bucket %s was created concurrently", name)
		}
		return nil, "", fmt.Errorf("create bucket %s: %w", name, err)
	}
	if err := s.dropLeftovers(ctx, stream, left); err != nil {
		return nil, "", err
	}
	s.applyLocal(keyBucket+name, b)
	return &d, Created, nil
}

// Bucket returns a bucket's definition.
func (s *Service) Bucket(name string) (*BucketDef, error) {
	s.mu.RLock()
	d, ok := s.buckets[name]
	s.mu.RUnlock()
	if !ok {
		return nil, wrapf(ErrNoSuchBucket, "bucket %q", truncate(name, 80))
	}
	c := *d
	return &c, nil
}

// Buckets lists the buckets by name.
func (s *Service) Buckets() []BucketDef {
	s.mu.RLock()
	out := make([]BucketDef, 0, len(s.buckets))
	for _, d := range s.buckets {
		out = append(out, *d)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DeleteBucket removes a bucket; one that holds objects needs force.
func (s *Service) DeleteBucket(ctx context.Context, name string, force bool) error {
	if _, err := s.bucket(ctx, name); err != nil {
		return err
	}
	if !force {
		l, err := s.ListObjects(ctx, name, ListOptions{Limit: 1})
		if err != nil {
			return err
		}
		if len(l.Objects) > 0 || l.Truncated {
			return wrapf(ErrNotEmpty, "bucket %s is not empty: delete its objects first or force it (--force)", name)
		}
	}
	if err := s.meta.Delete(ctx, keyBucket+name); err != nil {
		return fmt.Errorf("delete bucket %s: %w", name, err)
	}
	s.applyLocal(keyBucket+name, nil)
	if err := s.js.DeleteObjectStore(ctx, StoreName(name)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return fmt.Errorf("delete bucket %s: %w", name, err)
	}
	return nil
}

func (s *Service) bucket(ctx context.Context, name string) (*bucketHandle, error) {
	s.mu.RLock()
	h, ok := s.stores[name]
	def := s.buckets[name]
	s.mu.RUnlock()
	if ok {
		return h, nil
	}
	if def == nil {
		return nil, wrapf(ErrNoSuchBucket, "bucket %q", truncate(name, 80))
	}
	if err := s.st.Replicate(ctx, "OBJ_"+StoreName(name)); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	obs, err := s.js.ObjectStore(ctx, StoreName(name))
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, wrapf(ErrNoSuchBucket, "bucket %q", name)
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	stream, err := s.js.Stream(ctx, "OBJ_"+StoreName(name))
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", name, err)
	}
	h = &bucketHandle{def: def, js: s.js, obs: obs, stream: stream, name: name, store: StoreName(name), log: s.log, thisRun: &s.thisRun, slots: s.slots, maxWait: s.cfg.OrphanAge / 2, purges: s.purges}
	s.mu.Lock()
	if s.buckets[name] == def {
		s.stores[name] = h
	}
	s.mu.Unlock()
	return h, nil
}

// ValidateObjectKey checks an object key: 1 to 1024 bytes of UTF-8.
func ValidateObjectKey(key string) error {
	if key == "" || len(key) > MaxObjectKeyBytes || !utf8.ValidString(key) || strings.ContainsRune(key, 0) {
		return invalid("key", "an object key is 1 to %d bytes of UTF-8 without NUL", MaxObjectKeyBytes)
	}
	return nil
}

func infoOf(bucket string, oi *jetstream.ObjectInfo) *ObjectInfo {
	o := &ObjectInfo{
		Bucket: bucket, Key: oi.Name, Size: int64(oi.Size), Modified: oi.ModTime.UTC(),
		Digest: oi.Digest, nuid: oi.NUID, chunks: oi.Chunks,
	}
	for k, v := range oi.Metadata {
		switch {
		case k == metaETag:
			o.ETag = v
		case k == metaContentType:
			o.ContentType = v
		case k == metaParts:
			o.parts = v
		case k == metaChecksum:
			o.Checksum = v
		case k == metaChunkSeqs:
			o.chunkSeqs = v
		case strings.HasPrefix(k, metaUserPrefix):
			if o.Metadata == nil {
				o.Metadata = map[string]string{}
			}
			o.Metadata[k[len(metaUserPrefix):]] = v
		case strings.HasPrefix(k, metaHeaderPrefix):
			if o.Headers == nil {
				o.Headers = map[string]string{}
			}
			o.Headers[http.CanonicalHeaderKey(k[len(metaHeaderPrefix):])] = v
		}
	}
	if o.ETag == "" {
		// Written without an MD5 (or by another NATS client): the ETag is
		// the SHA-256 in hex, 64 digits, which no client takes for an MD5.
		if sum := o.SHA256(); sum != nil {
			o.ETag = hex.EncodeToString(sum)
		}
	}
	if o.ContentType == "" {
		o.ContentType = "application/octet-stream"
	}
	return o
}

// PutObject stores an object, streaming r: nothing is held in memory but a
// chunk. size is the expected size, or -1 when unknown; either way at most
// the node's object limit is accepted. A failed put leaves any previous
// object with the key in place.
func (s *Service) PutObject(ctx context.Context, bucket, key string, r io.Reader, size int64, opt PutObjectOptions) (info *ObjectInfo, err error) {
	defer s.ops.done(kindBucket, bucket, opPut, time.Now(), &err)
	if info, err = s.putObject(ctx, bucket, key, r, size, opt); err == nil {
		s.ops.bytesIn(bucket, info.Size)
	}
	return info, err
}

// putObject is PutObject, uncounted: copies and multipart completions
// store objects too.
func (s *Service) putObject(ctx context.Context, bucket, key string, r io.Reader, size int64, opt PutObjectOptions) (*ObjectInfo, error) {
	h, err := s.bucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	if err := ValidateObjectKey(key); err != nil {
		return nil, err
	}
	if size > s.cfg.MaxObjectBytes {
		return nil, wrapf(ErrTooLarge, "object is %d bytes, the limit is %d", size, s.cfg.MaxObjectBytes)
	}
	meta, err := objectMeta(opt)
	if err != nil {
		return nil, err
	}
	if opt.IfNoneMatch != "" && opt.IfNoneMatch != "*" {
		return nil, invalid("If-None-Match", "a write takes only If-None-Match: * (store only if the key holds no object)")
	}
	limit := s.cfg.MaxObjectBytes
	if opt.MaxBytes > 0 {
		limit = min(limit, opt.MaxBytes)
	}
	return h.put(ctx, key, r, size, meta, opt.MD5ETag && opt.etag == "", limit, &opt)
}

func objectMeta(opt PutObjectOptions) (map[string]string, error) {
	meta := map[string]string{}
	if opt.etag != "" {
		meta[metaETag] = opt.etag
	}
	if opt.parts != "" {
		meta[metaParts] = opt.parts
	}
	if opt.ContentType != "" {
		meta[metaContentType] = opt.ContentType
	}
	n := 0
	for k, v := range opt.Metadata {
		k = strings.ToLower(k)
		n += len(k) + len(v)
		if k == "" || !utf8.ValidString(k+v) {
			return nil, invalid("metadata", "metadata names and values are UTF-8, names non-empty")
		}
		meta[metaUserPrefix+k] = v
	}
	if n > MaxUserMetadataBytes {
		return nil, invalid("metadata", "user metadata is %d bytes, the limit is %d", n, MaxUserMetadataBytes)
	}
	for k, v := range opt.Headers {
		name := http.CanonicalHeaderKey(k)
		if !slices.Contains(api.ObjectHeaders, name) {
			return nil, invalid("headers", "%q is not a header objects keep: use %s", truncate(k, 40), strings.Join(api.ObjectHeaders, ", "))
		}
		if len(v) > maxStoredHeaderBytes || !validHeaderValue(v) {
			return nil, invalid("headers", "%s must be at most %d bytes of printable text", name, maxStoredHeaderBytes)
		}
		if v != "" {
			meta[metaHeaderPrefix+strings.ToLower(name)] = v
		}
	}
	return meta, nil
}

// maxStoredHeaderBytes bounds each stored header's value.
const maxStoredHeaderBytes = 1024

// HeadersOf picks the stored headers (api.ObjectHeaders) out of a request's headers.
func HeadersOf(h http.Header) map[string]string {
	var out map[string]string
	for _, name := range api.ObjectHeaders {
		if v := h.Get(name); v != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[name] = v
		}
	}
	return out
}

// validHeaderValue reports whether v may be sent as a header value:
// printable ASCII, tabs and spaces, or UTF-8 (as S3 accepts).
func validHeaderValue(v string) bool {
	for _, r := range v {
		if r < ' ' && r != '\t' || r == 0x7f {
			return false
		}
	}
	return utf8.ValidString(v)
}

// HeadObject returns an object's info.
func (s *Service) HeadObject(ctx context.Context, bucket, key string) (_ *ObjectInfo, err error) {
	defer s.ops.done(kindBucket, bucket, opHead, time.Now(), &err)
	h, err := s.bucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	if err := ValidateObjectKey(key); err != nil {
		return nil, err
	}
	return h.info(ctx, key)
}

func (h *bucketHandle) info(ctx context.Context, key string) (*ObjectInfo, error) {
	oi, err := h.obs.GetInfo(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, wrapf(ErrNoSuchKey, "%s/%s", h.name, truncate(key, 200))
	}
	if err != nil {
		return nil, fmt.Errorf("head %s/%s: %w", h.name, key, err)
	}
	if oi.Opts != nil && oi.Opts.Link != nil {
		return nil, fmt.Errorf("%s/%s is a link, which Nimbus does not serve: %w", h.name, key, ErrNoSuchKey)
	}
	return infoOf(h.name, oi), nil
}

// Range is a byte range of an object, resolved against its size.
type Range struct {
	Start, Length int64
}

// Object is an object being read.
type Object struct {
	Info *ObjectInfo
	// Body streams the requested bytes; the caller closes it.
	Body io.ReadCloser
	// Range is what Body holds; nil for the whole object.
	Range *Range
}

// GetObject opens an object for reading, whole or a range of it (see
// ParseRange). The bytes stream from JetStream a few chunks at a time.
func (s *Service) GetObject(ctx context.Context, bucket, key string, rangeHeader string) (*Object, error) {
	return s.GetObjectIf(ctx, bucket, key, rangeHeader, nil)
}

// GetObjectIf is GetObject with a check of the object's info before any
// of its bytes are read (a conditional read: CheckConditions); an error
// from check is returned as it is.
func (s *Service) GetObjectIf(ctx context.Context, bucket, key string, rangeHeader string, check func(*ObjectInfo) error) (obj *Object, err error) {
	defer s.ops.done(kindBucket, bucket, opGet, time.Now(), &err)
	if obj, err = s.getObjectIf(ctx, bucket, key, rangeHeader, check); err == nil {
		obj.Body = s.ops.counted(bucket, obj.Body)
	}
	return obj, err
}

// getObjectIf is GetObjectIf, uncounted: copies read objects too.
func (s *Service) getObjectIf(ctx context.Context, bucket, key string, rangeHeader string, check func(*ObjectInfo) error) (*Object, error) {
	return s.getObjectRange(ctx, bucket, key, check, func(info *ObjectInfo) (*Range, error) {
		if rangeHeader == "" {
			return nil, nil
		}
		return ParseRange(rangeHeader, info.Size)
	})
}

// GetObjectPart opens part n of an object, as S3's GetObject with
// partNumber does (ObjectInfo.Part), and says how many parts it has.
func (s *Service) GetObjectPart(ctx context.Context, bucket, key string, n int, check func(*ObjectInfo) error) (obj *Object, parts int, err error) {
	defer s.ops.done(kindBucket, bucket, opGet, time.Now(), &err)
	obj, err = s.getObjectRange(ctx, bucket, key, check, func(info *ObjectInfo) (*Range, error) {
		rng, count, err := info.Part(n)
		parts = count
		return &rng, err
	})
	if err == nil {
		obj.Body = s.ops.counted(bucket, obj.Body)
	}
	return obj, parts, err
}

// getObjectRange opens the range of an object that rangeOf picks from its
// info (nil: all of it), once check has passed.
func (s *Service) getObjectRange(ctx context.Context, bucket, key string, check func(*ObjectInfo) error, rangeOf func(*ObjectInfo) (*Range, error)) (*Object, error) {
	h, err := s.bucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	if err := ValidateObjectKey(key); err != nil {
		return nil, err
	}
	info, err := h.info(ctx, key)
	if err != nil {
		return nil, err
	}
	if check != nil {
		if err := check(info); err != nil {
			return nil, err
		}
	}
	rng, err := rangeOf(info)
	if err != nil {
		return nil, err
	}
	start, length := int64(0), info.Size
	if rng != nil {
		start, length = rng.Start, rng.Length
	}
	body, err := h.open(ctx, info, start, length)
	if err != nil {
		return nil, err
	}
	return &Object{Info: info, Body: body, Range: rng}, nil
}

// DeleteObject removes an object; an absent one is not an error (as in S3).
func (s *Service) DeleteObject(ctx context.Context, bucket, key string) (err error) {
	return s.DeleteObjectIf(ctx, bucket, key, "")
}

// DeleteObjectIf is DeleteObject made conditional, as S3's If-Match on a
// delete: ifMatch "*" deletes only an object that exists, a list of
// ETags (quotes optional) only an object with one of them. With a
// condition, a key with no object is ErrNoSuchKey and an object with
// another ETag ErrPreconditionFailed. The check and the delete are one
// step: a write between them makes the delete check again.
func (s *Service) DeleteObjectIf(ctx context.Context, bucket, key, ifMatch string) (err error) {
	defer s.ops.done(kindBucket, bucket, opDelete, time.Now(), &err)
	return s.deleteObject(ctx, bucket, DeleteOne{Key: key, IfMatch: ifMatch})
}

// DeleteOne names an object to delete, with DeleteObjectIf's If-Match.
type DeleteOne struct{ Key, IfMatch string }

// deleteObject is DeleteObjectIf, uncounted: DeleteObjects counts once.
func (s *Service) deleteObject(ctx context.Context, bucket string, o DeleteOne) error {
	h, err := s.bucket(ctx, bucket)
	if err != nil {
		return err
	}
	if err := ValidateObjectKey(o.Key); err != nil {
		return err
	}
	var check func(*jetstream.ObjectInfo) error
	if o.IfMatch != "" {
		check = func(old *jetstream.ObjectInfo) error {
			if old == nil || old.Deleted {
				return wrapf(ErrNoSuchKey, "If-Match %s but %s/%s holds no object", truncate(o.IfMatch, 100), bucket, truncate(o.Key, 200))
			}
			if etag := infoOf(bucket, old).ETag; !etagIn(o.IfMatch, etag, false) {
				return wrapf(ErrPreconditionFailed, "If-Match %s but the object's ETag is %q", truncate(o.IfMatch, 100), etag)
			}
			return nil
		}
	}
	if err := h.remove(ctx, o.Key, check); err != nil {
		return fmt.Errorf("delete %s/%s: %w", bucket, o.Key, err)
	}
	return nil
}

// DeleteObjects removes objects, deleteConcurrency at a time (each is
// three round trips to JetStream), and returns each one's error in the
// order given: nil when it was deleted or, without a condition, was not
// there.
func (s *Service) DeleteObjects(ctx context.Context, bucket string, objs []DeleteOne) (_ []error, err error) {
	defer s.ops.done(kindBucket, bucket, opDeleteObjects, time.Now(), &err)
	if _, err := s.bucket(ctx, bucket); err != nil {
		return nil, err
	}
	errs := make([]error, len(objs))
	parallel(len(objs), deleteConcurrency, func(i int) { errs[i] = s.deleteObject(ctx, bucket, objs[i]) })
	return errs, nil
}

// deleteConcurrency bounds the deletes of one DeleteObjects in flight.
const deleteConcurrency = 16

// CopyOptions are a copy's options beyond its source and destination.
type CopyOptions struct {
	// Replace, when not nil, gives the copy its own content type, metadata
	// and stored headers; without, it keeps the source's.
	Replace *PutObjectOptions
	// Check, when not nil, vets the source's info before its bytes are
	// read (S3's x-amz-copy-source-if-* conditions: CopySourceConditions).
	Check func(*ObjectInfo) error
	// IfNoneMatch and IfMatch make the copy's write conditional on the
	// destination, as a put's (PutObjectOptions).
	IfNoneMatch, IfMatch string
}

// CopyObject copies an object, streaming it through the node.
func (s *Service) CopyObject(ctx context.Context, srcBucket, srcKey, dstBucket, dstKey string, copt CopyOptions) (_ *ObjectInfo, err error) {
	defer s.ops.done(kindBucket, dstBucket, opCopy, time.Now(), &err)
	src, err := s.getObjectIf(ctx, srcBucket, srcKey, "", copt.Check)
	if err != nil {
		return nil, err
	}
	defer src.Body.Close()
	opt := PutObjectOptions{ContentType: src.Info.ContentType, Metadata: src.Info.Metadata, Headers: src.Info.Headers}
	if copt.Replace != nil {
		opt = *copt.Replace
	}
	opt.IfNoneMatch, opt.IfMatch = copt.IfNoneMatch, copt.IfMatch
	// The same bytes have the same checksum; not a multipart object's
	// checksum of its parts' checksums, since the copy has no parts.
	if c := src.Info.Checksum; c != "" && !strings.Contains(c, "-") {
		opt.Checksum = func() string { return c }
	}
	// The same bytes have the same MD5 or SHA-256: a copy keeps the
	// source's ETag (an MD5 is stored, the SHA-256 derived again from the
	// copy's digest). One of S3's multipart form ("<md5>-<parts>") names
	// the parts, which the copy does not have: it gets an MD5, as in S3.
	switch {
	case strings.Contains(src.Info.ETag, "-"):
		opt.MD5ETag = true
	case src.Info.ETag != hex.EncodeToString(src.Info.SHA256()):
		opt.etag = src.Info.ETag
	}
	return s.putObject(ctx, dstBucket, dstKey, src.Body, src.Info.Size, opt)
}

// ListOptions select objects of a bucket.
type ListOptions struct {
	Prefix    string
	Delimiter string
	// After lists keys after this one (S3's StartAfter and continuation).
	After string
	// Limit bounds keys plus common prefixes (default and maximum 1000).
	Limit int
}

// ObjectList is a page of a listing.
type ObjectList struct {
	Objects        []ObjectInfo `json:"objects"`
	CommonPrefixes []string     `json:"common_prefixes,omitempty"`
	// Truncated says there is more; Next is the key to continue after.
	Truncated bool   `json:"truncated"`
	Next      string `json:"next,omitempty"`
}

// ListObjects lists objects in key order. A page costs a seek in the
// bucket's name index (objindex.go) and the info reads of what it returns;
// without the index (it could not start or catch up), every page reads the
// info of every object in the bucket.
func (s *Service) ListObjects(ctx context.Context, bucket string, opt ListOptions) (_ *ObjectList, err error) {
	defer s.ops.done(kindBucket, bucket, opList, time.Now(), &err)
	h, err := s.bucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	if opt.Limit <= 0 || opt.Limit > 1000 {
		opt.Limit = 1000
	}
	if x := h.indexed(ctx); x != nil {
		keys, prefixes, more, next := x.page(opt)
		infos, err := h.infos(ctx, keys)
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", bucket, err)
		}
		return &ObjectList{Objects: infos, CommonPrefixes: prefixes, Truncated: more, Next: next}, nil
	}
	return listAll(ctx, h, opt)
}

// listAll lists a page by reading the info of every object in the bucket.
func listAll(ctx context.Context, h *bucketHandle, opt ListOptions) (*ObjectList, error) {
	bucket := h.name
	infos, err := h.obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, fmt.Errorf("list %s: %w", bucket, err)
	}
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	out := &ObjectList{Objects: []ObjectInfo{}}
	lastPrefix := ""
	for _, oi := range infos {
		k := oi.Name
		if !strings.HasPrefix(k, opt.Prefix) || k <= opt.After {
			continue
		}
		if opt.Delimiter != "" {
			if i := strings.Index(k[len(opt.Prefix):], opt.Delimiter); i >= 0 {
				cp := k[:len(opt.Prefix)+i+len(opt.Delimiter)]
				if cp == lastPrefix || cp <= opt.After {
					continue
				}
				if len(out.Objects)+len(out.CommonPrefixes) == opt.Limit {
					out.Truncated = true
					return out, nil
				}
				lastPrefix = cp
				out.CommonPrefixes = append(out.CommonPrefixes, cp)
				out.Next = cp + listCursorPastPrefix
				continue
			}
		}
		if len(out.Objects)+len(out.CommonPrefixes) == opt.Limit {
			out.Truncated = true
			return out, nil
		}
		out.Objects = append(out.Objects, *infoOf(bucket, oi))
		out.Next = k
	}
	out.Next = ""
	return out, nil
}

// EncodeListCursor and DecodeListCursor make a listing's Next opaque.
func EncodeListCursor(next string) string {
	if next == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(next))
}

// DecodeListCursor reads a cursor made by EncodeListCursor.
func DecodeListCursor(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !utf8.Valid(b) {
		return "", invalid("cursor", "malformed cursor: pass back the cursor of the previous page unchanged")
	}
	return string(b), nil
}
