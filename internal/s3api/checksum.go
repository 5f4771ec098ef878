package s3api

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/nimbus-run/nimbus/internal/data"
)

// Integrity checks of uploads, as S3 makes them: a PutObject or UploadPart
// may carry the MD5 of its body (Content-MD5) and one checksum
// (x-amz-checksum-<algorithm>), as a header or, with aws-chunked, as a
// trailer after the last chunk (named in x-amz-trailer). The AWS SDKs send
// a CRC32 trailer with every upload by default. A sum that does not match
// fails the put before the object is visible, so it stores nothing (the
// data layer purges the chunks), and the client gets 400 BadDigest. A
// malformed sum is refused before a byte is read.
//
// The data layer hashes every body with SHA-256, and S3 uploads with MD5
// for their ETag: those sums are checked from its data.Sums (Expect), and
// so is a signed payload's x-amz-content-sha256, which the signature
// check would otherwise hash as it streams (hashingReader). Only the
// other algorithms hash the body here, as it streams through.

// checksumAlgorithms are S3's, by header suffix, with their names in S3's
// messages. MD5 and SHA-256 come from the data layer (new is nil).
var checksumAlgorithms = map[string]struct {
	label string
	size  int // bytes
	new   func() hash.Hash
}{
	"crc32":     {"CRC32", 4, func() hash.Hash { return crc32.NewIEEE() }},
	"crc32c":    {"CRC32C", 4, func() hash.Hash { return crc32.New(crc32.MakeTable(crc32.Castagnoli)) }},
	"crc64nvme": {"CRC64NVME", 8, func() hash.Hash { return crc64.New(crc64NVME) }},
	"sha1":      {"SHA1", sha1.Size, sha1.New},
	"sha256":    {"SHA256", sha256.Size, nil},
}

// isCRC says whether the algorithm labelled so is a CRC, whose checksum of
// a multipart object may be of its whole bytes (FULL_OBJECT).
func isCRC(label string) bool { return label != "SHA1" && label != "SHA256" }

// crc64NVME is CRC-64/NVME (polynomial 0xad93d23594c93659, reflected),
// which hash/crc64 computes from the reversed polynomial.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

const checksumHeaderPrefix = "X-Amz-Checksum-"

// Refusals of malformed checksum headers, for uploads and completions.
var errMultipleChecksums = newErr(http.StatusBadRequest, "InvalidRequest", "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.")

func unknownChecksum(name string) error {
	return newErr(http.StatusBadRequest, "InvalidRequest", "%s is not a checksum S3 knows: use x-amz-checksum- and crc32, crc32c, crc64nvme, sha1 or sha256", truncate(name, 60))
}

func invalidChecksumValue(name string) error {
	return newErr(http.StatusBadRequest, "InvalidRequest", "Value for %s header is invalid.", strings.ToLower(name))
}

// isChecksumValue says whether a (canonical) header carries a checksum
// value, x-amz-checksum-<algorithm>, rather than one of the other
// x-amz-checksum-* headers (mode, type, algorithm).
func isChecksumValue(name string) bool {
	switch name {
	case "X-Amz-Checksum-Mode", "X-Amz-Checksum-Type", "X-Amz-Checksum-Algorithm":
		return false
	}
	return strings.HasPrefix(name, checksumHeaderPrefix)
}

// digestCheck is one sum to check: want is known from a header, or comes
// from the trailer named header when the body ends.
type digestCheck struct {
	header  string // the header (or trailer) it came from, canonical
	label   string // for messages: "Content-MD5", "CRC32", ...
	size    int
	h       hash.Hash // nil: the data layer's sum
	want    []byte
	trailer bool
	// computed: nothing was declared to check; the sum is computed to be
	// kept (an upload's checksum, uploadchecksum.go), want set to it.
	computed bool
}

// upload is the sums an upload declares.
type upload struct {
	checks  []*digestCheck
	sum     *digestCheck   // the x-amz-checksum-*, echoed in the response
	chunked *chunkedReader // whose trailers hold trailer sums
	// payload is the SHA-256 a signed payload declared (x-amz-content-sha256):
	// the data layer's sum is checked against it, rather than hashing the
	// body a second time as it streams (hashingReader).
	payload []byte
}

