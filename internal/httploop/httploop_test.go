package httploop

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

func start(t *testing.T) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Start(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+r.URL.Path+" "+string(b))
	}), nil)
	t.Cleanup(func() { s.Close() })
	return s
}

func dial(t *testing.T, s *Server) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, bufio.NewReader(conn)
}

func exchange(t *testing.T, conn net.Conn, br *bufio.Reader, req, want string) {
	t.Helper()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != want {
		t.Fatalf("answer %d %q, want 200 %q", resp.StatusCode, b, want)
	}
}

// closedSoon reports whether the server closes conn within d.
func closedSoon(conn net.Conn, br *bufio.Reader, d time.Duration) bool {
	conn.SetReadDeadline(time.Now().Add(d))
	_, err := br.ReadByte()
	return errors.Is(err, io.EOF)
}

// TestHeaderTimeout: a connection left silent, or that stalls in the
// middle of a head, is closed; one kept idle between requests is not.
func TestHeaderTimeout(t *testing.T) {
	defer func(d time.Duration) { headerTimeout = d }(headerTimeout)
	headerTimeout = 200 * time.Millisecond
	s := start(t)

	silent, br := dial(t, s)
	if !closedSoon(silent, br, 2*time.Second) {
		t.Errorf("a silent connection was kept past the header timeout")
	}
	half, br := dial(t, s)
	io.WriteString(half, "GET /x HTTP/1.1\r\nHost: x\r\n")
	if !closedSoon(half, br, 2*time.Second) {
		t.Errorf("a connection stalled mid-head was kept past the header timeout")
	}

	idle, br := dial(t, s)
	exchange(t, idle, br, "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none", "POST /a one")
	if closedSoon(idle, br, 3*headerTimeout) {
		t.Fatalf("an idle kept-alive connection was closed")
	}
	idle.SetDeadline(time.Now().Add(10 * time.Second))
	exchange(t, idle, br, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n", "GET /b ")
}

// TestMalformed: an unparsable request gets a 400 in plain text (without
// a Malformed hook) and the connection is closed; an oversized head 431.
func TestMalformed(t *testing.T) {
	s := start(t)
	for _, tt := range []struct {
		req    string
		status int
	}{
		{"NOT HTTP\r\n\r\n", http.StatusBadRequest},
		{"GET / HTTP/1.1\r\nX: " + strings.Repeat("a", MaxHeaderBytes) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	} {
		conn, br := dial(t, s)
		go io.WriteString(conn, tt.req)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tt.status || !resp.Close || !strings.Contains(string(b), "malformed HTTP request") {
			t.Errorf("%.20q: %d close %v %q", tt.req, resp.StatusCode, resp.Close, b)
		}
	}
}

// TestClose: Close drops open connections and stops accepting.
func TestClose(t *testing.T) {
	s := start(t)
	conn, br := dial(t, s)
	exchange(t, conn, br, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "GET / ")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !closedSoon(conn, br, 2*time.Second) {
		t.Errorf("an open connection survived Close")
	}
	if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
		c.Close()
		t.Errorf("the listener still accepts after Close")
	}
	if err := s.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

// TestBodyStall: a client that stops sending a body it announced loses the
// request and the connection; a handler that has read its body may then
// wait (a long poll) without its connection timing out or looking gone.
func TestBodyStall(t *testing.T) {
	defer func(d time.Duration) { bodyStallTimeout = d }(bodyStallTimeout)
	bodyStallTimeout = 200 * time.Millisecond
	readErr := make(chan error, 1)
	gone := make(chan bool, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Start(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if r.URL.Path == "/stall" {
			readErr <- err
			return
		}
		time.Sleep(3 * bodyStallTimeout) // a long poll, after the body
		gone <- PeerGone(w)
		io.WriteString(w, string(b))
	}), nil)
	t.Cleanup(func() { s.Close() })

	stalled, br := dial(t, s)
	io.WriteString(stalled, "POST /stall HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
	select {
	case err := <-readErr:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("the handler's read of a stalled body: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's read of a stalled body did not end")
	}
	// The handler's answer, if any, goes out, and the connection closes.
	if resp, err := http.ReadResponse(br, nil); err != nil || !resp.Close {
		t.Errorf("after a stalled body: %v, %v; want an answer with Connection: close", resp, err)
	}
	if !closedSoon(stalled, br, 2*time.Second) {
		t.Errorf("the connection of a stalled body was kept")
	}

	polling, br := dial(t, s)
	exchange(t, polling, br, "POST /poll HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none", "one")
	if <-gone {
		t.Errorf("PeerGone was true for a client that is there, after the body's read")
	}
}

// TestExpectContinue: a client that waits for 100 Continue before it
// sends its body gets it when the handler reads the body; a handler that
// answers without reading it (a refused upload) has its answer reach the
// client, which then sends no body, instead of the client writing into a
// connection the server closes (a broken pipe in place of the answer).
func TestExpectContinue(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := Start(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "no", http.StatusPreconditionFailed)
			return
		}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, string(b))
	}), nil)
	t.Cleanup(func() { s.Close() })

	conn, br := dial(t, s)
	io.WriteString(conn, "PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("before the body: %v, %v; want 100 Continue", resp, err)
	}
	exchange(t, conn, br, "hello", "hello")

	conn, br = dial(t, s)
	io.WriteString(conn, "PUT /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	if resp, err = http.ReadResponse(br, nil); err != nil || resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("refused: %v, %v; want 412 at once", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	if !closedSoon(conn, br, 5*time.Second) {
		t.Fatal("the connection stays open after a refusal the client may or may not send its body for")
	}

	// Go's client, streaming a large body, gets the refusal.
	c := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
	for range 3 {
		req, _ := http.NewRequest("PUT", "http://"+s.Addr().String()+"/refuse", io.LimitReader(neverEnding{}, 64<<20))
		req.Header.Set("Expect", "100-continue")
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode != http.StatusPreconditionFailed {
			t.Fatalf("streamed upload refused: %v, %v; want 412", resp, err)
		}
		resp.Body.Close()
	}
}

type neverEnding struct{}

func (neverEnding) Read(p []byte) (int, error) { return len(p), nil }
