// Package httpbody bounds how long a request's body may stall, and reads
// what remains of a refused upload's body before the refusal is sent.
//
// A server's listener can bound how long headers take, but not bodies,
// which may rightly take long (a 5 GB upload over a slow link): without a
// bound, a client that sends part of a body and stops holds the handler's
// goroutine and whatever it has buffered for as long as the connection
// lives, and a few thousand such connections hold the server's memory. Idle
// fails a read that waits longer than the idle timeout for the client,
// which is what nginx's client_body_timeout does.
package httpbody

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// ErrStalled is the error of a read of a body whose client sent nothing
// for the idle timeout.
var ErrStalled = errors.New("the client stopped sending the request body")

// DefaultIdle is the idle timeout nimbus up uses unless told otherwise.
const DefaultIdle = time.Minute

// Idle returns r's body such that each read sets the connection's read
// deadline to the idle timeout from now (through w's
// ResponseController), and a read that meets it fails with ErrStalled.
// Where the connection's deadline cannot be set, the body is read as it is.
func Idle(w http.ResponseWriter, r *http.Request, idle time.Duration) io.ReadCloser {
	if r.Body == nil || r.Body == http.NoBody {
		return r.Body
	}
	return &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle}
}

type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
	done bool // no deadline to set: unsupported, or the body is over
}

func (b *idleBody) Read(p []byte) (int, error) {
	if !b.done && b.rc.SetReadDeadline(time.Now().Add(b.idle)) != nil {
		b.done = true
	}
	n, err := b.ReadCloser.Read(p)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: no byte for %v", ErrStalled, b.idle)
	case err != nil && !b.done:
		// The body is over: the connection's next reads (the next
		// request's, or net/http's watch for the client going away
		// while the handler answers) are not the body's to time.
		b.done = true
		b.rc.SetReadDeadline(time.Time{}) //nolint:errcheck // best effort
	}
	return n, err
}

// Handler wraps h so that the bodies of its requests fail a read that
// waits longer than idle for the client (Idle). The request h sees is a
// shallow copy with its Body replaced: net/http's own handling of the
// original body (Expect: 100-continue, what is left unread) stays as it is.
func Handler(h http.Handler, idle time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r2 := r.WithContext(r.Context())
			r2.Body = Idle(w, r, idle)
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}

// A refused upload's body is read for as long as it keeps coming
// (drainIdle between reads), for at most drainMax and drainBytes.
const (
	drainIdle  = 250 * time.Millisecond
	drainMax   = 10 * time.Second
	drainBytes = 64 << 20
)

// DrainRefused reads and drops what remains of an upload's body before
// its refusal is written.
//
// A request refused before its body was read (a conditional put that
// fails, a bucket that does not exist, a bad signature) may still be
// sending the body: browsers do, and so does the AWS SDK for Go, though
// it says "Expect: 100-continue" (its requests claim no HTTP/1.1, so Go's
// transport does not wait). Answered at once, the SDK took the answer and
// closed the body it was still sending, which closed the connection under
// its read of the answer; answered and closed (net/http closes a
// connection with more than 256 KB unread), a client meets a reset as it
// writes. Either way it reported a network error instead of the refusal
// (the SDK: 2 to 4 of ten refused 20 MB puts, after three attempts each).
// So the rest of the body is read and dropped first, within bounds. A
// body over the bounds that a client would send only on "100 Continue" is
// answered at once: that client waits, and reading would ask it for the
// body.
func DrainRefused(w http.ResponseWriter, r *http.Request) {
	body := r.Body
	if ib, ok := body.(*idleBody); ok {
		body = ib.ReadCloser // timed here, by drainIdle
	}
	if body == nil || body == http.NoBody ||
		strings.EqualFold(r.Header.Get("Expect"), "100-continue") && (r.ContentLength < 0 || r.ContentLength > drainBytes) {
		return
	}
	rc := http.NewResponseController(w)
	defer rc.SetReadDeadline(time.Time{}) //nolint:errcheck // best effort
	buf := make([]byte, 32<<10)
	end := time.Now().Add(drainMax)
	for n := 0; n < drainBytes; {
		deadline := time.Now().Add(drainIdle)
		if deadline.After(end) {
			deadline = end
		}
		if rc.SetReadDeadline(deadline) != nil {
			return
		}
		k, err := body.Read(buf)
		n += k
		if err != nil {
			return
		}
	}
}