// checkUpload reads the sums r declares and returns the body to read,
// which checks the sums the data layer does not compute at its end, and
// the upload, whose expect checks the others. A body without declared sums
// (nor a signed payload's SHA-256) is returned as is, with a nil upload.
func checkUpload(r *http.Request, body io.Reader) (io.Reader, *upload, error) {
	u := &upload{}
	u.chunked, _ = body.(*chunkedReader)
	if h, ok := body.(*hashingReader); ok {
		if want, err := hex.DecodeString(h.want); err == nil && len(want) == sha256.Size {
			body, u.payload = h.r, want
		}
	}
	if v := r.Header.Get("Content-MD5"); v != "" {
		want, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(want) != md5.Size {
			return nil, nil, newErr(http.StatusBadRequest, "InvalidDigest", "The Content-MD5 you specified was invalid.")
		}
		u.checks = append(u.checks, &digestCheck{header: "Content-Md5", label: "Content-MD5", size: md5.Size, want: want})
	}
	add := func(name string, trailer bool) error {
		name = http.CanonicalHeaderKey(name)
		suffix, found := strings.CutPrefix(name, checksumHeaderPrefix)
		alg, ok := checksumAlgorithms[strings.ToLower(suffix)]
		if !found || !ok {
			return unknownChecksum(name)
		}
		if u.sum != nil {
			return errMultipleChecksums
		}
		u.sum = &digestCheck{header: name, label: alg.label, size: alg.size, trailer: trailer}
		if alg.new != nil {
			u.sum.h = alg.new()
		}
		u.checks = append(u.checks, u.sum)
		return nil
	}
	for name, v := range r.Header {
		if !isChecksumValue(name) {
			continue
		}
		if err := add(name, false); err != nil {
			return nil, nil, err
		}
		want, err := base64.StdEncoding.DecodeString(v[0])
		if err != nil || len(want) != u.sum.size {
			return nil, nil, invalidChecksumValue(name)
		}
		u.sum.want = want
	}
	if t := strings.TrimSpace(r.Header.Get("X-Amz-Trailer")); t != "" {
		if u.chunked == nil {
			return nil, nil, newErr(http.StatusBadRequest, "InvalidRequest", "x-amz-trailer needs an aws-chunked body (x-amz-content-sha256: STREAMING-...)")
		}
		if err := add(t, true); err != nil {
			return nil, nil, err
		}
	}
	if len(u.checks) == 0 && u.payload == nil {
		return body, nil, nil
	}
	if u.sum != nil && u.sum.h != nil {
		return &digestReader{r: body, u: u}, u, nil
	}
	return body, u, nil
}

// expect checks the sums the data layer computed (data.PutObjectOptions.Expect).
func (u *upload) expect(s data.Sums) error {
	if u == nil {
		return nil
	}
	if u.payload != nil && !bytes.Equal(s.SHA256, u.payload) {
		return errContentSHA256
	}
	for _, c := range u.checks {
		if c.h != nil {
			continue // checked by digestReader
		}
		got := s.SHA256
		if c.label == "Content-MD5" {
			got = s.MD5
		}
		if err := u.verify(c, got); err != nil {
			return err
		}
	}
	return nil
}

// verify compares got with what c expects, reading a trailer's value now
// that the body has ended.
func (u *upload) verify(c *digestCheck, got []byte) error {
	if c.trailer {
		v := u.chunked.trailer[strings.ToLower(c.header)]
		want, err := base64.StdEncoding.DecodeString(v)
		if v == "" || err != nil || len(want) != c.size {
			return newErr(http.StatusBadRequest, "InvalidRequest", "The trailer %s that x-amz-trailer announced is missing or invalid.", strings.ToLower(c.header))
		}
		c.want = want
	}
	if c.computed {
		c.want = got
		return nil
	}
	if bytes.Equal(got, c.want) {
		return nil
	}
	if c.label == "Content-MD5" {
		return newErr(http.StatusBadRequest, "BadDigest", "The Content-MD5 you specified did not match what we received.")
	}
	return newErr(http.StatusBadRequest, "BadDigest", "The %s you specified did not match the calculated checksum.", c.label)
}

