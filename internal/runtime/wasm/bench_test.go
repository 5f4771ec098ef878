package wasm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

var benchPayload = []byte(`{"name":"Ada","n":[1,2,3]}`)

// benchInvoke invokes with a deadline, as every real invocation has one.
func benchInvoke(b *testing.B, inst runtime.Instance) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := inst.Invoke(ctx, &runtime.Request{ID: "bench", Payload: benchPayload})
	if err != nil || res.Err != nil {
		b.Fatalf("Invoke: %v %v", err, res.Err)
	}
}

func benchWarm(b *testing.B, name string, code []byte) {
	r := newRuntime(b, Config{})
	inst := start(b, r, prepared(b, r, name, code))
	benchInvoke(b, inst) // the first invocation settles the guest's heap
	b.ReportAllocs()
	b.ResetTimer()
	cpu, faults := processCPU(), minorFaults()
	for i := 0; i < b.N; i++ {
		benchInvoke(b, inst)
	}
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(minorFaults()-faults)/float64(b.N), "faults/op")
}

// BenchmarkSDKInvokeWarm is one invocation on a live Go SDK instance: the
// handoff to the guest's goroutine, the SDK's loop, and back.
func BenchmarkSDKInvokeWarm(b *testing.B) {
	benchWarm(b, "echo", testutil.BuildWasm(b, pkgEchoSDK))
}

// BenchmarkWATInvokeWarm is the same on the hand-written module: the
// runtime's own share of a warm invocation.
func BenchmarkWATInvokeWarm(b *testing.B) {
	benchWarm(b, "wat", examples.EchoWAT)
}

// BenchmarkCommandInvokePrestarted is Invoke alone on a command instance
// whose _start already waits on stdin: what a caller pays when the pool has
// one ready.
func BenchmarkCommandInvokePrestarted(b *testing.B) {
	r := newRuntime(b, Config{})
	spec := prepared(b, r, "echo", testutil.BuildWasm(b, pkgEchoWASI))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		inst, err := r.Start(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		<-inst.(*commandInstance).stdin.waiting // its init is over
		b.StartTimer()
		benchInvoke(b, inst)
		b.StopTimer()
		_ = inst.Close(ctx)
		b.StartTimer()
	}
}

// benchColdStart times Start plus the first Invoke of a module compiled in
// memory, and reports the median and 99th percentile.
func benchColdStart(b *testing.B, name string, code []byte) {
	r := newRuntime(b, Config{})
	spec := prepared(b, r, name, code)
	ctx := context.Background()
	took := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	cpu, faults := processCPU(), minorFaults()
	for i := 0; i < b.N; i++ {
		began := time.Now()
		inst, err := r.Start(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		benchInvoke(b, inst)
		took = append(took, time.Since(began))
		b.StopTimer()
		_ = inst.Close(ctx)
		b.StartTimer()
	}
	b.StopTimer()
	// Includes Close (its CPU time is not excluded by StopTimer) and GC.
	b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(minorFaults()-faults)/float64(b.N), "faults/op")
	reportPercentiles(b, took)
}

func reportPercentiles(b *testing.B, took []time.Duration) {
	slices.Sort(took)
	at := func(p float64) float64 {
		return float64(took[int(p*float64(len(took)-1))].Microseconds())
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkColdStartSDK is a Go SDK function's cold start: instantiate, Go's
// runtime init, main up to the first nimbus.next, and the first invocation.
func BenchmarkColdStartSDK(b *testing.B) {
	benchColdStart(b, "hello", testutil.BuildWasm(b, pkgHello))
}

// BenchmarkColdStartWAT is the runtime's floor: a module with no language
// runtime to initialize.
func BenchmarkColdStartWAT(b *testing.B) {
	benchColdStart(b, "wat", examples.EchoWAT)
}

// BenchmarkColdStartCommand is a Go WASI command's cold start when nothing
// was pre-started: Start, its init, and the invocation.
func BenchmarkColdStartCommand(b *testing.B) {
	benchColdStart(b, "echo", testutil.BuildWasm(b, pkgEchoWASI))
}

// instantTables answers every table call at once, with a fixed item.
type instantTables struct{}

var benchItem = []byte(`{"pk":"f1","sk":1001,"name":"item 1001","tags":["a","b"],"n":1001}`)

func (instantTables) GetItem(context.Context, string, []byte) ([]byte, uint64, time.Time, error) {
	return benchItem, 1234, time.Date(2026, 11, 27, 21, 0, 0, 123456789, time.UTC), nil
}

func (instantTables) PutItem(context.Context, string, []byte, bool, uint64) (uint64, error) {
	return 1234, nil
}

func (instantTables) ErrorAnswer(err error) (int, []byte) { return 500, nil }

// BenchmarkSDKDataCall is one table get or put from a Go SDK guest
// (bench/data/sdkfn) against a node that answers at once: the guest's
// share of a data call (the SDK, the Go runtime in wasm) and the host
// call (nimbus.kv_get and kv_put), without the data service.
func BenchmarkSDKDataCall(b *testing.B) {
	answer := []byte(`{"item":{"pk":"f1","sk":1001,"name":"item 1001","tags":["a","b"],"n":1001},"revision":1234,"updated":"2026-11-27T21:00:00.123456789Z"}`)
	r := newRuntime(b, Config{API: func(*function.Spec) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.Write(answer)
		})
	}, Tables: func(*function.Spec) Tables { return instantTables{} }})
	inst := start(b, r, prepared(b, r, "sdkfn", testutil.BuildWasm(b, "./bench/data/sdkfn")))
	for _, op := range []string{"get", "put"} {
		b.Run(op, func(b *testing.B) {
			call := func(n int) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				res, err := inst.Invoke(ctx, &runtime.Request{ID: "bench", Payload: fmt.Appendf(nil, `{"op":%q,"table":"bench","from":0,"n":%d}`, op, n)})
				if err != nil || res.Err != nil {
					b.Fatalf("Invoke: %v %v", err, res.Err)
				}
			}
			call(100)
			b.ResetTimer()
			cpu := processCPU()
			call(b.N)
			b.ReportMetric(float64((processCPU()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}
