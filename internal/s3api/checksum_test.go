package s3api

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
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