// kept is the checked x-amz-checksum-* of an upload, as the object or
// part keeps it ("CRC32 <base64>", as partChecksums.String names it); "" without
// one.
func (u *upload) kept() string {
	if u == nil || u.sum == nil {
		return ""
	}
	return u.sum.label + " " + base64.StdEncoding.EncodeToString(u.sum.want)
}

// partChecksums are the checksum elements of a part in
// CompleteMultipartUpload and ListParts, by algorithm label.
type partChecksums struct {
	CRC32     string `xml:"ChecksumCRC32,omitempty"`
	CRC32C    string `xml:"ChecksumCRC32C,omitempty"`
	CRC64NVME string `xml:"ChecksumCRC64NVME,omitempty"`
	SHA1      string `xml:"ChecksumSHA1,omitempty"`
	SHA256    string `xml:"ChecksumSHA256,omitempty"`
}

// fields lists the elements by label.
func (c *partChecksums) fields() map[string]*string {
	return map[string]*string{"CRC32": &c.CRC32, "CRC32C": &c.CRC32C, "CRC64NVME": &c.CRC64NVME, "SHA1": &c.SHA1, "SHA256": &c.SHA256}
}

// String is the checksum a completion names for a part, in the form the
// part keeps (upload.kept): "" for none; several (which S3 refuses) are
// joined, so that they match no part.
func (c partChecksums) String() string {
	var out []string
	for label, v := range c.fields() {
		if *v != "" {
			out = append(out, label+" "+*v)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// checksumsOf are the elements of a part's kept checksum.
func checksumsOf(kept string) partChecksums {
	var c partChecksums
	label, v, ok := strings.Cut(kept, " ")
	if f := c.fields()[label]; ok && f != nil {
		*f = v
	}
	return c
}

// echo returns the checked checksum in the response, as S3 does.
func (u *upload) echo(w http.ResponseWriter) {
	if u != nil && u.sum != nil {
		w.Header().Set(u.sum.header, base64.StdEncoding.EncodeToString(u.sum.want))
	}
}

// digestReader hashes the body with the upload's checksum and checks it
// at the end.
type digestReader struct {
	r io.Reader
	u *upload
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.u.sum.h.Write(p[:n])
	if err == io.EOF {
		if verr := d.u.verify(d.u.sum, d.u.sum.h.Sum(nil)); verr != nil {
			return n, verr
		}
	}
	return n, err
}

// completion is what a CompleteMultipartUpload declares of the object it
// makes: its size (x-amz-mp-object-size), and one checksum, either of its
// bytes (x-amz-checksum-type FULL_OBJECT, CRC algorithms only) or of its
// parts' checksums (COMPOSITE, the form S3 gives as "<base64>-<parts>").
// Each is checked before the object is visible: a mismatch stores nothing
// and leaves the upload to be completed again.
type completion struct {
	size      int64  // -1: not declared
	typ       string // x-amz-checksum-type, "" if not given
	sum       *digestCheck
	newHash   func() hash.Hash
	composite bool
	parts     int // the -N of a composite value, 0 if it had none
}

func completionOf(h http.Header) (*completion, error) {
	c := &completion{size: -1}
	if v := h.Get("X-Amz-Mp-Object-Size"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return nil, newErr(http.StatusBadRequest, "InvalidRequest", "Value for x-amz-mp-object-size header is invalid.")
		}
		c.size = n
	}
	typ := strings.ToUpper(h.Get("X-Amz-Checksum-Type"))
	if typ != "" && typ != "FULL_OBJECT" && typ != "COMPOSITE" {
		return nil, newErr(http.StatusBadRequest, "InvalidRequest", "Value for x-amz-checksum-type header is invalid: use FULL_OBJECT or COMPOSITE.")
	}
	c.typ = typ
	for name, v := range h {
		if !isChecksumValue(name) {
			continue
		}
		alg, known := checksumAlgorithms[strings.ToLower(strings.TrimPrefix(name, checksumHeaderPrefix))]
		if !known {
			return nil, unknownChecksum(name)
		}
		if c.sum != nil {
			return nil, errMultipleChecksums
		}
		b64, n, hasN := strings.Cut(v[0], "-")
		want, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(want) != alg.size {
			return nil, invalidChecksumValue(name)
		}
		if hasN {
			if c.parts, err = strconv.Atoi(n); err != nil || c.parts < 1 {
				return nil, invalidChecksumValue(name)
			}
		}
		c.sum = &digestCheck{header: name, label: alg.label, size: alg.size, want: want}
		c.newHash = alg.new
		if c.newHash == nil {
			c.newHash = sha256.New
		}
		crc := isCRC(alg.label)
		c.composite = typ == "COMPOSITE" || hasN || (typ == "" && !crc)
		if !c.composite && !crc {
			return nil, newErr(http.StatusBadRequest, "InvalidRequest", "The FULL_OBJECT checksum type is for CRC algorithms: a %s checksum of a multipart object is COMPOSITE.", alg.label)
		}
	}
	return c, nil
}

// check vets the parts named, in order (data.CompleteOptions.Check): the
// object's size, and a composite checksum, made of the checksums the parts
// were uploaded with.
func (c *completion) check(parts []data.Part) error {
	if c.size >= 0 {
		var total int64
		for _, p := range parts {
			total += p.Size
		}
		if total != c.size {
			return newErr(http.StatusBadRequest, "InvalidRequest", "The x-amz-mp-object-size header, %d, is not the size of the parts named, %d.", c.size, total)
		}
	}
	if c.sum == nil || !c.composite {
		return nil
	}
	h := c.newHash()
	for _, p := range parts {
		label, v, _ := strings.Cut(p.Checksum, " ")
		raw, err := base64.StdEncoding.DecodeString(v)
		if label != c.sum.label || err != nil {
			return newErr(http.StatusBadRequest, "InvalidRequest", "Part %d was uploaded without a %s checksum: a composite checksum of the object is made of its parts'.", p.Number, c.sum.label)
		}
		h.Write(raw)
	}
	if c.parts != 0 && c.parts != len(parts) {
		return newErr(http.StatusBadRequest, "BadDigest", "The %s you specified names %d parts; the completion names %d.", c.sum.label, c.parts, len(parts))
	}
	return (&upload{}).verify(c.sum, h.Sum(nil))
}

// body checks a whole-object checksum as the assembled bytes stream into
// the object (data.CompleteOptions.Body).
func (c *completion) body(r io.Reader) io.Reader {
	if c.sum == nil || c.composite {
		return r
	}
	c.sum.h = c.newHash()
	return &digestReader{r: r, u: &upload{sum: c.sum, checks: []*digestCheck{c.sum}}}
}

// kept is the checksum the object keeps (data.CompleteOptions.Checksum),
// in the form a part's is kept: "CRC32 <base64>[-<parts>]".
func (c *completion) kept() string {
	if c.sum == nil {
		return ""
	}
	sums, _ := c.result()
	return sums.String()
}

// result is the checksum elements of the completion's answer: the
// checksum checked, and its type.
func (c *completion) result() (partChecksums, string) {
	var out partChecksums
	if c.sum == nil {
		return out, ""
	}
	v := base64.StdEncoding.EncodeToString(c.sum.want)
	typ := "FULL_OBJECT"
	if c.composite {
		typ = "COMPOSITE"
		if c.parts != 0 {
			v += "-" + strconv.Itoa(c.parts)
		}
	}
	*out.fields()[c.sum.label] = v
	return out, typ
}

// objectChecksum is the checksum S3 names for an object: the one it was
// uploaded with (COMPOSITE when it is a multipart upload's checksum of its
// parts' checksums), else the SHA-256 of its bytes; "" when it has none.
func objectChecksum(info *data.ObjectInfo) (label, value, typ string) {
	if label, v, ok := strings.Cut(info.Checksum, " "); ok {
		if strings.Contains(v, "-") {
			return label, v, "COMPOSITE"
		}
		return label, v, "FULL_OBJECT"
	}
	if sum := info.SHA256(); sum != nil {
		return "SHA256", base64.StdEncoding.EncodeToString(sum), "FULL_OBJECT"
	}
	return "", "", ""
}
