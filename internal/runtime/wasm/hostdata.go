package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tetratelabs/wazero/api"

	wire "github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/apitext"
)

// Data calls (docs/wasm-abi.md, "Data calls"): nimbus.api carries one
// request of the node's HTTP API (tables, buckets, events) from an SDK guest
// to Config.API, which serves it in process with the function's
// permissions. The guest sees exactly what a process function sees over
// HTTP, so the SDK has one client for both builds and one set of semantics
// (permissions, error codes, limits) to keep true.

// MaxAPIResponseBytes bounds the body of one nimbus.api answer: the answer
// is buffered in the host and then copied into guest memory, so an object
// bigger than this is read through a presigned URL instead.
const MaxAPIResponseBytes = 8 << 20

// apiCallTimeout bounds a data call made outside an invocation (during
// init), which has no deadline of its own.
const apiCallTimeout = 30 * time.Second

// sizeNothingPending is what api_result returns with no result kept.
const sizeNothingPending = -1

// apiRequest is the guest's request envelope.
type apiRequest struct {
	Method string            `json:"method"`
	Path   string            `json:"path"`
	Query  string            `json:"query,omitempty"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"` // base64 in JSON
}

// apiResponse is the host's answer envelope.
type apiResponse struct {
	Status int               `json:"status"`
	Header map[string]string `json:"header,omitempty"`
	Body   []byte            `json:"body,omitempty"`
}

// api(req_ptr, req_len, buf, buf_len) -> size: serves the request and
// returns the answer's size; the answer is written to buf when it fits,
// else kept for api_result (the request is not run twice: it may write).
func hostAPI(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	var resp *apiResponse
	var in apiRequest
	if err := json.Unmarshal(read(mod, "api", stack), &in); err != nil {
		resp = apiError(http.StatusBadRequest, wire.CodeInvalid, "nimbus.api: the request is not a valid envelope: "+err.Error())
	} else {
		resp = s.serveAPI(&in)
	}
	out, err := json.Marshal(resp)
	if err != nil { // only invalid UTF-8 in a header, which Marshal replaces
		out = []byte(`{"status":500}`)
	}
	s.keepAnswer(mod, "api", stack, out)
}

// api_v2(req_ptr, req_len, buf, buf_len) -> size: api with the envelope in
// HTTP/1-like text instead of JSON (docs/wasm-abi.md): a guest encodes and
// decodes it with a few appends and cuts, where JSON with base64 bodies
// cost a Go guest more than the data call itself.
func hostAPIv2(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	var resp *apiResponse
	if in, err := apitext.ParseRequest(read(mod, "api_v2", stack)); err != nil {
		resp = apiError(http.StatusBadRequest, wire.CodeInvalid, "nimbus.api_v2: "+err.Error())
	} else {
		// The body is guest memory, which the guest reuses; a handler may
		// keep it.
		in.Body = bytes.Clone(in.Body)
		resp = s.serveAPI((*apiRequest)(in))
	}
	s.keepAnswer(mod, "api_v2", stack, apitext.AppendResponse(nil, resp.Status, resp.Header, resp.Body))
}

// keepAnswer writes out to the guest's buffer (stack[2], stack[3]) when it
// fits, else keeps it for api_result, and returns its size.
func (s *sdkInstance) keepAnswer(mod api.Module, name string, stack []uint64, out []byte) {
	s.keepAnswerAt(mod, name, stack[2], stack[3], stack, out)
}

// keepAnswerAt is keepAnswer for a guest buffer at (buf, bufLen).
func (s *sdkInstance) keepAnswerAt(mod api.Module, name string, buf64, bufLen64 uint64, stack []uint64, out []byte) {
	s.result = nil
	buf, bufLen := api.DecodeU32(buf64), api.DecodeU32(bufLen64)
	if uint32(len(out)) <= bufLen {
		write(mod, name, buf, out)
	} else {
		s.result = out
	}
	stack[0] = api.EncodeI32(int32(len(out)))
}

// api_result(buf, buf_len) -> size: the kept answer of the last api call;
// written (and then forgotten) when it fits; -1 when none is kept.
func hostAPIResult(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	if s.result == nil {
		stack[0] = api.EncodeI32(sizeNothingPending)
		return
	}
	n := sized(mod, "api_result", stack, string(s.result))
	if uint32(n) <= api.DecodeU32(stack[1]) {
		s.result = nil
	}
	stack[0] = api.EncodeI32(n)
}

