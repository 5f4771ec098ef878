package apigw

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// ErrMalformedResponse is wrapped by ParseResponse and WriteResponse when a
// result cannot be turned into an HTTP response. API Gateway answers those
// with 500 {"message":"Internal Server Error"}; the gateway decides (502 is
// the more honest status: the upstream answered nonsense).
var ErrMalformedResponse = errors.New("malformed function response")

// Response is a function result mapped to HTTP.
type Response struct {
	StatusCode int
	Header     http.Header
	Body       []byte
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedResponse, fmt.Sprintf(format, args...))
}

// hopHeaders are headers a function may not set: they describe our
// connection to the client, not the function's answer.
var hopHeaders = map[string]bool{
	"Connection": true, "Content-Length": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Te": true, "Trailer": true, "Transfer-Encoding": true, "Upgrade": true,
}

// ParseResponse maps a function's result (its raw JSON output) to HTTP,
// following payload format 2.0:
//
//   - A JSON object with a "statusCode" key is a response object: statusCode,
//     headers, multiValueHeaders (merged; multiValueHeaders wins for a name in
//     both), cookies (one Set-Cookie each), body, isBase64Encoded.
//   - Any other valid JSON is the body of a 200 with content-type
//     application/json; a JSON string is unquoted first, so returning
//     "hello" sends hello.
//   - An empty result is a 200 with no body (AWS would fail it; a function
//     that prints nothing meant nothing).
//
// Keys are matched case-sensitively, like AWS. A response object without a
// content-type gets application/json. Headers that belong to the connection
// (Content-Length, Transfer-Encoding, ...) are dropped.
//
// # Errors
//
// Invalid JSON, a status outside 200-599, fields of the wrong type, bad
// base64 and header names or values that are not valid HTTP all return an
// error wrapping ErrMalformedResponse.
func ParseResponse(result []byte) (*Response, error) {
	raw := bytes.TrimSpace(result)
	if len(raw) == 0 {
		return &Response{StatusCode: http.StatusOK, Header: http.Header{}}, nil
	}
	if !json.Valid(raw) {
		return nil, malformed("result is not valid JSON")
	}
	if raw[0] == '{' {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, malformed("result object: %v", err)
		}
		if _, ok := obj["statusCode"]; ok {
			return parseObject(obj)
		}
	}
	body := raw
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, malformed("result string: %v", err)
		}
		body = []byte(s)
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	return &Response{StatusCode: http.StatusOK, Header: h, Body: bytes.Clone(body)}, nil
}

func isNull(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }

func parseObject(obj map[string]json.RawMessage) (*Response, error) {
	status, err := parseStatus(obj["statusCode"])
	if err != nil {
		return nil, err
	}
	res := &Response{StatusCode: status, Header: http.Header{}}

	multi := map[string][]string{}
	if m := obj["multiValueHeaders"]; !isNull(m) {
		var raw map[string][]json.RawMessage
		if err := json.Unmarshal(m, &raw); err != nil {
			return nil, malformed("multiValueHeaders must map names to arrays of strings")
		}
		for name, vs := range raw {
			for _, v := range vs {
				s, ok, err := headerValue(v)
				if err != nil {
					return nil, malformed("multiValueHeaders[%q]: %v", name, err)
				}
				if ok {
					multi[name] = append(multi[name], s)
				}
			}
		}
	}
	single := map[string]string{}
	if m := obj["headers"]; !isNull(m) {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(m, &raw); err != nil {
			return nil, malformed("headers must map names to strings")
		}
		for name, v := range raw {
			s, ok, err := headerValue(v)
			if err != nil {
				return nil, malformed("headers[%q]: %v", name, err)
			}
			if ok {
				single[name] = s
			}
		}
	}
	// Sorted so that two spellings of one name resolve the same way every
	// time; multiValueHeaders win over headers.
	multiCanon := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(multi)) {
		if err := checkHeader(name, multi[name]...); err != nil {
			return nil, err
		}
		ck := http.CanonicalHeaderKey(name)
		if hopHeaders[ck] {
			continue
		}
		multiCanon[ck] = true
		res.Header[ck] = append(res.Header[ck], multi[name]...)
	}
	for _, name := range slices.Sorted(maps.Keys(single)) {
		if err := checkHeader(name, single[name]); err != nil {
			return nil, err
		}
		ck := http.CanonicalHeaderKey(name)
		if hopHeaders[ck] || multiCanon[ck] {
			continue
		}
		res.Header[ck] = []string{single[name]}
	}
	if m := obj["cookies"]; !isNull(m) {
		var cookies []string
		if err := json.Unmarshal(m, &cookies); err != nil {
			return nil, malformed("cookies must be an array of strings")
		}
		for _, c := range cookies {
			if err := checkHeader("Set-Cookie", c); err != nil {
				return nil, err
			}
			res.Header.Add("Set-Cookie", c)
		}
	}

	var body string
	if m := obj["body"]; !isNull(m) {
		if err := json.Unmarshal(m, &body); err != nil {
			return nil, malformed("body must be a string")
		}
	}
	var b64 bool
	if m := obj["isBase64Encoded"]; !isNull(m) {
		if err := json.Unmarshal(m, &b64); err != nil {
			return nil, malformed("isBase64Encoded must be true or false")
		}
	}
	if b64 {
		dec, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, malformed("body is not valid base64: %v", err)
		}
		res.Body = dec
	} else {
		res.Body = []byte(body)
	}
	if res.Header.Get("Content-Type") == "" && len(res.Body) > 0 {
		res.Header.Set("Content-Type", "application/json")
	}
	return res, nil
}

