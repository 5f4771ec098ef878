//go:build wasip1

// Command rawapi is a test function that hands the bytes of its event's
// "req" to nimbus.api or nimbus.api_v2 (its "abi") as they are, and
// answers with the host's raw answer: the test checks both data call
// envelopes of docs/wasm-abi.md byte for byte, and how the host answers
// malformed ones, below the SDK (which speaks api_v2 only).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"unsafe"

	"github.com/nimbus-run/nimbus/sdk"
)

//go:wasmimport nimbus api
func hostAPI(req unsafe.Pointer, reqLen uint32, buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus api_v2
func hostAPIv2(req unsafe.Pointer, reqLen uint32, buf unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus api_result
func hostAPIResult(buf unsafe.Pointer, size uint32) int32

type event struct {
	ABI string `json:"abi"`
	Req string `json:"req"`
	// Buf is the size of the answer buffer: a small one makes the host
	// keep the answer for api_result.
	Buf int `json:"buf"`
}

func handle(_ context.Context, raw json.RawMessage) (any, error) {
	var ev event
	if err := json.Unmarshal(raw, &ev); err != nil {
		return nil, err
	}
	call := hostAPI
	if ev.ABI == "api_v2" {
		call = hostAPIv2
	}
	req := []byte(ev.Req)
	buf := make([]byte, ev.Buf+1) // never empty: a pointer is needed
	n := call(unsafe.Pointer(unsafe.SliceData(req)), uint32(len(req)), unsafe.Pointer(unsafe.SliceData(buf)), uint32(ev.Buf))
	if n < 0 {
		return nil, fmt.Errorf("host error %d", n)
	}
	if int(n) > ev.Buf {
		buf = make([]byte, n)
		if m := hostAPIResult(unsafe.Pointer(unsafe.SliceData(buf)), uint32(n)); m != n {
			return nil, fmt.Errorf("api_result: %d, want %d", m, n)
		}
	}
	return map[string]string{"answer": string(buf[:n])}, nil
}

func main() { sdk.Start(handle) }
