package wasm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nimbus-run/nimbus/internal/runtime"
)

// The nimbus host module, ABI version 1: docs/wasm-abi.md is its contract.
// Functions are only ever added; a published function keeps its name,
// signature and meaning.
const (
	nimbusModule = "nimbus"
	abiVersion   = 1
)

// Status codes returned by the calls that return one.
const (
	statusOK           = 0
	statusNoInvocation = 1 // respond/error without a current invocation
)

// sizeNoInvocation is what the sized getters return without an invocation.
const sizeNoInvocation = -1

func (r *Runtime) instantiateNimbus(ctx context.Context) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b := r.wr.NewHostModuleBuilder(nimbusModule)
	fn := func(name string, f api.GoModuleFunc, params, results []api.ValueType, paramNames ...string) {
		b.NewFunctionBuilder().
			WithGoModuleFunction(f, params, results).
			WithParameterNames(paramNames...).
			Export(name)
	}
	ptrLen := []api.ValueType{i32, i32}
	fn("next", hostNext, ptrLen, []api.ValueType{i32}, "buf", "buf_len")
	fn("invocation_id", hostInvocationID, ptrLen, []api.ValueType{i32}, "buf", "buf_len")
	fn("trace_id", hostTraceID, ptrLen, []api.ValueType{i32}, "buf", "buf_len")
	fn("deadline_ms", hostDeadlineMS, nil, []api.ValueType{i64})
	fn("respond", hostRespond, ptrLen, []api.ValueType{i32}, "ptr", "len")
	fn("error", hostError, ptrLen, []api.ValueType{i32}, "ptr", "len")
	fn("log", hostLog, ptrLen, []api.ValueType{i32}, "ptr", "len")
	// Added in version 1 after its first release (functions are only added):
	// the HTTP request behind an invocation, and data calls (hostdata.go).
	fn("http_request", hostHTTPRequest, ptrLen, []api.ValueType{i32}, "buf", "buf_len")
	fn("api", hostAPI, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, "req_ptr", "req_len", "buf", "buf_len")
	fn("api_result", hostAPIResult, ptrLen, []api.ValueType{i32}, "buf", "buf_len")
	// api with a text envelope, cheaper for a guest than JSON (hostdata.go).
	fn("api_v2", hostAPIv2, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, "req_ptr", "req_len", "buf", "buf_len")
	// The two most frequent data calls without an envelope (hostkv.go).
	fn("kv_get", hostKVGet, []api.ValueType{i32, i32, i32, i32, i32, i32}, []api.ValueType{i32},
		"table_ptr", "table_len", "key_ptr", "key_len", "buf", "buf_len")
	fn("kv_put", hostKVPut, []api.ValueType{i32, i32, i32, i32, i64, i32, i32, i32}, []api.ValueType{i32},
		"table_ptr", "table_len", "item_ptr", "item_len", "if_revision", "if_absent", "buf", "buf_len")
	// Requests whose body the guest streams (hoststream.go).
	fn("body_open", hostBodyOpen, ptrLen, []api.ValueType{i32}, "req_ptr", "req_len")
	fn("body_write", hostBodyWrite, []api.ValueType{i32, i32, i32}, []api.ValueType{i32}, "handle", "ptr", "len")
	fn("body_close", hostBodyClose, []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}, "handle", "abort", "buf", "buf_len")
	_, err := b.Instantiate(ctx)
	return err
}

// sdkOf returns the instance a host call belongs to.
func sdkOf(ctx context.Context) *sdkInstance {
	s, ok := ctx.Value(sdkKey{}).(*sdkInstance)
	if !ok {
		// Only SDK instances import nimbus, and they always run with one.
		panic(errors.New("nimbus host function called outside an SDK instance"))
	}
	return s
}

// next(buf, buf_len) -> size: blocks until an invocation arrives and returns
// its event's size; the event is copied to buf when it fits, else the
// invocation stays pending and the next call returns it again.
func hostNext(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	buf, bufLen := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	if s.cur != nil {
		// Asking for more work without answering: the current invocation
		// fails rather than hangs until its deadline.
		s.answer(outcome{ferr: &runtime.FunctionError{
			Type:    "Runtime.NoResponse",
			Message: "the function asked for the next invocation without answering this one",
		}})
	}
	if s.pending == nil {
		if !s.readied {
			s.readied = true
			close(s.ready)
		}
		select {
		case c := <-s.calls:
			s.pending = c
		case <-s.ctx.Done():
			// Stopped while idle: end the guest as proc_exit would.
			panic(sys.NewExitError(sys.ExitCodeContextCanceled))
		}
	}
	event := s.pending.req.Payload
	size := uint32(len(event))
	if size <= bufLen {
		write(mod, "next", buf, event)
		s.cur, s.pending = s.pending, nil
	}
	stack[0] = api.EncodeU32(size)
}

