package iox

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestFill(t *testing.T) {
	buf := make([]byte, 8)
	// A reader that gives a byte at a time fills the buffer.
	n, err := Fill(iotest.OneByteReader(bytes.NewReader([]byte("0123456789"))), buf)
	if n != 8 || err != nil || string(buf) != "01234567" {
		t.Fatalf("full: %d, %v, %q", n, err, buf)
	}
	// A short body ends with io.EOF, not io.ErrUnexpectedEOF.
	n, err = Fill(bytes.NewReader([]byte("abc")), buf)
	if n != 3 || err != io.EOF {
		t.Fatalf("short: %d, %v", n, err)
	}
	// A body cut off says so, however much it gave.
	cut := io.MultiReader(bytes.NewReader([]byte("ab")), iotest.ErrReader(io.ErrUnexpectedEOF))
	if n, err = Fill(cut, buf); n != 2 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut off: %d, %v", n, err)
	}
	// A reader that returns data with io.EOF.
	if n, err = Fill(iotest.DataErrReader(bytes.NewReader([]byte("xyz"))), buf); n != 3 || err != io.EOF {
		t.Fatalf("data with EOF: %d, %v", n, err)
	}
}
