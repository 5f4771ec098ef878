//go:build wasip1

package sdk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
	"unsafe"
)

// The nimbus host module, ABI version 1 (docs/wasm-abi.md). Pointers are
// offsets into this module's linear memory; Go's GC does not move objects,
// so a slice's address stays valid for the duration of a call.

//go:wasmimport nimbus next
func hostNext(buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus invocation_id
func hostInvocationID(buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus trace_id
func hostTraceID(buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus deadline_ms
func hostDeadlineMS() int64

//go:wasmimport nimbus respond
func hostRespond(buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus error
func hostError(buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus log
func hostLog(buf unsafe.Pointer, size uint32) int32

// Imported only by programs that use them (the linker drops unreferenced
// imports), so a plain handler still runs on nodes that predate them.

//go:wasmimport nimbus http_request
func hostHTTPRequest(buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus api_v2
func hostAPI(req unsafe.Pointer, reqLen uint32, buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus api_result
func hostAPIResult(buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus kv_get
func hostKVGet(table unsafe.Pointer, tableLen uint32, key unsafe.Pointer, keyLen uint32, buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus kv_put
func hostKVPut(table unsafe.Pointer, tableLen uint32, item unsafe.Pointer, itemLen uint32, ifRevision uint64, ifAbsent uint32, buf unsafe.Pointer, size uint32) int32

// initialBuffer is the event buffer's first size: most events are small,
// larger ones grow it once (the host keeps the event pending meanwhile).
const initialBuffer = 64 << 10

func start(h Handler) {
	buf := make([]byte, initialBuffer)
	meta := make([]byte, 256)
	for {
		n := int(hostNext(unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf))))
		if n < 0 {
			fmt.Fprintf(os.Stderr, "sdk: next: host error %d\n", n)
			os.Exit(1)
		}
		if n > len(buf) {
			buf = make([]byte, n)
			continue // the host keeps the invocation pending until it fits
		}
		// Copy: the handler may keep the event, and buf is reused.
		event := append([]byte(nil), buf[:n]...)
		inv := &invocation{
			id:      hostString(hostInvocationID, &meta),
			traceID: hostString(hostTraceID, &meta),
		}
		if ms := hostDeadlineMS(); ms > 0 {
			inv.deadline = time.UnixMilli(ms)
		}
		payload, ferr := invoke(inv, h, event)
		var rc int32
		if ferr != nil {
			b := marshalError(ferr)
			rc = hostError(unsafe.Pointer(unsafe.SliceData(b)), uint32(len(b)))
		} else {
			rc = hostRespond(unsafe.Pointer(unsafe.SliceData(payload)), uint32(len(payload)))
		}
		if rc != 0 {
			fmt.Fprintf(os.Stderr, "sdk: invocation %s: host rejected the result: code %d\n", inv.id, rc)
		}
	}
}

// hostString calls a sized getter, growing *buf when the value does not fit.
func hostString(get func(unsafe.Pointer, uint32) int32, buf *[]byte) string {
	for {
		n := int(get(unsafe.Pointer(unsafe.SliceData(*buf)), uint32(len(*buf))))
		if n < 0 {
			return ""
		}
		if n <= len(*buf) {
			return string((*buf)[:n])
		}
		*buf = make([]byte, n)
	}
}

func writeLog(msg string) {
	hostLog(unsafe.Pointer(unsafe.StringData(msg)), uint32(len(msg)))
}

// loadHTTP asks the host for the current invocation's HTTP request; it is
// called from the handler, while the invocation is current.
func loadHTTP(*invocation) string {
	buf := make([]byte, 1024)
	return hostString(hostHTTPRequest, &buf)
}

// apiMu keeps one data call in flight: goroutines of a handler share the
// host's single kept result (api_result), and apiBuf.
var apiMu sync.Mutex

// apiBuf receives answers; reused: a fresh 16 KB per call was most of what
// a data call allocated, and allocating in a wasm guest costs 10-20 times
// what it does natively.
var apiBuf []byte

// apiBufferSize fits most answers (an item, a page of a query) at once.
const apiBufferSize = 16 << 10

// apiReq is the reused buffer of requests, as apiBuf is of answers.
var apiReq []byte

// roundTrip sends req through nimbus.api_v2 (a text envelope: encoding it
// is a few appends, where JSON with a base64 body cost a Go guest more
// than the data call itself); the host runs it with the function's
// credential.
func roundTrip(_ context.Context, req *apiRequest) (*apiResponse, error) {
	apiMu.Lock()
	defer apiMu.Unlock()
	in, err := req.Append(apiReq[:0])
	if err != nil {
		return nil, err
	}
	apiReq = in
	bufp, size := answerBuffer()
	buf := apiBuf
	n := int(hostAPI(unsafe.Pointer(unsafe.SliceData(in)), uint32(len(in)), bufp, size))
	if n < 0 {
		return nil, fmt.Errorf("nimbus.api_v2: host error %d", n)
	}
	if n > len(buf) {
		buf = make([]byte, n)
		if m := int(hostAPIResult(unsafe.Pointer(unsafe.SliceData(buf)), uint32(len(buf)))); m != n {
			return nil, fmt.Errorf("nimbus.api_v2: the kept answer is %d bytes, not %d", m, n)
		}
	}
	// The answer is parsed out of buf, which the next call reuses.
	return parseTextResponse(buf[:n])
}

// getItem and putItem go through nimbus.kv_get and kv_put, which
// carry the key or item as it is and answer with a fixed binary head
// (docs/wasm-abi.md): api_v2's envelopes and the JSON answer cost a Go
// guest several times the host's work for a small item.
func getItem(ctx context.Context, t *TableRef, key []byte) (*Item, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	apiMu.Lock()
	defer apiMu.Unlock()
	buf, size := answerBuffer()
	ans, err := tableAnswer(hostKVGet(unsafe.Pointer(unsafe.StringData(t.name)), uint32(len(t.name)),
		unsafe.Pointer(unsafe.SliceData(key)), uint32(len(key)), buf, size))
	if err != nil {
		return nil, err
	}
	if len(ans) < 16 {
		return nil, fmt.Errorf("nimbus.kv_get: an answer of %d bytes", len(ans)+2)
	}
	it := &Item{Revision: binary.LittleEndian.Uint64(ans), Data: bytes.Clone(ans[16:])}
	if ns := int64(binary.LittleEndian.Uint64(ans[8:])); ns != 0 {
		it.Updated = time.Unix(0, ns).UTC()
	}
	return it, nil
}

func putItem(ctx context.Context, t *TableRef, item []byte, o writeOptions) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var ifAbsent uint32
	if o.IfAbsent {
		ifAbsent = 1
	}
	apiMu.Lock()
	defer apiMu.Unlock()
	buf, size := answerBuffer()
	ans, err := tableAnswer(hostKVPut(unsafe.Pointer(unsafe.StringData(t.name)), uint32(len(t.name)),
		unsafe.Pointer(unsafe.SliceData(item)), uint32(len(item)), o.IfRevision, ifAbsent, buf, size))
	if err != nil {
		return 0, err
	}
	if len(ans) < 8 {
		return 0, fmt.Errorf("nimbus.kv_put: an answer of %d bytes", len(ans)+2)
	}
	return binary.LittleEndian.Uint64(ans), nil
}

// answerBuffer is apiBuf as a host call's (buf, size) parameters.
func answerBuffer() (unsafe.Pointer, uint32) {
	if apiBuf == nil {
		apiBuf = make([]byte, apiBufferSize)
	}
	return unsafe.Pointer(unsafe.SliceData(apiBuf)), uint32(len(apiBuf))
}

// tableAnswer reads the answer of a table call that returned n: what
// follows its status when that is 200, else the error it stands for. The
// bytes are apiBuf's (or, for an answer that did not fit, read through
// api_result), valid until the next call.
func tableAnswer(n int32) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("nimbus.kv: host error %d", n)
	}
	ans := apiBuf
	if int(n) > len(ans) {
		ans = make([]byte, n)
		if m := hostAPIResult(unsafe.Pointer(unsafe.SliceData(ans)), uint32(n)); m != n {
			return nil, fmt.Errorf("nimbus.kv: the kept answer is %d bytes, not %d", m, n)
		}
	}
	ans = ans[:n]
	if len(ans) < 2 {
		return nil, fmt.Errorf("nimbus.kv: an answer of %d bytes", len(ans))
	}
	if status := int(binary.LittleEndian.Uint16(ans)); status != 200 {
		return nil, answerError(status, ans[2:])
	}
	return ans[2:], nil
}

//go:wasmimport nimbus body_open
func hostBodyOpen(req unsafe.Pointer, reqLen uint32) int32

//go:wasmimport nimbus body_write
func hostBodyWrite(handle int32, ptr unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus body_close
func hostBodyClose(handle int32, abort uint32, buf unsafe.Pointer, size uint32) int32

// streamPiece is the most a body_write hands over at once.
const streamPiece = 1 << 20

// putStream sends req with body written piece by piece to the host, which
// runs the request as the pieces come. The body is read without holding
// apiMu: a body may itself make API calls (an ObjectReader's ranges).
func putStream(ctx context.Context, req *apiRequest, body io.Reader) (*apiResponse, error) {
	in, err := req.Append(nil)
	if err != nil {
		return nil, err
	}
	h := hostBodyOpen(unsafe.Pointer(unsafe.SliceData(in)), uint32(len(in)))
	if h <= 0 {
		return nil, fmt.Errorf("nimbus.body_open: host error %d", h)
	}
	piece := make([]byte, streamPiece)
	for {
		if err := ctx.Err(); err != nil {
			abandonBody(h)
			return nil, err
		}
		n, rerr := body.Read(piece)
		if n > 0 {
			apiMu.Lock()
			a := hostBodyWrite(h, unsafe.Pointer(unsafe.SliceData(piece)), uint32(n))
			if a != 0 { // answered before the body's end: a refusal
				resp, err := keptAnswer("nimbus.body_write", a)
				apiMu.Unlock()
				if err != nil {
					return nil, err
				}
				return answerOf(resp)
			}
			apiMu.Unlock()
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			abandonBody(h)
			return nil, rerr
		}
	}
	apiMu.Lock()
	defer apiMu.Unlock()
	bufp, size := answerBuffer()
	n := hostBodyClose(h, 0, bufp, size)
	if n >= 0 && int(n) <= len(apiBuf) {
		resp, err := parseTextResponse(apiBuf[:n])
		if err != nil {
			return nil, err
		}
		return answerOf(resp)
	}
	resp, err := keptAnswer("nimbus.body_close", n)
	if err != nil {
		return nil, err
	}
	return answerOf(resp)
}

// abandonBody ends a stream's body as failed: the request stores nothing.
func abandonBody(h int32) {
	apiMu.Lock()
	defer apiMu.Unlock()
	hostBodyClose(h, 1, nil, 0) // the answer (the failure) is not read
}

// keptAnswer reads the answer of n bytes that a host call kept for
// api_result; apiMu is held.
func keptAnswer(call string, n int32) (*apiResponse, error) {
	if n < 0 {
		return nil, fmt.Errorf("%s: host error %d", call, n)
	}
	buf := make([]byte, n)
	if m := hostAPIResult(unsafe.Pointer(unsafe.SliceData(buf)), uint32(n)); m != n {
		return nil, fmt.Errorf("%s: the kept answer is %d bytes, not %d", call, m, n)
	}
	return parseTextResponse(buf)
}
