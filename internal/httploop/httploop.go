// Package httploop serves HTTP/1.1 on loopback listeners whose only
// clients are function processes the node started: the Lambda Runtime API
// (internal/lambdaapi) and the data API of process functions (the node's
// function listener).
//
// Why not net/http's server: each of these exchanges is small, and on a
// small machine net/http's per-request machinery (a goroutine and a read
// that watch each request for a closed connection, a context, the deadline
// resets that stop that read) costs about as much as the exchange itself.
// Behind a relay that does nothing else, the same aws-lambda-go binary
// served 20% of a bare net/http handler's throughput with net/http and 27%
// with this loop (go run ./bench/lambda, 64 connections).
//
// What is kept from net/http: requests are parsed by http.ReadRequest (the
// server's own parser: chunked bodies, trailers, header canonicalization)
// and headers are written by http.Header.Write (which strips CR and LF from
// values), and the wait for a request's head is bounded (headerTimeout).
// What is left out is what these clients do not need: TLS, HTTP/2,
// upgrades, timeouts for idle connections and for bodies (the handlers
// bound what they read), and watching a request for a closed connection
// while it is served; a handler that waits long can ask PeerGone instead.
package httploop

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Limits on what a client may send.
const (
	MaxHeaderBytes = 64 << 10  // request line and headers
	maxDrainBytes  = 256 << 10 // unread body skipped to keep a connection
)

// headerTimeout bounds the wait for a request's head: from the connection's
// start for the first, from its first byte for the others, as net/http's
// ReadHeaderTimeout does (the node's main listener uses 10 s too). A
// connection kept idle between requests is not timed out; one that is
// opened and left silent, or that sends half a head, is closed. A variable
// for tests.
var headerTimeout = 10 * time.Second

// bodyStallTimeout bounds each read of a request's body: a client that
// sends nothing of a body it announced for this long loses the request
// and the connection. It bounds a stall, not the body, so a large upload
// at any steady pace goes through. Between the reads (a handler working,
// or long-polling after it read its body) nothing is timed. A variable for
// tests.
var bodyStallTimeout = 30 * time.Second

// Server serves a handler on the connections of one listener.
type Server struct {
	handler   http.Handler
	malformed func(w http.ResponseWriter, status int, msg string)

	ctx    context.Context // requests' context: ends at Close
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returns

	mu       sync.Mutex
	ln       net.Listener
	isClosed bool
	conns    map[net.Conn]struct{}
}

// Start serves h on ln in a goroutine until Close. malformed answers a
// request that cannot be parsed (status 400, or 431 for a head over
// MaxHeaderBytes) in the API's own error shape; nil answers in plain text.
func Start(ln net.Listener, h http.Handler, malformed func(w http.ResponseWriter, status int, msg string)) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{handler: h, malformed: malformed, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		ln: ln, conns: make(map[net.Conn]struct{})}
	go s.serve()
	return s
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close closes the listener and drops every open connection (their
// peers are being stopped, so they are not drained), ends the requests'
// context, and returns once no new connection can start. Handlers still
// running finish on their own; a caller that must wait for them counts
// them itself.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.isClosed {
		s.mu.Unlock()
		<-s.done
		return nil
	}
	s.isClosed = true
	s.cancel()
	err := s.ln.Close()
	for conn := range s.conns {
		conn.Close()
	}
	s.mu.Unlock()
	<-s.done
	return err
}

