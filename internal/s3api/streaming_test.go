package s3api_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// streamingPut is a PUT with an aws-chunked body as the AWS SDKs stream
// one (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html),
// written here from the specification rather than by an SDK, so that its
// signatures can be tampered with.
type streamingPut struct {
	mode    string // the x-amz-content-sha256 value
	chunks  [][]byte
	trailer bool // a CRC32 trailer
	// What to damage: "chunk" (a byte after signing), "trailer-signature",
	// "no-trailer-signature", "trailer-value" (another valid CRC32 under the
	// original's signature).
	tamper string
	// encoding is the Content-Encoding sent (default "aws-chunked").
	encoding string
}

func hmacHex(key []byte, s string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return hex.EncodeToString(m.Sum(nil))
}

func hmacRaw(key []byte, s string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func crc32Base64(b []byte) string {
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], crc32.ChecksumIEEE(b))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// do signs and sends the PUT of key with creds and returns the status and
// body of the answer.
func (p streamingPut) do(t *testing.T, endpoint, key string, creds aws.Credentials) (int, string) {
	t.Helper()
	signed := strings.HasPrefix(p.mode, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
	var payload []byte
	for _, c := range p.chunks {
		payload = append(payload, c...)
	}
	at := time.Now().UTC()
	date, amzDate := at.Format("20060102"), at.Format("20060102T150405Z")
	scope := date + "/us-east-1/s3/aws4_request"
	key4 := hmacRaw([]byte("AWS4"+creds.SecretAccessKey), date)
	for _, s := range []string{"us-east-1", "s3", "aws4_request"} {
		key4 = hmacRaw(key4, s)
	}
	// wire builds the body from the seed signature; its length does not
	// depend on the signatures' values.
	wire := func(seed string) []byte {
		var b bytes.Buffer
		prev := seed
		chunk := func(data []byte) {
			if !signed {
				fmt.Fprintf(&b, "%x\r\n", len(data))
			} else {
				prev = hmacHex(key4, strings.Join([]string{"AWS4-HMAC-SHA256-PAYLOAD", amzDate, scope, prev, sha256Hex(nil), sha256Hex(data)}, "\n"))
				fmt.Fprintf(&b, "%x;chunk-signature=%s\r\n", len(data), prev)
			}
			if len(data) > 0 {
				if p.tamper == "chunk" && bytes.Equal(data, p.chunks[len(p.chunks)-1]) {
					data = append([]byte{data[0] ^ 1}, data[1:]...)
				}
				b.Write(data)
				b.WriteString("\r\n")
			}
		}
		for _, c := range p.chunks {
			chunk(c)
		}
		chunk(nil)
		if p.trailer {
			canonical := "x-amz-checksum-crc32:" + crc32Base64(payload) + "\n"
			sent := canonical
			if p.tamper == "trailer-value" {
				sent = "x-amz-checksum-crc32:" + crc32Base64([]byte("something else")) + "\n"
			}
			b.WriteString(strings.ReplaceAll(sent, "\n", "\r\n"))
			if signed && p.tamper != "no-trailer-signature" {
				sig := hmacHex(key4, strings.Join([]string{"AWS4-HMAC-SHA256-TRAILER", amzDate, scope, prev, sha256Hex([]byte(canonical))}, "\n"))
				if p.tamper == "trailer-signature" {
					sig = strings.Repeat("0", 64)
				}
				b.WriteString("x-amz-trailer-signature:" + sig + "\r\n")
			}
		}
		b.WriteString("\r\n")
		return b.Bytes()
	}
	body := wire(strings.Repeat("0", 64))
	r, err := http.NewRequest(http.MethodPut, endpoint+"/streams/"+key, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Encoding", cmp.Or(p.encoding, "aws-chunked"))
	r.Header.Set("X-Amz-Content-Sha256", p.mode)
	r.Header.Set("X-Amz-Decoded-Content-Length", strconv.Itoa(len(payload)))
	if p.trailer {
		r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
	}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, p.mode, "s3", "us-east-1", at); err != nil {
		t.Fatal(err)
	}
	_, seed, ok := strings.Cut(r.Header.Get("Authorization"), "Signature=")
	if !ok {
		t.Fatalf("no signature in %q", r.Header.Get("Authorization"))
	}
	r.Body = io.NopCloser(bytes.NewReader(wire(seed)))
	return do(t, r)
}

// TestS3StreamingSignatures uploads aws-chunked bodies as the SDKs do:
// signed chunks, signed chunks with a signed checksum trailer, unsigned
// chunks with a trailer. A damaged chunk, a wrong or missing trailer
// signature, or a trailer replaced on the way is refused with 403
// SignatureDoesNotMatch, and the object keeps what it held.
func TestS3StreamingSignatures(t *testing.T) {
	ctx := context.Background()
	n, c, _ := startS3(t)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("streams")}); err != nil {
		t.Fatal(err)
	}
	creds, err := c.Options().Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	chunks := [][]byte{bytes.Repeat([]byte("a"), 64<<10), bytes.Repeat([]byte("b"), 64<<10), []byte("the end")}
	content := func(key string) string {
		t.Helper()
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("streams"), Key: aws.String(key)})
		if err != nil {
			return "<" + apiCode(err) + ">"
		}
		defer out.Body.Close()
		b, _ := io.ReadAll(out.Body)
		return string(b)
	}
	whole := string(bytes.Join(chunks, nil))
	const (
		signedPayload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
		signedTrailer = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
		unsigned      = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	)
	for _, p := range []streamingPut{{mode: signedPayload}, {mode: signedTrailer, trailer: true}, {mode: unsigned, trailer: true}} {
		key := strings.ToLower(p.mode)
		p.chunks = chunks
		if code, body := p.do(t, n.URL(), key, creds); code != http.StatusOK {
			t.Fatalf("%s: %d %s", p.mode, code, body)
		}
		if got := content(key); got != whole {
			t.Fatalf("%s stored %d bytes, want the %d sent", p.mode, len(got), len(whole))
		}
	}
	// aws-chunked describes the upload, not the object, which does not
	// keep it as a content coding; another coding stays.
	for encoding, want := range map[string]string{"aws-chunked": "", "gzip,aws-chunked": "gzip", "aws-chunked, br": "br"} {
		p := streamingPut{mode: signedPayload, chunks: chunks, encoding: encoding}
		if code, body := p.do(t, n.URL(), "coded", creds); code != http.StatusOK {
			t.Fatalf("%s: %d %s", encoding, code, body)
		}
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("streams"), Key: aws.String("coded")})
		if err != nil || aws.ToString(h.ContentEncoding) != want {
			t.Fatalf("uploaded with Content-Encoding %q, the object has %q (%v), want %q", encoding, aws.ToString(h.ContentEncoding), err, want)
		}
	}

	for _, p := range []streamingPut{
		{mode: signedPayload, tamper: "chunk"},
		{mode: signedTrailer, trailer: true, tamper: "chunk"},
		{mode: signedTrailer, trailer: true, tamper: "trailer-signature"},
		{mode: signedTrailer, trailer: true, tamper: "no-trailer-signature"},
		{mode: signedTrailer, trailer: true, tamper: "trailer-value"},
	} {
		t.Run(p.mode+"/"+p.tamper, func(t *testing.T) {
			p.chunks = [][]byte{[]byte("replacement "), []byte("that must not land")}
			key := strings.ToLower(p.mode)
			code, body := p.do(t, n.URL(), key, creds)
			if code != http.StatusForbidden || !strings.Contains(body, "<Code>SignatureDoesNotMatch</Code>") {
				t.Errorf("%d %s; want 403 SignatureDoesNotMatch", code, body)
			}
			if got := content(key); got != whole {
				t.Errorf("the refused put left %q, want the earlier object", got)
			}
		})
	}
}

