package api_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/nimbus-run/nimbus/api"
)

// TestCopyBody copies bodies of several sizes, read in pieces of every
// shape, byte for byte; passes a read error on after the bytes before it;
// and stops at a write error.
func TestCopyBody(t *testing.T) {
	data := make([]byte, 3<<20+12345)
	rand.Read(data)
	for _, size := range []int{0, 1, 256<<10 - 1, 256 << 10, 256<<10 + 1, len(data)} {
		src := data[:size]
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(src),
			"one byte": iotest.OneByteReader(bytes.NewReader(src[:min(size, 70_000)])),
			"halves":   iotest.HalfReader(bytes.NewReader(src)),
			"data+EOF": iotest.DataErrReader(bytes.NewReader(src)),
		} {
			want := src
			if name == "one byte" {
				want = src[:min(size, 70_000)]
			}
			var out bytes.Buffer
			n, err := api.CopyBody(&out, r)
			if err != nil || n != int64(len(want)) || !bytes.Equal(out.Bytes(), want) {
				t.Errorf("%d bytes, %s: copied %d (%d in w), err %v; want %d", size, name, n, out.Len(), err, len(want))
			}
		}
	}

	var out bytes.Buffer
	n, err := api.CopyBody(&out, io.MultiReader(bytes.NewReader(data[:600_000]), iotest.ErrReader(errBoom)))
	if !errors.Is(err, errBoom) || n != 600_000 || !bytes.Equal(out.Bytes(), data[:600_000]) {
		t.Errorf("read error: copied %d, err %v; want the 600000 bytes before it and boom", n, err)
	}

	// A body cut short (net/http's word for a response shorter than its
	// Content-Length) is an error, not the body's end.
	out.Reset()
	n, err = api.CopyBody(&out, io.MultiReader(bytes.NewReader(data[:300_000]), iotest.ErrReader(io.ErrUnexpectedEOF)))
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != 300_000 {
		t.Errorf("body cut short: copied %d, err %v; want 300000 and io.ErrUnexpectedEOF", n, err)
	}

	w := &failingWriter{after: 2}
	n, err = api.CopyBody(w, bytes.NewReader(data))
	if !errors.Is(err, errBoom) || n != 2*256<<10 {
		t.Errorf("write error: copied %d, err %v; want %d and boom", n, err, 2*256<<10)
	}
}

var errBoom = errors.New("boom")

// failingWriter takes after writes, then fails.
type failingWriter struct{ after int }

func (w *failingWriter) Write(p []byte) (int, error) {
	if w.after == 0 {
		return 0, errBoom
	}
	w.after--
	return len(p), nil
}
