package lambdaapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/httploop"
)

// rawConn is one connection to the server that writes bytes as given.
func rawConn(t *testing.T, s *RuntimeServer) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, bufio.NewReader(conn)
}

func readResponse(t *testing.T, br *bufio.Reader) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestAbandonedPoll: a runtime that gives up a /next (a client timeout) and
// polls again must get the next invocation; the abandoned poll must not
// swallow it, nor make an invocation nobody received look delivered.
func TestAbandonedPoll(t *testing.T) {
	s, c := newServer(t, RuntimeServerConfig{})
	c.hc.Timeout = 5 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	gaveUp, _ := rawConn(t, s)
	if _, err := io.WriteString(gaveUp, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := s.AwaitPollers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	gaveUp.Close()
	time.Sleep(20 * time.Millisecond) // the FIN reaches the server

	// With no other poll, the invocation was never delivered, and Invoke
	// says so when its time is up.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := s.Invoke(short, &Invocation{ID: "lost"}); !errors.Is(err, ErrNotDelivered) {
		t.Fatalf("Invoke with only an abandoned poll = %v, want ErrNotDelivered", err)
	}

	ch := invokeAsync(s, ctx, &Invocation{ID: "after", Payload: []byte(`1`)})
	resp, body := c.do("GET", "invocation/next", nil, nil)
	if id := resp.Header.Get(HeaderRequestID); id != "after" || string(body) != "1" {
		t.Fatalf("second poll got id %q body %s, want the invocation", id, body)
	}
	resp, body = c.do("POST", "invocation/after/response", []byte(`2`), nil)
	wantStatus(t, resp, body, http.StatusAccepted, "")
	if r := <-ch; r.err != nil || string(r.resp.Payload) != "2" {
		t.Fatalf("Invoke = %+v, %v", r.resp, r.err)
	}
}

// TestConnection covers the connection loop: several exchanges on one
// connection, Expect: 100-continue, a chunked body, refusals of a
// malformed request and of an oversized head.
func TestConnection(t *testing.T) {
	s, _ := newServer(t, RuntimeServerConfig{Concurrency: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	conn, br := rawConn(t, s)
	for i, id := range []string{"one", "two"} {
		ch := invokeAsync(s, ctx, &Invocation{ID: id, Payload: []byte(`"` + id + `"`)})
		io.WriteString(conn, "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, body := readResponse(t, br)
		if resp.Header.Get(HeaderRequestID) != id || body != `"`+id+`"` {
			t.Fatalf("exchange %d: id %q body %s", i, resp.Header.Get(HeaderRequestID), body)
		}
		if i == 0 {
			// curl asks before it sends a large body, and waits.
			io.WriteString(conn, "POST /2018-06-01/runtime/invocation/one/response HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
			resp, _ := http.ReadResponse(br, nil)
			if resp == nil || resp.StatusCode != http.StatusContinue {
				t.Fatalf("no 100 Continue: %+v", resp)
			}
			io.WriteString(conn, "hello")
		} else {
			io.WriteString(conn, "POST /2018-06-01/runtime/invocation/two/response HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
		}
		resp, body = readResponse(t, br)
		if resp.StatusCode != http.StatusAccepted || resp.Close {
			t.Fatalf("exchange %d: response status %d (%s), close %v", i, resp.StatusCode, body, resp.Close)
		}
		want := map[int]string{0: "hello", 1: "abcde"}[i]
		if r := <-ch; r.err != nil || string(r.resp.Payload) != want {
			t.Fatalf("exchange %d: Invoke = %+v, %v; want %q", i, r.resp, r.err, want)
		}
	}

	refusals := []struct {
		name, request string
		status        int
	}{
		{"malformed", "NOT HTTP AT ALL\r\n\r\n", http.StatusBadRequest},
		{"bad content length", "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: x\r\nContent-Length: -4\r\n\r\n", http.StatusBadRequest},
		{"head too large", "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", httploop.MaxHeaderBytes) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			conn, br := rawConn(t, s)
			go io.WriteString(conn, tt.request) // the server may answer before it reads it all
			resp, body := readResponse(t, br)
			var e struct{ ErrorType, ErrorMessage string }
			if resp.StatusCode != tt.status || !resp.Close || json.Unmarshal([]byte(body), &e) != nil || e.ErrorMessage == "" {
				t.Fatalf("status %d close %v body %s; want %d, closed, a JSON error", resp.StatusCode, resp.Close, body, tt.status)
			}
		})
	}
}

// FuzzRuntimeConn writes arbitrary bytes to a connection of a live server
// with an invocation in flight: whatever comes, the server must not panic
// or stop serving, and everything it answers must be a well-formed HTTP
// response with a 2xx or 4xx status (or, for a long poll, none at all).
func FuzzRuntimeConn(f *testing.F) {
	for _, seed := range []string{
		"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /2018-06-01/runtime/invocation/fuzz-1/response HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
		"POST /2018-06-01/runtime/invocation/fuzz-1/error HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type\r\n\r\n2\r\n{}\r\n0\r\nLambda-Runtime-Function-Error-Type: X\r\n\r\n",
		"POST /2018-06-01/runtime/init/error HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n[1]",
		"POST /2018-06-01/runtime/invocation/a/response HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: x\r\n\r\nGET /y HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n",
		"\r\n\r\n\x00\xff",
	} {
		f.Add([]byte(seed))
	}
	s := fuzzServer(f)

	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
		go func() {
			conn.Write(in)
			conn.(*net.TCPConn).CloseWrite() // nothing more comes: the server may close
		}()
		br := bufio.NewReader(conn)
		for {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				var ne net.Error
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.ECONNRESET) {
					break // closed, or waiting for more (a long poll, a body)
				}
				t.Fatalf("%q: unreadable answer: %v", in, err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if c := resp.StatusCode; c >= 500 || c < 100 || c/100 == 3 {
				t.Fatalf("%q: status %d", in, c)
			}
		}
		// The server still serves.
		check, _ := net.Dial("tcp", s.Addr())
		defer check.Close()
		check.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(check, "GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, err := http.ReadResponse(bufio.NewReader(check), nil); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("after %q: the server no longer answers: %v", in, err)
		}
	})
}
