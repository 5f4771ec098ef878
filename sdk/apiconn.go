//go:build !wasip1

package sdk

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// A process function's data calls go to the node's function listener
// (NIMBUS_API, a loopback address) over HTTP/1.1 connections kept open
// here: a data call is a small exchange, and net/http's client (a
// goroutine for each of reading and writing a connection, a request and
// a response built for every feature of HTTP) cost the function about
// half the CPU of a table put (go run ./bench/data). Requests are written
// by hand; answers are read with net/textproto, as net/http reads them.
// An https:// NIMBUS_API goes through net/http instead (sdk_native.go).

// apiConn is one kept connection to the node.
type apiConn struct {
	conn net.Conn
	br   *bufio.Reader
	tp   *textproto.Reader
	buf  []byte // the request being written, reused
}

// endpoint is where the node's API is: "tcp" host:port, or a "unix"
// socket.
type endpoint struct{ network, address string }

// host is the Host header of requests to e.
func (e endpoint) host() string {
	if e.network == "unix" {
		return "localhost"
	}
	return e.address
}

// apiConns keeps idle connections to one endpoint.
type apiConns struct {
	mu   sync.Mutex
	at   endpoint
	idle []*apiConn
}

// maxIdleAPIConns bounds the connections kept: as many as a handler's
// goroutines call at once, which is rarely more than a few.
const maxIdleAPIConns = 16

var conns apiConns

func (p *apiConns) get(at endpoint) (*apiConn, error) {
	p.mu.Lock()
	if p.at != at { // NIMBUS_API changed (tests): forget the old ones
		for _, c := range p.idle {
			c.conn.Close()
		}
		p.idle, p.at = p.idle[:0], at
	}
	if n := len(p.idle); n > 0 {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	conn, err := net.Dial(at.network, at.address)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 16<<10)
	return &apiConn{conn: conn, br: br, tp: textproto.NewReader(br)}, nil
}

func (p *apiConns) put(at endpoint, c *apiConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.at != at || len(p.idle) >= maxIdleAPIConns {
		c.conn.Close()
		return
	}
	p.idle = append(p.idle, c)
}

// aLongTimeAgo is a deadline in the past: it interrupts a blocked read.
var aLongTimeAgo = time.Unix(1, 0)

// roundTripConn sends req to the node's API at with the credential tok.
func roundTripConn(ctx context.Context, at endpoint, tok string, req *apiRequest) (*apiResponse, error) {
	c, err := conns.get(at)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	if err := c.conn.SetDeadline(deadline); err != nil {
		c.conn.Close()
		return nil, err
	}
	// A context that ends without its deadline (canceled) interrupts the
	// exchange through the connection's deadline.
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { c.conn.SetDeadline(aLongTimeAgo) })
	}
	resp, keep, err := c.exchange(at.host(), tok, req)
	if !stop() {
		keep = false // the deadline is spoiled
		if err != nil {
			err = ctx.Err()
		}
	}
	if keep {
		conns.put(at, c)
	} else {
		c.conn.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
	}
	return resp, nil
}

// exchange writes req and reads its answer; keep says whether the
// connection can carry another.
func (c *apiConn) exchange(host, tok string, req *apiRequest) (resp *apiResponse, keep bool, err error) {
	b := append(c.buf[:0], req.Method...)
	b = append(append(b, ' '), req.Path...)
	if req.Query != "" {
		b = append(append(b, '?'), req.Query...)
	}
	b = append(append(append(b, " HTTP/1.1\r\nHost: "...), host...), "\r\nAuthorization: Bearer "...)
	b = append(append(b, tok...), "\r\nContent-Length: "...)
	b = append(strconv.AppendInt(b, int64(len(req.Body)), 10), "\r\n"...)
	for k, v := range req.Header {
		if k == "" || strings.ContainsAny(k, "\r\n: ") || strings.ContainsAny(v, "\r\n") {
			return nil, false, fmt.Errorf("header %q: names may not be empty or hold spaces, colons or line breaks, values no line breaks", k)
		}
		b = append(append(append(append(b, k...), ": "...), v...), "\r\n"...)
	}
	b = append(b, "\r\n"...)
	// A small body goes in the same write as the head: one system call.
	if len(req.Body) <= 64<<10 {
		b = append(b, req.Body...)
		c.buf = b
		_, err = c.conn.Write(b)
	} else {
		c.buf = b
		_, err = (&net.Buffers{b, req.Body}).WriteTo(c.conn)
	}
	if err != nil {
		return nil, false, err
	}
	return c.read(req.Method == "HEAD")
}

// read reads an answer.
func (c *apiConn) read(head bool) (*apiResponse, bool, error) {
	var line string
	var status int
	for {
		var err error
		if line, err = c.tp.ReadLine(); err != nil {
			return nil, false, err
		}
		proto, rest, ok := strings.Cut(line, " ")
		code, _, _ := strings.Cut(rest, " ")
		if status, err = strconv.Atoi(code); !ok || !strings.HasPrefix(proto, "HTTP/1.") || err != nil || status < 100 || status > 999 {
			return nil, false, fmt.Errorf("malformed status line %q", line)
		}
		h, err := c.tp.ReadMIMEHeader()
		if err != nil {
			return nil, false, err
		}
		if status >= 200 {
			return c.body(status, h, head, line)
		}
		// 1xx: an interim answer; the final one follows.
	}
}

func (c *apiConn) body(status int, h textproto.MIMEHeader, head bool, line string) (*apiResponse, bool, error) {
	resp := &apiResponse{Status: status, Header: make(map[string]string, len(h))}
	for k, v := range h {
		if len(v) > 0 {
			resp.Header[k] = v[0]
		}
	}
	keep := !strings.EqualFold(resp.Header["Connection"], "close") && strings.HasPrefix(line, "HTTP/1.1")
	switch {
	case head || status == 204 || status == 304:
		return resp, keep, nil
	case strings.EqualFold(resp.Header["Transfer-Encoding"], "chunked"):
		b, err := io.ReadAll(httputil.NewChunkedReader(c.br))
		if err != nil {
			return nil, false, err
		}
		// The trailer, usually empty, ends the answer.
		if _, err := c.tp.ReadMIMEHeader(); err != nil {
			return nil, false, err
		}
		delete(resp.Header, "Transfer-Encoding")
		resp.Body = b
		return resp, keep, nil
	}
	cl, ok := resp.Header["Content-Length"]
	if !ok { // the body ends with the connection
		b, err := io.ReadAll(c.br)
		resp.Body = b
		return resp, false, err
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	if err != nil || n < 0 {
		return nil, false, fmt.Errorf("malformed Content-Length %q", cl)
	}
	switch {
	case n > 0 && n <= 1<<20:
		resp.Body = make([]byte, n)
		if _, err := io.ReadFull(c.br, resp.Body); err != nil {
			return nil, false, err
		}
	case n > 0:
		// Read in steps, so that a lying length cannot make the SDK
		// allocate more than arrives.
		var buf bytes.Buffer
		if _, err := io.CopyN(&buf, c.br, n); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, false, err
		}
		resp.Body = buf.Bytes()
	}
	return resp, keep, nil
}
