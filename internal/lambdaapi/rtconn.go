package lambdaapi

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The Runtime API's connection loop.
//
// Why not net/http's server: every invocation costs the runtime two
// exchanges on this API (a /next answered, a /response accepted), and on a
// small machine net/http's per-request machinery (a goroutine and a read
// that watch each request for a closed connection, a context, the deadline
// resets that stop that read) costs about as much as the exchange itself.
// Behind a relay that does nothing else, the same aws-lambda-go binary
// served 20% of a bare net/http handler's throughput with net/http and 27%
// with a loop like this one (go run ./bench/lambda, 64 connections).
//
// What is kept from net/http: requests are parsed by http.ReadRequest (the
// server's own parser: chunked bodies, trailers, header canonicalization)
// and headers are written by http.Header.Write (which strips CR and LF from
// values). What is left out is what this API does not need: TLS, HTTP/2,
// upgrades, timeouts for idle connections (the peer is the function's own
// process, which the node kills), and watching a request for a closed
// connection while it is served; /next instead checks that its runtime is
// still there before it takes an invocation (peerGone).

// Limits on what a runtime may send.
const (
	maxHeaderBytes = 64 << 10  // request line and headers
	maxDrainBytes  = 256 << 10 // unread body skipped to keep a connection
)

// serve accepts connections until the listener is closed. Other accept
// errors (the node out of file descriptors) are waited out, as net/http
// does, with a backoff of up to a second.
func (s *RuntimeServer) serve() {
	defer close(s.serveDone)
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-time.After(backoff):
			case <-s.closed:
				return
			}
			continue
		}
		backoff = 0
		s.mu.Lock()
		if s.isClosed {
			s.mu.Unlock()
			conn.Close()
			continue
		}
		s.conns[conn] = struct{}{}
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

// limitedConn reads from a connection at most n bytes until reset: it
// bounds a request's head, as bufio reads ahead of what it parses.
type limitedConn struct {
	net.Conn
	n int64
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errHeadTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.Conn.Read(p)
	l.n -= int64(n)
	return n, err
}

var errHeadTooLarge = errors.New("request head too large")

func (s *RuntimeServer) serveConn(conn net.Conn) {
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	lc := &limitedConn{Conn: conn}
	br := bufio.NewReader(lc)
	bw := bufio.NewWriter(conn)
	for {
		lc.n = maxHeaderBytes
		req, err := http.ReadRequest(br)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
				return
			}
			w := newRTResponse(bw, conn, false)
			status := http.StatusBadRequest
			if errors.Is(err, errHeadTooLarge) {
				status = http.StatusRequestHeaderFieldsTooLarge
			}
			writeError(w, status, "InvalidRequest", "malformed HTTP request: "+err.Error())
			w.header.Set("Connection", "close")
			_ = w.finish()
			return
		}
		lc.n = 1<<63 - 1 // the body's own limits are the handlers'
		if req.Header.Get("Expect") == "100-continue" {
			// curl waits for this before it sends a large body.
			_, _ = bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if bw.Flush() != nil {
				return
			}
		}
		w := newRTResponse(bw, conn, req.Method == http.MethodHead)
		s.ServeHTTP(w, req)
		// What the handler left of the body is skipped, up to a bound, so
		// the connection can carry the next request.
		keep := !req.Close && req.ProtoAtLeast(1, 1)
		if n, _ := io.CopyN(io.Discard, req.Body, maxDrainBytes+1); n > maxDrainBytes {
			keep = false
		}
		if !keep {
			w.header.Set("Connection", "close")
		}
		if w.finish() != nil || !keep {
			return
		}
	}
}

// rtResponse is the http.ResponseWriter of serveConn. A response whose
// handler set Content-Length streams its body; any other is buffered and
// sent with its length when the handler returns.
type rtResponse struct {
	bw          *bufio.Writer
	conn        net.Conn
	header      http.Header
	status      int
	wroteHeader bool
	streaming   bool
	noBody      bool // HEAD
	buf         []byte
}

func newRTResponse(bw *bufio.Writer, conn net.Conn, head bool) *rtResponse {
	return &rtResponse{bw: bw, conn: conn, header: make(http.Header, 4), noBody: head}
}

func (w *rtResponse) Header() http.Header { return w.header }

func (w *rtResponse) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader, w.status = true, status
	if w.header.Get("Content-Length") != "" {
		w.streaming = true
		w.writeHead()
	}
}

func (w *rtResponse) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	switch {
	case w.noBody:
		return len(p), nil
	case w.streaming:
		return w.bw.Write(p)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *rtResponse) writeHead() {
	_, _ = w.bw.WriteString("HTTP/1.1 " + strconv.Itoa(w.status) + " " + http.StatusText(w.status) + "\r\n")
	_ = w.header.Write(w.bw)
	_, _ = w.bw.WriteString("\r\n")
}

// finish sends what is not sent yet and flushes.
func (w *rtResponse) finish() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.streaming {
		w.header.Set("Content-Length", strconv.Itoa(len(w.buf)))
		w.writeHead()
		if !w.noBody {
			_, _ = w.bw.Write(w.buf)
		}
	}
	return w.bw.Flush()
}

// peerGone reports whether the runtime closed (or reset) the connection of
// this request: a long poll that was given up must not take an
// invocation. It peeks without blocking, one system call.
func (w *rtResponse) peerGone() bool {
	sc, ok := w.conn.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	gone := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		gone = n == 0 && err == nil || err != nil && err != unix.EAGAIN && err != unix.EINTR
		return true
	})
	return gone || err != nil
}