// serve accepts connections until the listener is closed. Other accept
// errors (the node out of file descriptors) are waited out, as net/http
// does, with a backoff of up to a second.
func (s *Server) serve() {
	defer close(s.done)
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
			case <-s.ctx.Done():
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

func (s *Server) serveConn(conn net.Conn) {
	defer func() {
		conn.Close()
		s.mu.Lock()
		delete(s.conns, conn)
		s.mu.Unlock()
	}()
	lc := &limitedConn{Conn: conn}
	br := bufio.NewReader(lc)
	bw := bufio.NewWriter(conn)
	for first := true; ; first = false {
		if !first {
			// Idle until the next request starts, however long.
			if _, err := br.Peek(1); err != nil {
				return
			}
		}
		_ = conn.SetReadDeadline(time.Now().Add(headerTimeout))
		lc.n = MaxHeaderBytes
		req, err := http.ReadRequest(br)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, os.ErrDeadlineExceeded) {
				return
			}
			w := newResponse(bw, conn, false)
			status := http.StatusBadRequest
			if errors.Is(err, errHeadTooLarge) {
				status = http.StatusRequestHeaderFieldsTooLarge
			}
			s.refuse(w, status, "malformed HTTP request: "+err.Error())
			w.header.Set("Connection", "close")
			_ = w.finish()
			return
		}
		lc.n = 1<<63 - 1 // the body's own limits are the handlers'
		_ = conn.SetReadDeadline(time.Time{})
		var body *stallBoundBody
		if req.Body != nil && req.Body != http.NoBody {
			body = &stallBoundBody{ReadCloser: req.Body, conn: conn}
			if req.Header.Get("Expect") == "100-continue" {
				// The client (curl, Go's with ExpectContinueTimeout) waits
				// for this before it sends its body: sent when the handler
				// first reads, so that one that answers without the body
				// (a refused upload) has the client send none.
				body.bw = bw
			}
			req.Body = body
		}
		req.RemoteAddr = conn.RemoteAddr().String()
		w := newResponse(bw, conn, req.Method == http.MethodHead)
		s.handler.ServeHTTP(w, req.WithContext(s.ctx))
		// What the handler left of the body is skipped, up to a bound, so
		// the connection can carry the next request.
		// A body whose read failed (a stall) leaves the connection in the
		// middle of a request: it cannot carry another.
		// A client still waiting for 100 Continue may send its body or
		// not: the connection cannot carry another request.
		keep := !req.Close && req.ProtoAtLeast(1, 1) && (body == nil || body.err == nil && body.bw == nil)
		if keep {
			if n, err := io.CopyN(io.Discard, req.Body, maxDrainBytes+1); n > maxDrainBytes || err != nil && err != io.EOF {
				keep = false
			}
		}
		if !keep {
			w.header.Set("Connection", "close")
		}
		if w.finish() != nil || !keep {
			return
		}
	}
}

// stallBoundBody is a request body whose every read must make progress
// within bodyStallTimeout. The deadline is set for the read and cleared
// after it, so that it cannot fire while the handler does something else
// with the connection, such as PeerGone's peek during a long poll.
type stallBoundBody struct {
	io.ReadCloser
	conn net.Conn
	err  error         // the first failed read's, io.EOF aside
	bw   *bufio.Writer // not nil until 100 Continue is sent, if the client waits for one
}

func (b *stallBoundBody) Read(p []byte) (int, error) {
	if b.bw != nil {
		_, _ = b.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
		if err := b.bw.Flush(); err != nil {
			b.err = err
			return 0, err
		}
		b.bw = nil
	}
	_ = b.conn.SetReadDeadline(time.Now().Add(bodyStallTimeout))
	n, err := b.ReadCloser.Read(p)
	_ = b.conn.SetReadDeadline(time.Time{})
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (s *Server) refuse(w http.ResponseWriter, status int, msg string) {
	if s.malformed != nil {
		s.malformed(w, status, msg)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg+"\n")
}

// response is the http.ResponseWriter of serveConn. A response whose
// handler set Content-Length streams its body (an object of gigabytes);
// any other is buffered and sent with its length when the handler returns.
type response struct {
	bw          *bufio.Writer
	conn        net.Conn
	header      http.Header
	status      int
	wroteHeader bool
	streaming   bool
	noBody      bool // HEAD
	buf         []byte
}

func newResponse(bw *bufio.Writer, conn net.Conn, head bool) *response {
	return &response{bw: bw, conn: conn, header: make(http.Header, 4), noBody: head}
}

func (w *response) Header() http.Header { return w.header }

func (w *response) WriteHeader(status int) {
	if w.wroteHeader {
		return
	}
	w.wroteHeader, w.status = true, status
	if w.header.Get("Content-Length") != "" {
		w.streaming = true
		w.writeHead()
	}
}

func (w *response) Write(p []byte) (int, error) {
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

func (w *response) writeHead() {
	_, _ = w.bw.WriteString("HTTP/1.1 " + strconv.Itoa(w.status) + " " + http.StatusText(w.status) + "\r\n")
	_ = w.header.Write(w.bw)
	_, _ = w.bw.WriteString("\r\n")
}

// finish sends what is not sent yet and flushes.
func (w *response) finish() error {
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

// PeerGone reports whether the client of the request w answers closed (or
// reset) its connection: a long poll that was given up must not take work.
// It peeks without blocking, one system call. It is false for a
// ResponseWriter of another server.
func PeerGone(w http.ResponseWriter) bool {
	r, ok := w.(*response)
	if !ok {
		return false
	}
	sc, ok := r.conn.(syscall.Conn)
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
