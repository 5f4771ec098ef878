package data

import (
	"net/http"
	"strings"
	"time"
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
// So the rest of the body is read and dropped first, for as long as it
// keeps coming, within bounds. A body over the bounds that a client would
// send only on "100 Continue" is answered at once: that client waits, and
// reading would ask it for the body.
const (
	drainIdle  = 250 * time.Millisecond
	drainMax   = 10 * time.Second
	drainBytes = 64 << 20
)

func DrainRefused(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody ||
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
		k, err := r.Body.Read(buf)
		n += k
		if err != nil {
			return
		}
	}
}
