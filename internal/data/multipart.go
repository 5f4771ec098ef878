package data

import (
	"cmp"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Multipart uploads (S3's): each part is a temporary object of the shared
// object store nimbus_mpu, named "<upload id>/<part number>"; the upload
// itself is a record in the KV bucket nimbus_mpu_uploads. Completing streams
// the parts, in order, into the final object and removes them, so the bytes
// are copied once more on completion (docs/data.md). Both expire after
// UploadMaxAge, so abandoned uploads clean themselves up.
const (
	// UploadMaxAge is how long an unfinished upload and its parts live.
	UploadMaxAge = 7 * 24 * time.Hour
	// MinPartBytes is S3's minimum size of every part but the last.
	MinPartBytes = 5 << 20
	// MaxParts is S3's limit on parts per upload.
	MaxParts = 10000
)

// Upload is a multipart upload in progress.
type Upload struct {
	ID          string            `json:"id"`
	Bucket      string            `json:"bucket"`
	Key         string            `json:"key"`
	ContentType string            `json:"content_type,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
	Created     time.Time         `json:"created"`
	// Checksum is how the upload's object is to be checksummed, as its
	// creator declared it (the S3 API's "CRC32 COMPOSITE"); "" for no
	// checksum. The S3 API gives each part one of that algorithm and the
	// object its checksum.
	Checksum string `json:"checksum,omitempty"`
}

// Part is an uploaded part.
type Part struct {
	Number   int       `json:"number"`
	ETag     string    `json:"etag"`
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	// Checksum is the checksum the part was uploaded with, once checked,
	// as the caller put it (PartOptions.Checksum); "" if none.
	Checksum string `json:"checksum,omitempty"`
}

// PartOptions are an UploadPart's checks.
type PartOptions struct {
	// Expect checks the part's sums, as PutObjectOptions.Expect does.
	Expect func(Sums) error
	// Checksum, called once Expect has passed, is the checksum to keep
	// with the part (the S3 API's "CRC32 <base64>"): CompleteUpload
	// compares it with the one the completion names for the part.
	Checksum func() string
}

// metaChecksum holds a part's or an object's Checksum in its info.
const metaChecksum = "checksum"

func (s *Service) startUploads(ctx context.Context) (err error) {
	s.uploads, err = s.st.ObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: UploadsBucket, Description: "parts of multipart uploads in progress",
		TTL: UploadMaxAge, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("data: uploads: %w", err)
	}
	if s.uploadsStr, err = s.js.Stream(ctx, "OBJ_"+UploadsBucket); err != nil {
		return fmt.Errorf("data: uploads: %w", err)
	}
	// No trigger reads the parts, so a part uploaded again replaces the
	// earlier one's info at once (objhistory.go).
	s.partsH = &bucketHandle{js: s.js, obs: s.uploads, stream: s.uploadsStr, name: UploadsBucket, store: UploadsBucket, log: s.log, slots: s.slots, maxWait: s.cfg.OrphanAge / 2, purges: s.purges}
	s.partsH.hist.floor = math.MaxUint64
	s.uploadsKV, err = s.st.KV(ctx, jetstream.KeyValueConfig{
		Bucket: UploadsKV, Description: "multipart uploads in progress",
		TTL: UploadMaxAge, Storage: jetstream.FileStorage, Replicas: s.cfg.Replicas,
	})
	if err != nil {
		return fmt.Errorf("data: uploads: %w", err)
	}
	return nil
}

// CreateUpload starts a multipart upload.
func (s *Service) CreateUpload(ctx context.Context, bucket, key string, opt PutObjectOptions, checksum string) (_ *Upload, err error) {
	defer s.ops.done(kindBucket, bucket, opCreateUpload, time.Now(), &err)
	if _, err := s.bucket(ctx, bucket); err != nil {
		return nil, err
	}
	if err := ValidateObjectKey(key); err != nil {
		return nil, err
	}
	if _, err := objectMeta(opt); err != nil {
		return nil, err
	}
	var id [16]byte
	rand.Read(id[:])
	u := &Upload{ID: hex.EncodeToString(id[:]), Bucket: bucket, Key: key, ContentType: opt.ContentType, Metadata: opt.Metadata, Headers: opt.Headers,
		Created: s.cfg.Now().UTC(), Checksum: checksum}
	b, _ := json.Marshal(u)
	if _, err := s.uploadsKV.Create(ctx, u.ID, b); err != nil {
		return nil, fmt.Errorf("create upload: %w", err)
	}
	return u, nil
}

// Upload reads an upload in progress of bucket and key: ErrNoSuchUpload
// if there is none with that id.
func (s *Service) Upload(ctx context.Context, bucket, key, id string) (*Upload, error) {
	return s.upload(ctx, bucket, key, id)
}

// UploadOf reads an upload in progress into bucket by its id alone (the
// node's HTTP API names uploads so): ErrNoSuchUpload if there is none.
func (s *Service) UploadOf(ctx context.Context, bucket, id string) (*Upload, error) {
	u, err := s.readUpload(ctx, id)
	if err == nil && u.Bucket != bucket {
		return nil, wrapf(ErrNoSuchUpload, "upload %s is not into bucket %s", id, bucket)
	}
	return u, err
}

// upload reads an upload record and checks it belongs to bucket and key.
func (s *Service) upload(ctx context.Context, bucket, key, id string) (*Upload, error) {
	u, err := s.readUpload(ctx, id)
	if err == nil && (u.Bucket != bucket || u.Key != key) {
		return nil, wrapf(ErrNoSuchUpload, "upload %s is not for %s/%s", id, bucket, truncate(key, 200))
	}
	return u, err
}

func (s *Service) readUpload(ctx context.Context, id string) (*Upload, error) {
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return nil, wrapf(ErrNoSuchUpload, "upload %q", truncate(id, 40))
	}
	e, err := s.uploadsKV.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, wrapf(ErrNoSuchUpload, "upload %s", id)
	}
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	var u Upload
	if err := json.Unmarshal(e.Value(), &u); err != nil {
		return nil, fmt.Errorf("upload %s: %w", id, err)
	}
	return &u, nil
}

func partName(id string, n int) string { return id + "/" + strconv.Itoa(n) }

// UploadPart stores one part (1 to 10000) and returns its ETag. A part
// uploaded again replaces the earlier one.
func (s *Service) UploadPart(ctx context.Context, bucket, key, id string, number int, r io.Reader, size int64, opt PartOptions) (_ *Part, err error) {
	defer s.ops.done(kindBucket, bucket, opUploadPart, time.Now(), &err)
	if _, err := s.upload(ctx, bucket, key, id); err != nil {
		return nil, err
	}
	if number < 1 || number > MaxParts {
		return nil, invalid("partNumber", "%d is out of range: use 1 to %d", number, MaxParts)
	}
	// A part's ETag is its MD5: the multipart ETag is made of them. The
	// put adds the checksum to meta.
	meta := map[string]string{}
	info, err := s.partsH.put(ctx, partName(id, number), r, size, meta, true, s.cfg.MaxObjectBytes, &PutObjectOptions{Expect: opt.Expect, Checksum: opt.Checksum})
	if err != nil {
		return nil, err
	}
	s.ops.bytesIn(bucket, info.Size)
	return &Part{Number: number, ETag: info.ETag, Size: info.Size, Modified: info.Modified, Checksum: meta[metaChecksum]}, nil
}

// Parts lists an upload's parts by number.
func (s *Service) Parts(ctx context.Context, bucket, key, id string) ([]Part, error) {
	if _, err := s.upload(ctx, bucket, key, id); err != nil {
		return nil, err
	}
	return s.parts(ctx, id)
}

// parts lists an upload's parts, through the uploads store's name index:
// the parts' names ("<id>/<n>") are base64 in their subjects, so no
// subject filter selects one upload's, and reading every part's info
// cost 31-44 ms for one upload's among 5,000 parts in progress.
func (s *Service) parts(ctx context.Context, id string) ([]Part, error) {
	h := s.partsH
	var infos []ObjectInfo
	if x := h.indexed(ctx); x != nil {
		opt := ListOptions{Prefix: id + "/", Limit: 1000}
		for {
			names, _, more, next := x.page(opt)
			page, err := h.infos(ctx, names)
			if err != nil {
				return nil, fmt.Errorf("upload %s: parts: %w", id, err)
			}
			infos = append(infos, page...)
			if !more {
				break
			}
			opt.After = next
		}
	} else {
		l, err := listAll(ctx, h, ListOptions{Prefix: id + "/", Limit: MaxParts + 1})
		if err != nil {
			return nil, fmt.Errorf("upload %s: parts: %w", id, err)
		}
		infos = l.Objects
	}
	var out []Part
	for _, info := range infos {
		n, err := strconv.Atoi(strings.TrimPrefix(info.Key, id+"/"))
		if err != nil {
			continue
		}
		out = append(out, Part{Number: n, ETag: info.ETag, Size: info.Size, Modified: info.Modified, Checksum: info.Checksum})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// CompletePart names a part to assemble, with the ETag its upload
// returned and, optionally, its checksum (as Part.Checksum).
type CompletePart struct {
	Number   int
	ETag     string
	Checksum string
}

// CompleteOptions are a completion's conditions and checks.
type CompleteOptions struct {
	// IfNoneMatch and IfMatch make the completion's write conditional, as
	// a put's (PutObjectOptions).
	IfNoneMatch, IfMatch string
	// Check, when not nil, vets the parts named, in their order, before
	// they are assembled (S3's x-amz-mp-object-size, and the checksum of
	// the parts' checksums).
	Check func([]Part) error
	// Body, when not nil, wraps the assembled bytes on their way into the
	// object (S3's checksum of the whole object): an error it returns
	// fails the completion.
	Body func(io.Reader) io.Reader
	// Checksum is the object's checksum to keep, as PutObjectOptions'.
	Checksum func() string
}

// CompleteUpload assembles the parts, in the order given (ascending part
// numbers), into the object, and ends the upload. The ETag is S3's: the
// MD5 of the parts' MD5s, a dash, and the number of parts. A completion
// refused (by opt's conditions or checks) stores nothing and leaves the
// upload to be completed again.
func (s *Service) CompleteUpload(ctx context.Context, bucket, key, id string, want []CompletePart, opt CompleteOptions) (_ *ObjectInfo, err error) {
	defer s.ops.done(kindBucket, bucket, opCompleteUpload, time.Now(), &err)
	u, err := s.upload(ctx, bucket, key, id)
	if err != nil {
		return nil, err
	}
	if len(want) == 0 {
		return nil, invalid("parts", "name at least one part")
	}
	have, err := s.parts(ctx, id)
	if err != nil {
		return nil, err
	}
	byNum := map[int]Part{}
	for _, p := range have {
		byNum[p.Number] = p
	}
	sum := md5.New()
	var total int64
	for i, w := range want {
		p, ok := byNum[w.Number]
		if !ok || strings.Trim(w.ETag, `"`) != p.ETag {
			return nil, invalid("parts", "part %d was not uploaded, or its ETag does not match (InvalidPart)", w.Number)
		}
		if w.Checksum != "" && w.Checksum != p.Checksum {
			was := "no checksum"
			if p.Checksum != "" {
				was = p.Checksum
			}
			return nil, invalid("parts", "part %d: the checksum named, %s, is not the one it was uploaded with, %s (InvalidPart)", w.Number, truncate(w.Checksum, 80), was)
		}
		if i > 0 && w.Number <= want[i-1].Number {
			return nil, invalid("parts", "parts must be listed in ascending order (InvalidPartOrder)")
		}
		if i < len(want)-1 && p.Size < MinPartBytes {
			return nil, invalid("parts", "part %d is %d bytes; every part but the last must be at least %d (EntityTooSmall)", w.Number, p.Size, MinPartBytes)
		}
		b, _ := hex.DecodeString(p.ETag)
		sum.Write(b)
		total += p.Size
	}
	etag := hex.EncodeToString(sum.Sum(nil)) + "-" + strconv.Itoa(len(want))
	sizes := make([]int64, len(want))
	named := make([]Part, len(want))
	for i, w := range want {
		named[i] = byNum[w.Number]
		sizes[i] = named[i].Size
	}
	if opt.Check != nil {
		if err := opt.Check(named); err != nil {
			return nil, err
		}
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ph := s.partsH
		for _, w := range want {
			info, err := ph.info(ctx, partName(id, w.Number))
			if err == nil && info.ETag != byNum[w.Number].ETag {
				// Sent again since the parts were checked: its bytes
				// are not the ones the ETag was made of.
				err = invalid("parts", "part %d was sent again while the upload was being completed: complete it again, naming the part's new ETag %s (InvalidPart)", w.Number, info.ETag)
			}
			if err == nil {
				var r io.ReadCloser
				if r, err = ph.open(ctx, info, 0, info.Size); err == nil {
					_, err = io.Copy(pw, r)
					r.Close()
				}
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	var body io.Reader = pr
	if opt.Body != nil {
		body = opt.Body(pr)
	}
	info, err := s.putObject(ctx, bucket, key, body, total, PutObjectOptions{ContentType: u.ContentType, Metadata: u.Metadata, Headers: u.Headers, etag: etag,
		parts: partsLayout(sizes), IfNoneMatch: opt.IfNoneMatch, IfMatch: opt.IfMatch, Checksum: opt.Checksum})
	pr.CloseWithError(errors.New("assembly ended"))
	<-done
	if err != nil {
		return nil, err
	}
	s.dropUpload(context.WithoutCancel(ctx), id, have)
	return info, nil
}

// AbortUpload ends an upload and removes its parts.
func (s *Service) AbortUpload(ctx context.Context, bucket, key, id string) (err error) {
	defer s.ops.done(kindBucket, bucket, opAbortUpload, time.Now(), &err)
	if _, err := s.upload(ctx, bucket, key, id); err != nil {
		return err
	}
	parts, err := s.parts(ctx, id)
	if err != nil {
		return err
	}
	s.dropUpload(ctx, id, parts)
	return nil
}

// Uploads lists the uploads in progress into bucket, by key and then by
// the time they were created. It reads every upload record of the node's
// cluster: there are few, since completed and aborted uploads leave none
// and the others expire after UploadMaxAge.
func (s *Service) Uploads(ctx context.Context, bucket string) (_ []Upload, err error) {
	defer s.ops.done(kindBucket, bucket, opListUploads, time.Now(), &err)
	if _, err := s.bucket(ctx, bucket); err != nil {
		return nil, err
	}
	w, err := s.uploadsKV.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("list uploads: %w", err)
	}
	defer w.Stop() //nolint:errcheck // nothing to do about it
	var out []Upload
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e := <-w.Updates():
			if e == nil { // the records there were when the watch began
				slices.SortFunc(out, func(a, b Upload) int {
					return cmp.Or(strings.Compare(a.Key, b.Key), a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
				})
				return out, nil
			}
			var u Upload
			if err := json.Unmarshal(e.Value(), &u); err != nil {
				s.log.Warn("data: unreadable upload record", "upload", e.Key(), "err", err)
				continue
			}
			if u.Bucket == bucket {
				out = append(out, u)
			}
		}
	}
}

func (s *Service) dropUpload(ctx context.Context, id string, parts []Part) {
	for _, p := range parts {
		if err := s.uploads.Delete(ctx, partName(id, p.Number)); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			s.log.Warn("data: part not removed (it expires on its own)", "upload", id, "part", p.Number, "err", err)
		}
	}
	if err := s.uploadsKV.Purge(ctx, id); err != nil {
		s.log.Warn("data: upload record not removed (it expires on its own)", "upload", id, "err", err)
	}
}

