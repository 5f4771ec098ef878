package wasm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/tetratelabs/wazero/api"

	wire "github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/apitext"
)

// Streamed request bodies (docs/wasm-abi.md, "Streamed bodies"): api_v2
// carries a request's body whole, through the guest's memory, so a
// function could not upload an object bigger than its memory as one put.
// body_open starts a request of the node's API on a goroutine of its own,
// whose body the guest then writes a piece at a time (body_write) and ends
// (body_close); the handler reads the body as the guest writes it. A
// body_write returns once the handler has taken its piece, so the host
// never holds guest memory after a call.

// bodyStream is an open request with a streamed body.
type bodyStream struct {
	pw     *io.PipeWriter
	answer chan *apiResponse // the handler's, once it has returned
}

var (
	// errBodyAbandoned ends the body of a stream the guest closed with
	// abort, or left open when its invocation ended or was stopped.
	errBodyAbandoned = errors.New("the function abandoned the request body")
	// errAnswered ends the writes of a stream whose handler has answered.
	errAnswered = errors.New("the request was answered before its body ended")
)

// bodyNoStream is what body_write and body_close return for a handle that
// is not open. (body_open always opens one: a request it cannot run is
// answered, as api_v2 answers it.)
const bodyNoStream = -1

// body_open(req_ptr, req_len) -> handle: starts the request in api_v2's
// envelope (a body there is sent first) and returns its handle, above 0.
func hostBodyOpen(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	st := &bodyStream{answer: make(chan *apiResponse, 1)}
	pr, pw := io.Pipe()
	st.pw = pw
	in, err := apitext.ParseRequest(read(mod, "body_open", stack))
	if err != nil {
		pr.CloseWithError(errAnswered)
		st.answer <- apiError(http.StatusBadRequest, wire.CodeInvalid, "nimbus.body_open: "+err.Error())
	} else {
		actx, cancel := s.apiContext()
		first := bytes.Clone(in.Body) // guest memory, which the guest reuses
		req, refused := s.apiHTTPRequest(actx, (*apiRequest)(in), io.MultiReader(bytes.NewReader(first), pr), -1)
		if refused != nil {
			cancel()
			pr.CloseWithError(errAnswered)
			st.answer <- refused
		} else {
			// A guest stopped mid-body (its deadline, the instance's end)
			// writes no more: the body ends with its context.
			stop := context.AfterFunc(actx, func() { pw.CloseWithError(errBodyAbandoned) })
			go func() {
				defer cancel()
				defer stop()
				resp := s.runAPI(req)
				pr.CloseWithError(errAnswered) // a body_write waiting returns
				st.answer <- resp
			}()
		}
	}
	if s.streams == nil {
		s.streams = map[int32]*bodyStream{}
	}
	s.lastStream++
	s.streams[s.lastStream] = st
	stack[0] = api.EncodeI32(s.lastStream)
}

// body_write(handle, ptr, len) -> size: hands the bytes to the request's
// handler and returns 0 once it has taken them; when the handler answered
// before the body's end (a refused upload), the stream is over and
// body_write returns the answer's size, the answer kept for api_result.
func hostBodyWrite(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	h, st := s.openStream(stack)
	if st == nil {
		return
	}
	if _, err := st.pw.Write(readAt(mod, "body_write", stack[1], stack[2])); err == nil {
		stack[0] = api.EncodeI32(0)
		return
	}
	delete(s.streams, h)
	resp := <-st.answer
	s.keepAnswerAt(mod, "body_write", 0, 0, stack, apitext.AppendResponse(nil, resp.Status, resp.Header, resp.Body))
}

// body_close(handle, abort, buf, buf_len) -> size: ends the body (with
// abort, as failed: the request fails and stores nothing), waits for the
// handler's answer and returns it as api_v2 does.
func hostBodyClose(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	h, st := s.openStream(stack)
	if st == nil {
		return
	}
	delete(s.streams, h)
	if api.DecodeU32(stack[1]) != 0 {
		st.pw.CloseWithError(errBodyAbandoned)
	} else {
		st.pw.Close()
	}
	resp := <-st.answer
	s.keepAnswerAt(mod, "body_close", stack[2], stack[3], stack, apitext.AppendResponse(nil, resp.Status, resp.Header, resp.Body))
}

// openStream returns the stream whose handle is stack[0], or nil with
// the call's result set to bodyNoStream.
func (s *sdkInstance) openStream(stack []uint64) (int32, *bodyStream) {
	h := api.DecodeI32(stack[0])
	st := s.streams[h]
	if st == nil {
		stack[0] = api.EncodeI32(bodyNoStream)
	}
	return h, st
}

// abandonStreams fails the bodies the guest left open (its invocation
// ended): their requests end without waiting for their deadline.
func (s *sdkInstance) abandonStreams() {
	for h, st := range s.streams {
		st.pw.CloseWithError(errBodyAbandoned)
		delete(s.streams, h)
	}
}
