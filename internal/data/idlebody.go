package data

import (
	"errors"
	"io"
	"net/http"
	"os"
	"time"
)

// IdleBody returns r's body for an upload (an object, a part), which fails
// with ErrBodyStalled once the client has sent nothing for the
// configured BodyIdleTimeout. The node's listener bounds only how long
// headers take, since a body may rightly take long (5 GB at a slow link);
// without this, a client that starts a put and stops sending holds the
// put's goroutines and chunk buffers forever, and a few thousand such
// connections hold the node's memory. w must be the request's own (its
// ResponseController sets the connection's read deadline before each
// read); where it cannot, the body is read as it is.
func (s *Service) IdleBody(w http.ResponseWriter, r *http.Request) io.Reader {
	if r.Body == nil || r.Body == http.NoBody {
		return r.Body
	}
	return &idleBody{body: r.Body, rc: http.NewResponseController(w), idle: s.cfg.BodyIdleTimeout}
}

type idleBody struct {
	body io.Reader
	rc   *http.ResponseController
	idle time.Duration
	done bool
}

func (b *idleBody) Read(p []byte) (int, error) {
	if !b.done && b.rc.SetReadDeadline(time.Now().Add(b.idle)) != nil {
		b.done = true // not supported: read without a deadline
	}
	n, err := b.body.Read(p)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = wrapf(ErrBodyStalled, "no byte of the body for %v", b.idle)
	case err != nil && !b.done:
		// The body is over: the connection's next reads (the next
		// request's) are the server's to time.
		b.done = true
		b.rc.SetReadDeadline(time.Time{}) //nolint:errcheck // best effort
	}
	return n, err
}
