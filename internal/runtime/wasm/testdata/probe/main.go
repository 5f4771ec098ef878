// Command probe is the SDK fixture of the wasm runtime's tests: one module
// with many behaviors, chosen by the event's "mode", because compiling a Go
// module is the slowest step of those tests (tens of seconds under -race).
//
//	count (default)  count the invocations this instance served; "log": N
//	                 also writes N bytes to stderr and one sdk.Log entry
//	spin, sleep      never finish: busy-loop, or sleep for an hour
//	alloc            allocate and keep "mb" megabytes, or grow without end if 0
//	file, write      read /etc/passwd, create a file (denied: no file system)
//	dial             connect to "addr" (denied: no network)
//	env              return the environment
//	error, typed     return a plain error, an *sdk.Error
//	panic, crash     panic in the handler (recovered by the SDK), or on
//	                 another goroutine (which ends the instance)
//	stream           open a streamed PUT /stream (nimbus.body_open), write
//	                 "hello" and answer without closing it; report what
//	                 body_write and body_close say of a handle never opened;
//	                 "sleep": true sleeps for an hour instead of answering
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/nimbus-run/nimbus/internal/apitext"
	"github.com/nimbus-run/nimbus/sdk"
)

//go:wasmimport nimbus body_open
func bodyOpen(req unsafe.Pointer, reqLen uint32) int32

//go:wasmimport nimbus body_write
func bodyWrite(handle int32, ptr unsafe.Pointer, size uint32) int32

//go:wasmimport nimbus body_close
func bodyClose(handle int32, abort uint32, buf unsafe.Pointer, size uint32) int32

type request struct {
	Mode  string `json:"mode"`
	Log   int    `json:"log"`
	MB    int    `json:"mb"`
	Addr  string `json:"addr"`
	Sleep bool   `json:"sleep"`
}

var (
	count int
	kept  [][]byte
	sink  int
)

func main() {
	fmt.Fprintln(os.Stderr, "probe: init")
	sdk.Start(handle)
}

func handle(ctx context.Context, event json.RawMessage) (any, error) {
	var req request
	if err := json.Unmarshal(event, &req); err != nil {
		return nil, &sdk.Error{Type: "BadEvent", Message: err.Error()}
	}
	switch req.Mode {
	case "", "count":
		return counter(ctx, req.Log), nil
	case "spin":
		for i := 0; ; i++ {
			sink = i
		}
	case "sleep":
		time.Sleep(time.Hour)
		return "slept", nil
	case "alloc":
		return alloc(req.MB), nil
	case "file":
		return denied(os.ReadFile("/etc/passwd"))
	case "write":
		return nil, deniedErr(os.WriteFile("/tmp/nimbus-probe", []byte("x"), 0o600))
	case "dial":
		c, err := net.DialTimeout("tcp", req.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return nil, deniedErr(err)
	case "env":
		return os.Environ(), nil
	case "error":
		return nil, errors.New("plain failure")
	case "typed":
		return nil, &sdk.Error{Type: "Validation", Message: "name is required"}
	case "panic":
		panic("boom in handler")
	case "crash":
		go func() { panic("boom on a goroutine") }()
		time.Sleep(time.Second)
		return "survived", nil
	case "stream":
		in, err := (&apitext.Request{Method: "PUT", Path: "/stream"}).Append(nil)
		if err != nil {
			return nil, err
		}
		h := bodyOpen(unsafe.Pointer(unsafe.SliceData(in)), uint32(len(in)))
		hello := []byte("hello")
		if req.Sleep {
			bodyWrite(h, unsafe.Pointer(unsafe.SliceData(hello)), uint32(len(hello)))
			time.Sleep(time.Hour)
		}
		return map[string]int32{
			"handle": h,
			"write":  bodyWrite(h, unsafe.Pointer(unsafe.SliceData(hello)), uint32(len(hello))),
			"stray":  bodyWrite(h+100, unsafe.Pointer(unsafe.SliceData(hello)), uint32(len(hello))),
			"close":  bodyClose(h+100, 0, nil, 0),
		}, nil
	}
	return nil, fmt.Errorf("unknown mode %q", req.Mode)
}

func counter(ctx context.Context, logBytes int) map[string]any {
	count++
	if logBytes > 0 {
		line := strings.Repeat("x", 99) + "\n"
		for n := 0; n < logBytes; n += len(line) {
			os.Stderr.WriteString(line)
		}
		sdk.Logf(ctx, "probe: logged for %s", sdk.InvocationID(ctx))
	}
	deadline, _ := ctx.Deadline()
	return map[string]any{
		"count":       count,
		"id":          sdk.InvocationID(ctx),
		"trace":       sdk.TraceID(ctx),
		"deadline_ms": deadline.UnixMilli(),
	}
}

func alloc(mb int) map[string]int {
	for i := 0; mb == 0 || i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = byte(j) // touch it, so that nothing is optimized away
		}
		kept = append(kept, b)
	}
	return map[string]int{"mb": len(kept)}
}

// denied turns a probe that should have failed into its error, as a
// function error of type Denied; a success is reported as such.
func denied(b []byte, err error) (any, error) {
	if err != nil {
		return nil, deniedErr(err)
	}
	return fmt.Sprintf("allowed: read %d bytes", len(b)), nil
}

func deniedErr(err error) error {
	if err == nil {
		return &sdk.Error{Type: "Allowed", Message: "the probe succeeded"}
	}
	return &sdk.Error{Type: "Denied", Message: err.Error()}
}
