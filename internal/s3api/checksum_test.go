package s3api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/nimbus-run/nimbus/internal/data"
)

// TestCRC64NVME checks the table against the algorithm's published check
// value (the CRC of "123456789").
func TestCRC64NVME(t *testing.T) {
	if got := crc64.Checksum([]byte("123456789"), crc64NVME); got != 0xae8b14860a799888 {
		t.Fatalf("CRC-64/NVME check = %#x, want 0xae8b14860a799888", got)
	}
}

// TestChecksumTrailer reads aws-chunked bodies whose checksum trailer
// matches, does not, is missing or names an unknown algorithm.
func TestChecksumTrailer(t *testing.T) {
	crc := make([]byte, 4)
	binary.BigEndian.PutUint32(crc, crc32.ChecksumIEEE([]byte("hello world")))
	good := base64.StdEncoding.EncodeToString(crc)
	sha := sha256.Sum256([]byte("hello world"))
	goodSHA := base64.StdEncoding.EncodeToString(sha[:])
	chunked := func(trailer string) string {
		return "5\r\nhello\r\n6\r\n world\r\n0\r\n" + trailer + "\r\n"
	}
	for _, c := range []struct {
		name, announce, body string
		chunkedBody          bool
		code                 string // "": read whole
	}{
		{"matching", "x-amz-checksum-crc32", chunked("x-amz-checksum-crc32:" + good + "\r\n"), true, ""},
		{"case of the name", "X-Amz-Checksum-CRC32", chunked("x-amz-checksum-crc32: " + good + "\r\n"), true, ""},
		{"not matching", "x-amz-checksum-crc32", chunked("x-amz-checksum-crc32:AAAAAA==\r\n"), true, "BadDigest"},
		{"SHA-256, the data layer's sum", "x-amz-checksum-sha256", chunked("x-amz-checksum-sha256:" + goodSHA + "\r\n"), true, ""},
		{"SHA-256 of the wrong length", "x-amz-checksum-sha256", chunked("x-amz-checksum-sha256:" + good + good + good + good + good + good + "\r\n"), true, "InvalidRequest"},
		{"SHA-256 of another body", "x-amz-checksum-sha256", chunked("x-amz-checksum-sha256:" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\r\n"), true, "BadDigest"},
		{"missing", "x-amz-checksum-crc32", chunked(""), true, "InvalidRequest"},
		{"of another length", "x-amz-checksum-crc32", chunked("x-amz-checksum-crc32:AAAAAAAA\r\n"), true, "InvalidRequest"},
		{"unknown algorithm", "x-amz-checksum-md4", chunked(""), true, "InvalidRequest"},
		{"not a checksum", "x-amz-meta-a", chunked(""), true, "InvalidRequest"},
		{"without aws-chunked", "x-amz-checksum-crc32", "hello world", false, "InvalidRequest"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPut, "/b/k", nil)
			r.Header.Set("X-Amz-Trailer", c.announce)
			var body io.Reader = strings.NewReader(c.body)
			if c.chunkedBody {
				body = newChunkedReader(body, nil)
			}
			got, u, err := checkUpload(r, body)
			if err == nil {
				var b []byte
				if b, err = io.ReadAll(got); err == nil && string(b) != "hello world" {
					t.Fatalf("read %q", b)
				}
				if err == nil {
					err = u.expect(data.Sums{SHA256: sha[:]})
				}
			}
			var se *s3Error
			switch {
			case c.code == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.code != "" && (!errors.As(err, &se) || se.code != c.code):
				t.Fatalf("got %v, want %s", err, c.code)
			}
		})
	}
}

