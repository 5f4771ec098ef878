// Package iox holds the I/O helpers that the node, its Go client and the
// function SDK share.
package iox

import "io"

// Fill reads r into buf until buf is full or r fails, and returns what it
// read and r's error: io.EOF only where r ended. io.ReadFull instead says
// io.ErrUnexpectedEOF of a short last read, which is also what net/http
// says of a body cut off (a chunked request body whose client went away,
// a response shorter than its Content-Length): callers that took it for
// the end kept the bytes they had as if they were the whole.
func Fill(r io.Reader, buf []byte) (n int, err error) {
	for n < len(buf) && err == nil {
		var k int
		k, err = r.Read(buf[n:])
		n += k
	}
	return n, err
}