// TestS3SignedPayloadMismatch: a body signed with one SHA-256
// (x-amz-content-sha256) and replaced on the way is refused with 400
// XAmzContentSHA256Mismatch and stores nothing, as an object or as a part;
// the body as signed is stored. The data layer's SHA-256 of the body is
// what is checked, so an upload is hashed once.
func TestS3SignedPayloadMismatch(t *testing.T) {
	ctx := context.Background()
	n, c, _ := startS3(t)
	createBuckets(t, c, "signed")
	creds, err := c.Options().Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put := func(path string, signed, sent []byte) (int, string) {
		t.Helper()
		r, err := http.NewRequest(http.MethodPut, n.URL()+path, bytes.NewReader(sent))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-Amz-Content-Sha256", sha256Hex(signed))
		if err := v4.NewSigner().SignHTTP(ctx, creds, r, sha256Hex(signed), "s3", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		return do(t, r)
	}
	body := bytes.Repeat([]byte("x"), 3<<20) // several chunks
	tampered := append(bytes.Clone(body[:len(body)-1]), 'y')
	if code, out := put("/signed/k", body, body); code != http.StatusOK {
		t.Fatalf("signed put: %d %s", code, out)
	}
	if code, out := put("/signed/k", tampered, body); code != http.StatusBadRequest || !strings.Contains(out, "<Code>XAmzContentSHA256Mismatch</Code>") {
		t.Fatalf("a put whose body is not the one signed: %d %s", code, out)
	}
	if got, err := objectBody(t, c, "signed", "k"); err != nil || got != string(body) {
		t.Fatalf("the refused put replaced the object (%v)", err)
	}
	u, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("signed"), Key: aws.String("m")})
	if err != nil {
		t.Fatal(err)
	}
	if code, out := put("/signed/m?partNumber=1&uploadId="+*u.UploadId, body, tampered); code != http.StatusBadRequest || !strings.Contains(out, "<Code>XAmzContentSHA256Mismatch</Code>") {
		t.Fatalf("a part whose body is not the one signed: %d %s", code, out)
	}
	parts, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("signed"), Key: aws.String("m"), UploadId: u.UploadId})
	if err != nil || len(parts.Parts) != 0 {
		t.Fatalf("parts after the refused upload: %+v %v", parts, err)
	}
}