// FuzzChunkedReader decodes arbitrary bodies as aws-chunked, unsigned and
// signed (no panic, no more bytes out than in), and round-trips data split
// into chunks of the sizes the input picks, with a checksum trailer.
func FuzzChunkedReader(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"), uint8(3))
	f.Add([]byte("0;chunk-signature=abc\r\n\r\n"), uint8(0))
	f.Add([]byte("0;chunk-signature=abc\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-trailer-signature:00\r\n\r\n"), uint8(0))
	f.Add([]byte("ffffffffffffffff\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, split uint8) {
		signer := &chunkSigner{key: []byte("key"), amzDate: "20261129T000000Z", scope: "20261129/us-east-1/s3/aws4_request", prev: "seed"}
		for _, s := range []*chunkSigner{nil, signer} {
			out, err := io.ReadAll(newChunkedReader(bytes.NewReader(body), s))
			if err == nil && len(out) > len(body) {
				t.Fatalf("decoded %d bytes from %d", len(out), len(body))
			}
		}
		// Round trip: body as the data, in chunks of split+1 bytes.
		var enc bytes.Buffer
		for rest := body; len(rest) > 0; {
			n := min(len(rest), int(split)+1)
			fmt.Fprintf(&enc, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		sum := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(body)))
		fmt.Fprintf(&enc, "0\r\nx-amz-checksum-crc32:%s\r\n\r\n", sum)
		r, _ := http.NewRequest(http.MethodPut, "/b/k", nil)
		r.Header.Set("X-Amz-Trailer", "x-amz-checksum-crc32")
		got, _, err := checkUpload(r, newChunkedReader(&enc, nil))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := io.ReadAll(got); err != nil || !bytes.Equal(out, body) {
			t.Fatalf("round trip: %d bytes of %d, %v", len(out), len(body), err)
		}
	})
}

// FuzzCompletion parses arbitrary completion headers (no panic; a parsed
// checksum is answered as it was given), and checks a composite CRC32
// made of the part checksums the input picks: accepted when right,
// BadDigest when one byte is off.
func FuzzCompletion(f *testing.F) {
	f.Add("AAAAAA==-2", "COMPOSITE", "12", []byte{1, 2, 3, 4, 5, 6, 7, 8})
	f.Add("DUoRhQ==", "FULL_OBJECT", "", []byte{})
	f.Add("x", "", "-1", []byte{9})
	f.Fuzz(func(t *testing.T, value, typ, size string, sums []byte) {
		h := http.Header{}
		h.Set("X-Amz-Checksum-Crc32", value)
		h.Set("X-Amz-Checksum-Type", typ)
		h.Set("X-Amz-Mp-Object-Size", size)
		if c, err := completionOf(h); err == nil && value != "" {
			// The answer names the same bytes, and the same part count.
			got, _ := c.result()
			gb, gn, _ := strings.Cut(got.CRC32, "-")
			vb, vn, _ := strings.Cut(value, "-")
			g, _ := base64.StdEncoding.DecodeString(gb)
			v, _ := base64.StdEncoding.DecodeString(vb)
			gi, _ := strconv.Atoi(gn)
			vi, _ := strconv.Atoi(vn)
			if !bytes.Equal(g, v) || gi != vi {
				t.Fatalf("answered %q for %q", got.CRC32, value)
			}
		}
		// A composite of len(sums)/4 parts, each with the CRC32 bytes given.
		var parts []data.Part
		for i := 0; i+4 <= len(sums); i += 4 {
			parts = append(parts, data.Part{Number: i/4 + 1, Checksum: "CRC32 " + base64.StdEncoding.EncodeToString(sums[i:i+4])})
		}
		if len(parts) == 0 {
			return
		}
		want := binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(sums[:4*len(parts)]))
		for i, wantOK := range []bool{true, false} {
			v := append([]byte(nil), want...)
			v[0] ^= byte(i)
			h := http.Header{}
			h.Set("X-Amz-Checksum-Crc32", base64.StdEncoding.EncodeToString(v)+fmt.Sprintf("-%d", len(parts)))
			c, err := completionOf(h)
			if err != nil {
				t.Fatal(err)
			}
			err = c.check(parts)
			var se *s3Error
			if wantOK && err != nil || !wantOK && (!errors.As(err, &se) || se.code != "BadDigest") {
				t.Fatalf("composite of %d parts (right: %v): %v", len(parts), wantOK, err)
			}
		}
	})
}