// parseStatus accepts an integer, or a string holding one (JavaScript
// handlers send both).
func parseStatus(m json.RawMessage) (int, error) {
	if isNull(m) {
		return 0, malformed("statusCode is null")
	}
	text := string(m)
	if m[0] == '"' {
		if err := json.Unmarshal(m, &text); err != nil {
			return 0, malformed("statusCode: %v", err)
		}
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(text), 64)
	if err != nil || f != math.Trunc(f) {
		return 0, malformed("statusCode %.20s is not an integer", text)
	}
	if f < 200 || f > 599 {
		return 0, malformed("statusCode %v is outside 200-599", f)
	}
	return int(f), nil
}

// headerValue accepts strings, numbers and booleans (handlers in dynamic
// languages send all three); null means "no header".
func headerValue(m json.RawMessage) (string, bool, error) {
	if isNull(m) {
		return "", false, nil
	}
	switch m[0] {
	case '"':
		var s string
		if err := json.Unmarshal(m, &s); err != nil {
			return "", false, err
		}
		return s, true, nil
	case '{', '[':
		return "", false, errors.New("value must be a string, number or boolean")
	default:
		return string(m), true, nil
	}
}

func checkHeader(name string, values ...string) error {
	if !validHeaderName(name) {
		return malformed("header name %q is not a valid HTTP token", truncate(name, 40))
	}
	for _, v := range values {
		if strings.ContainsAny(v, "\r\n\x00") {
			return malformed("header %q holds a line break or NUL", truncate(name, 40))
		}
	}
	return nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

// Write sends the response. Headers already on w (CORS, request ID) stay
// unless the response sets the same name.
func (res *Response) Write(w http.ResponseWriter) error {
	h := w.Header()
	for k, vs := range res.Header {
		h[k] = slices.Clone(vs)
	}
	if bodyAllowed(res.StatusCode) {
		h.Set("Content-Length", strconv.Itoa(len(res.Body)))
	} else {
		h.Del("Content-Type")
	}
	w.WriteHeader(res.StatusCode)
	if len(res.Body) == 0 || !bodyAllowed(res.StatusCode) {
		return nil
	}
	if _, err := w.Write(res.Body); err != nil && !errors.Is(err, http.ErrBodyNotAllowed) {
		return fmt.Errorf("write response body: %w", err)
	}
	return nil
}

// WriteResponse is ParseResponse then Write. When the result is malformed it
// writes nothing and returns the error, so the caller can answer with its own
// error response.
func WriteResponse(w http.ResponseWriter, result []byte) error {
	res, err := ParseResponse(result)
	if err != nil {
		return err
	}
	return res.Write(w)
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
