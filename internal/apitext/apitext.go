// Package apitext is the envelope of nimbus.api_v2 (docs/wasm-abi.md): a
// data call framed like an HTTP/1 message without the version and the
// carriage returns. The SDK's wasm build writes requests and reads answers
// with it, the wasm runtime reads requests and writes answers: one
// definition of the format for both ends. It imports nothing a wasm guest
// would rather not carry.
//
//	request:  "METHOD path[?query]\n" + "Name: value\n"... + "\n" + body
//	answer:   "status\n"              + "Name: value\n"... + "\n" + body
package apitext

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Request is a data call.
type Request struct {
	Method string
	Path   string
	Query  string
	Header map[string]string
	Body   []byte
}

// Append appends r's envelope to b. Header names may not hold line breaks
// or colons, values no line breaks: the framing could not carry them.
func (r *Request) Append(b []byte) ([]byte, error) {
	b = append(append(append(b, r.Method...), ' '), r.Path...)
	if r.Query != "" {
		b = append(append(b, '?'), r.Query...)
	}
	b = append(b, '\n')
	for k, v := range r.Header {
		if strings.ContainsAny(k, "\r\n:") || strings.ContainsAny(v, "\r\n") {
			return nil, fmt.Errorf("header %q: names may not hold line breaks or colons, values no line breaks", k)
		}
		b = appendHeader(b, k, v)
	}
	return append(append(b, '\n'), r.Body...), nil
}

// ParseRequest reads a request envelope. The body is b's own bytes.
func ParseRequest(b []byte) (*Request, error) {
	line, rest, ok := bytes.Cut(b, []byte{'\n'})
	if !ok {
		return nil, errors.New(`the request has no "METHOD target" line`)
	}
	method, target, ok := strings.Cut(string(line), " ")
	if !ok || method == "" {
		return nil, errors.New(`the first line is not "METHOD target"`)
	}
	r := &Request{Method: method}
	r.Path, r.Query, _ = strings.Cut(target, "?")
	head, body, err := splitHead(rest)
	if err != nil {
		return nil, err
	}
	if len(head) > 0 {
		r.Header = Headers(head)
	}
	if len(body) > 0 {
		r.Body = body
	}
	return r, nil
}

// AppendResponse appends an answer's envelope to b. Header values with a
// line break are left out: the framing could not carry them.
func AppendResponse(b []byte, status int, header map[string]string, body []byte) []byte {
	n := 16 + len(body)
	for k, v := range header {
		n += len(k) + len(v) + 3
	}
	b = strconv.AppendInt(slices.Grow(b, n), int64(status), 10)
	b = append(b, '\n')
	for k, v := range header {
		if !strings.ContainsAny(k, "\r\n:") && !strings.ContainsAny(v, "\r\n") {
			b = appendHeader(b, k, v)
		}
	}
	return append(append(b, '\n'), body...)
}

// ParseResponse reads an answer envelope: its status, its header lines
// (for Headers, which callers that want only the body can skip) and its
// body, all b's own bytes.
func ParseResponse(b []byte) (status int, head, body []byte, err error) {
	line, rest, ok := bytes.Cut(b, []byte{'\n'})
	status, err = strconv.Atoi(string(line))
	if !ok || err != nil {
		return 0, nil, nil, errors.New("the answer has no status line")
	}
	head, body, err = splitHead(rest)
	return status, head, body, err
}

// Headers parses the header lines of an envelope.
func Headers(head []byte) map[string]string {
	h := make(map[string]string, 4)
	for len(head) > 0 {
		var line []byte
		line, head, _ = bytes.Cut(head, []byte{'\n'})
		name, value, _ := bytes.Cut(line, []byte(": "))
		h[string(name)] = string(value)
	}
	return h
}

// splitHead splits what follows the first line into the header lines
// (each "Name: value\n") and the body after the empty line.
func splitHead(b []byte) (head, body []byte, err error) {
	i := 0
	for {
		end := bytes.IndexByte(b[i:], '\n')
		if end < 0 {
			return nil, nil, errors.New("the headers do not end with an empty line")
		}
		if end == 0 {
			return b[:i], b[i+1:], nil
		}
		if line := b[i : i+end]; bytes.Index(line, []byte(": ")) <= 0 {
			return nil, nil, fmt.Errorf("header line %q is not \"Name: value\"", line)
		}
		i += end + 1
	}
}

func appendHeader(b []byte, k, v string) []byte {
	return append(append(append(append(b, k...), ": "...), v...), '\n')
}