// invocation_id(buf, buf_len) -> size
func hostInvocationID(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	c := s.current()
	if c == nil {
		stack[0] = api.EncodeI32(sizeNoInvocation)
		return
	}
	stack[0] = api.EncodeI32(sized(mod, "invocation_id", stack, c.req.ID))
}

// trace_id(buf, buf_len) -> size
func hostTraceID(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	c := s.current()
	if c == nil {
		stack[0] = api.EncodeI32(sizeNoInvocation)
		return
	}
	stack[0] = api.EncodeI32(sized(mod, "trace_id", stack, c.req.TraceID))
}

// deadline_ms() -> unix milliseconds, 0 for none
func hostDeadlineMS(ctx context.Context, _ api.Module, stack []uint64) {
	s := sdkOf(ctx)
	var ms int64
	if c := s.current(); c != nil && !c.deadline.IsZero() {
		ms = c.deadline.UnixMilli()
	}
	stack[0] = api.EncodeI64(ms)
}

// respond(ptr, len) -> status
func hostRespond(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = api.EncodeU32(sdkOf(ctx).finish(mod, "respond", stack, false))
}

// error(ptr, len) -> status; the bytes are {"errorType","errorMessage"}.
func hostError(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = api.EncodeU32(sdkOf(ctx).finish(mod, "error", stack, true))
}

// log(ptr, len) -> status
func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	s := sdkOf(ctx)
	_, _ = s.logs.Write(read(mod, "log", stack))
	stack[0] = api.EncodeU32(statusOK)
}

// current is the invocation metadata calls refer to.
func (s *sdkInstance) current() *call {
	if s.cur != nil {
		return s.cur
	}
	return s.pending
}

// finish answers the current invocation with the bytes at (ptr, len).
func (s *sdkInstance) finish(mod api.Module, name string, stack []uint64, isErr bool) uint32 {
	if s.cur == nil {
		return statusNoInvocation
	}
	var o outcome
	if limit := s.rt.cfg.MaxResponseBytes; api.DecodeU32(stack[1]) > uint32(limit) {
		o.ferr = responseTooLarge(limit)
	} else if b := read(mod, name, stack); isErr {
		o.ferr = decodeError(b)
	} else {
		o.payload = bytes.Clone(b) // the guest reuses its memory
	}
	s.answer(o)
	return statusOK
}

// answer sends o for the current invocation; its logs end here.
func (s *sdkInstance) answer(o outcome) {
	o.logs = s.logs
	o.mem = s.mem.size.Load()
	s.abandonStreams()
	if s.cur.apiStop != nil {
		s.cur.apiStop()
	}
	s.cur.out <- o
	s.cur = nil
	s.logs = newLogBuffer(runtime.MaxLogBytes)
}

// decodeError reads the error JSON of nimbus.error; anything else is kept as
// the message, so that a guest's error is never lost.
func decodeError(b []byte) *runtime.FunctionError {
	var fe runtime.FunctionError
	if err := json.Unmarshal(b, &fe); err != nil || (fe.Type == "" && fe.Message == "") {
		return &runtime.FunctionError{Type: "Error", Message: truncateString(string(b), 1<<10)}
	}
	return &fe
}

// read returns the guest memory at (stack[0], stack[1]); a range outside
// memory traps the guest, as an out-of-bounds access in its own code would.
func read(mod api.Module, name string, stack []uint64) []byte {
	return readAt(mod, name, stack[0], stack[1])
}

// readAt returns the guest memory at (ptr, n), two parameters of a call.
func readAt(mod api.Module, name string, ptr64, n64 uint64) []byte {
	ptr, n := api.DecodeU32(ptr64), api.DecodeU32(n64)
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		panic(fmt.Errorf("nimbus.%s: range [%d, %d+%d) is outside memory", name, ptr, ptr, n))
	}
	return b
}

func write(mod api.Module, name string, ptr uint32, data []byte) {
	if !mod.Memory().Write(ptr, data) {
		panic(fmt.Errorf("nimbus.%s: range [%d, %d+%d) is outside memory", name, ptr, ptr, len(data)))
	}
}

// sized writes v to the buffer at (stack[0], stack[1]) when it fits and
// returns its size either way.
func sized(mod api.Module, name string, stack []uint64, v string) int32 {
	buf, bufLen := api.DecodeU32(stack[0]), api.DecodeU32(stack[1])
	if uint32(len(v)) <= bufLen {
		write(mod, name, buf, []byte(v))
	}
	return int32(len(v))
}
