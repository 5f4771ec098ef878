package s3api

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
)

// AWS SDKs upload with "aws-chunked" content encoding when the payload
// hash is STREAMING-*: the body is a series of chunks,
//
//	hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n [trailers \r\n] \r\n
//
// where each signature chains from the previous one (the first from the
// request's own signature), and trailers (a checksum, and in a signed
// stream its signature, which chains from the last chunk's) may follow the
// last chunk. chunkedReader decodes the stream as it is
// read, verifying each chunk's signature when it has a signer, so a
// tampered chunk fails the upload before its bytes are stored.
//
// Specification: https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html

// errChunkSignature is a chunk whose signature does not match.
var errChunkSignature = errors.New("chunk signature does not match")

// chunkSigner signs chunks: the derived signing key, the request's date and
// scope, and the previous signature.
type chunkSigner struct {
	key     []byte
	amzDate string
	scope   string
	prev    string
}

const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// sign is the signature of a chunk whose SHA-256 is chunkHash.
func (s *chunkSigner) sign(chunkHash string) string {
	return s.hmac("AWS4-HMAC-SHA256-PAYLOAD\n" + s.amzDate + "\n" + s.scope + "\n" + s.prev + "\n" + emptySHA256 + "\n" + chunkHash)
}

// signTrailers is the signature of trailers whose canonical form (see
// trailers) hashes to trailersHash.
func (s *chunkSigner) signTrailers(trailersHash string) string {
	return s.hmac("AWS4-HMAC-SHA256-TRAILER\n" + s.amzDate + "\n" + s.scope + "\n" + s.prev + "\n" + trailersHash)
}

func (s *chunkSigner) hmac(stringToSign string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(stringToSign))
	return hex.EncodeToString(m.Sum(nil))
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSum([]byte("AWS4"+secret), date)
	k = hmacSum(k, region)
	k = hmacSum(k, service)
	return hmacSum(k, "aws4_request")
}

func hmacSum(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

// maxChunk bounds one chunk (SDKs send 64 KiB to a few MiB).
const maxChunk = 64 << 20

type chunkedReader struct {
	r      *bufio.Reader
	signer *chunkSigner // nil: signatures are not checked
	left   int64        // bytes left in the current chunk
	sum    hash.Hash    // of the current chunk, when signed
	sig    string       // the current chunk's declared signature
	done   bool
	err    error
	// trailer holds the trailers after the last chunk, by lower-case
	// name (checkedBody checks a checksum among them).
	trailer map[string]string
}

func newChunkedReader(r io.Reader, signer *chunkSigner) *chunkedReader {
	c := &chunkedReader{r: bufio.NewReaderSize(r, 64<<10), signer: signer}
	if signer != nil {
		c.sum = sha256.New()
	}
	return c
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.err != nil {
			return 0, c.err
		}
		if c.done {
			return 0, io.EOF
		}
		c.err = c.header()
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.sum != nil {
		c.sum.Write(p[:n])
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = err
		return n, err
	}
	if c.left == 0 {
		if err := c.endChunk(); err != nil {
			c.err = err
		}
	}
	return n, nil
}

// header reads a chunk header; the zero-length last chunk ends the body.
func (c *chunkedReader) header() error {
	line, err := c.line()
	if err != nil {
		return err
	}
	sizeHex, ext, _ := strings.Cut(line, ";")
	size, err := strconv.ParseInt(strings.TrimSpace(sizeHex), 16, 64)
	if err != nil || size < 0 || size > maxChunk {
		return fmt.Errorf("aws-chunked: bad chunk size %q", truncate(sizeHex, 20))
	}
	c.sig = ""
	if v, ok := strings.CutPrefix(strings.TrimSpace(ext), "chunk-signature="); ok {
		c.sig = v
	}
	if c.signer != nil && c.sig == "" {
		return fmt.Errorf("aws-chunked: %w: a chunk has no signature", errChunkSignature)
	}
	c.left = size
	if size == 0 {
		if err := c.verify(emptySHA256); err != nil {
			return err
		}
		c.done = true
		return c.trailers()
	}
	return nil
}

func (c *chunkedReader) endChunk() error {
	crlf := make([]byte, 2)
	if _, err := io.ReadFull(c.r, crlf); err != nil || !bytes.Equal(crlf, []byte("\r\n")) {
		return errors.New("aws-chunked: a chunk does not end with CRLF")
	}
	if c.sum != nil {
		h := hex.EncodeToString(c.sum.Sum(nil))
		c.sum.Reset()
		return c.verify(h)
	}
	return nil
}

func (c *chunkedReader) verify(chunkHash string) error {
	if c.signer == nil {
		return nil
	}
	want := c.signer.sign(chunkHash)
	if !hmac.Equal([]byte(want), []byte(c.sig)) {
		return errChunkSignature
	}
	c.signer.prev = want
	return nil
}

// trailerSignature is the trailer that signs the others in a signed
// stream (STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER).
const trailerSignature = "x-amz-trailer-signature"

// trailers reads the trailer lines after the last chunk up to the empty
// line into trailer. In a signed stream they must carry their signature:
// HMAC of "AWS4-HMAC-SHA256-TRAILER", the date, the scope, the last
// chunk's signature and the SHA-256 of the other trailers as
// "name:value\n" lines, in their order. Without that check a checksum
// trailer could be replaced on the way.
func (c *chunkedReader) trailers() error {
	var canonical strings.Builder
	for range 16 {
		line, err := c.line()
		if err == io.EOF || (err == nil && line == "") {
			return c.verifyTrailers(canonical.String())
		}
		if err != nil {
			return err
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("aws-chunked: trailer %q is not name:value", truncate(line, 40))
		}
		if c.trailer == nil {
			c.trailer = map[string]string{}
		}
		name, value = strings.ToLower(strings.TrimSpace(name)), strings.TrimSpace(value)
		c.trailer[name] = value
		if name != trailerSignature {
			canonical.WriteString(name + ":" + value + "\n")
		}
	}
	return errors.New("aws-chunked: too many trailers")
}

// verifyTrailers checks the trailer signature of a signed stream.
func (c *chunkedReader) verifyTrailers(canonical string) error {
	if c.signer == nil || canonical == "" {
		return nil
	}
	sig, ok := c.trailer[trailerSignature]
	if !ok {
		return fmt.Errorf("aws-chunked: %w: the trailers have no %s", errChunkSignature, trailerSignature)
	}
	sum := sha256.Sum256([]byte(canonical))
	if !hmac.Equal([]byte(c.signer.signTrailers(hex.EncodeToString(sum[:]))), []byte(sig)) {
		return fmt.Errorf("aws-chunked: %w: the trailer signature", errChunkSignature)
	}
	return nil
}

func (c *chunkedReader) line() (string, error) {
	b, err := c.r.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return "", errors.New("aws-chunked: header line too long")
	}
	if err != nil {
		if err == io.EOF && len(b) == 0 {
			return "", io.EOF
		}
		return "", io.ErrUnexpectedEOF
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// hashingReader checks a body against the SHA-256 its request signed.
type hashingReader struct {
	r    io.Reader
	sum  hash.Hash
	want string
}

var errContentSHA256 = errors.New("the body does not match x-amz-content-sha256")

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.sum.Write(p[:n])
	if err == io.EOF && hex.EncodeToString(h.sum.Sum(nil)) != h.want {
		return n, errContentSHA256
	}
	return n, err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func newSHA256() hash.Hash { return sha256.New() }