// http_request(buf, buf_len) -> size: the HTTP request behind the current
// invocation as JSON; 0 when it did not come over HTTP, -1 without one.
func hostHTTPRequest(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	c := s.current()
	if c == nil {
		stack[0] = api.EncodeI32(sizeNoInvocation)
		return
	}
	if c.req.HTTP == nil {
		stack[0] = api.EncodeI32(0)
		return
	}
	b, err := json.Marshal(c.req.HTTP)
	if err != nil {
		stack[0] = api.EncodeI32(0)
		return
	}
	stack[0] = api.EncodeI32(sized(mod, "http_request", stack, string(b)))
}

// serveAPI runs one envelope through the node's handler. Every failure is
// an answer in the API's own error shape, never a trap: the guest's
// request is input like any client's.
func (s *sdkInstance) serveAPI(in *apiRequest) *apiResponse {
	ctx, cancel := s.apiContext()
	defer cancel()
	req, refused := s.apiHTTPRequest(ctx, in, bytes.NewReader(in.Body), int64(len(in.Body)))
	if refused != nil {
		return refused
	}
	return s.runAPI(req)
}

// apiHTTPRequest makes the node API's request of in, with body (of length
// n, -1 unknown), or the answer that refuses it.
func (s *sdkInstance) apiHTTPRequest(ctx context.Context, in *apiRequest, body io.Reader, n int64) (*http.Request, *apiResponse) {
	if !strings.HasPrefix(in.Path, "/") || in.Method == "" {
		return nil, apiError(http.StatusBadRequest, wire.CodeInvalid, "nimbus.api: the request needs a method and an absolute path")
	}
	if s.api == nil {
		return nil, apiError(http.StatusServiceUnavailable, wire.CodeUnavailable, "nimbus.api: this node does not serve data calls")
	}
	target := in.Path
	if in.Query != "" {
		target += "?" + in.Query
	}
	req, err := http.NewRequestWithContext(ctx, in.Method, target, body)
	if err != nil {
		return nil, apiError(http.StatusBadRequest, wire.CodeInvalid, "nimbus.api: "+err.Error())
	}
	req.ContentLength = n
	req.RemoteAddr = "wasm"
	for k, v := range in.Header {
		if strings.ContainsAny(v, "\r\n") {
			return nil, apiError(http.StatusBadRequest, wire.CodeInvalid, "nimbus.api: header "+k+" holds a line break")
		}
		req.Header.Set(k, v)
	}
	// The handler adds the function's own credential; a guest cannot
	// choose whose authority it acts with.
	req.Header.Del("Authorization")
	return req, nil
}

// runAPI serves req and returns its answer. It may run on a goroutine of
// its own (a streamed body's): it reads nothing of the guest's.
func (s *sdkInstance) runAPI(req *http.Request) *apiResponse {
	rec := &apiRecorder{header: http.Header{}}
	s.api.ServeHTTP(rec, req)
	if rec.over {
		return apiError(http.StatusRequestEntityTooLarge, wire.CodePayloadTooLarge,
			fmt.Sprintf("nimbus.api: the answer is over %d bytes, the limit for wasm functions: read large objects through a presigned URL", MaxAPIResponseBytes))
	}
	out := &apiResponse{Status: rec.status, Body: rec.body.Bytes(), Header: map[string]string{}}
	if out.Status == 0 {
		out.Status = http.StatusOK
	}
	for k, v := range rec.header {
		if len(v) > 0 {
			out.Header[k] = v[0]
		}
	}
	return out
}

// apiContext bounds a data call by the invocation's deadline (the guest is
// stopped then anyway) and by the instance's life. An invocation's calls
// share one context, made on the first.
func (s *sdkInstance) apiContext() (context.Context, context.CancelFunc) {
	if c := s.current(); c != nil && !c.deadline.IsZero() {
		if c.apiCtx == nil {
			c.apiCtx, c.apiStop = context.WithDeadline(s.ctx, c.deadline)
		}
		return c.apiCtx, func() {}
	}
	return context.WithTimeout(s.ctx, apiCallTimeout)
}

func apiError(status int, code, msg string) *apiResponse {
	b, _ := json.Marshal(wire.ErrorBody{Error: &wire.Error{Code: code, Message: msg}})
	return &apiResponse{Status: status, Header: map[string]string{"Content-Type": "application/json"}, Body: b}
}

// errAnswerTooLarge stops a handler writing past MaxAPIResponseBytes.
var errAnswerTooLarge = errors.New("answer too large")

// apiRecorder collects a handler's answer in memory, up to the limit.
type apiRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
	over   bool
}

func (r *apiRecorder) Header() http.Header { return r.header }

func (r *apiRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *apiRecorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	if r.over || r.body.Len()+len(p) > MaxAPIResponseBytes {
		r.over = true
		return 0, errAnswerTooLarge
	}
	return r.body.Write(p)
}