// partsLayout writes the sizes of a multipart object's parts, in order,
// as runs: "8388608*6,2097152" is six parts of 8 MiB and one of 2 MiB.
// Clients upload parts of one size but the last, so it is short.
func partsLayout(sizes []int64) string {
	var b strings.Builder
	for i := 0; i < len(sizes); {
		j := i + 1
		for j < len(sizes) && sizes[j] == sizes[i] {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(sizes[i], 10))
		if j-i > 1 {
			b.WriteString("*" + strconv.Itoa(j-i))
		}
		i = j
	}
	return b.String()
}

// Multipart says whether the object was made by a multipart upload.
func (o *ObjectInfo) Multipart() bool { return o.parts != "" }

// Part returns where part n (from 1) of the object lies, and how many
// parts it has: those of its multipart upload, or one part, the whole
// object, for an object put whole (or copied). A part it does not have is
// ErrInvalidPart.
func (o *ObjectInfo) Part(n int) (rng Range, count int, err error) {
	if o.parts == "" {
		if n != 1 {
			return Range{}, 1, wrapf(ErrInvalidPart, "part %d of an object of one part", n)
		}
		return Range{Start: 0, Length: o.Size}, 1, nil
	}
	var start int64
	found := false
	for run := range strings.SplitSeq(o.parts, ",") {
		sizeText, times, repeated := strings.Cut(run, "*")
		size, err1 := strconv.ParseInt(sizeText, 10, 64)
		k := 1
		var err2 error
		if repeated {
			k, err2 = strconv.Atoi(times)
		}
		if err1 != nil || err2 != nil || size < 0 || k < 1 {
			return Range{}, 0, fmt.Errorf("object %s: unreadable part sizes %q", o.Key, truncate(o.parts, 80))
		}
		if !found && n > count && n <= count+k {
			rng, found = Range{Start: start + int64(n-count-1)*size, Length: size}, true
		}
		count += k
		start += int64(k) * size
	}
	if !found {
		return Range{}, count, wrapf(ErrInvalidPart, "part %d of an object of %d parts", n, count)
	}
	return rng, count, nil
}
