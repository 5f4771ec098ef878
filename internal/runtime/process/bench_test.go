package process

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/runtime"
)

// BenchmarkWarmInvoke is one invocation of a warm aws-lambda-go echo
// instance: hand-off over the Runtime API, response, the runtime's next
// poll, log cut-off.
func BenchmarkWarmInvoke(b *testing.B) {
	code := echoBinary(b)
	r := newRuntime(b)
	spec := newSpec("echo", code)
	prepare(b, r, spec, code)
	in := start(b, r, spec)
	req := &runtime.Request{Payload: []byte(`{"hello":"world"}`)}
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req.ID = newID()
		res, err := in.Invoke(ctx, req)
		cancel()
		if err != nil || res.Err != nil {
			b.Fatalf("Invoke: %v %v", err, res.Err)
		}
	}
}

// BenchmarkColdStart is Start plus the first Invoke of an aws-lambda-go
// echo function (instance directory, Runtime API listener, fork/exec, Go
// runtime init, first /next). Close is not timed.
func BenchmarkColdStart(b *testing.B) {
	code := echoBinary(b)
	r := newRuntime(b)
	spec := newSpec("echo", code)
	prepare(b, r, spec, code)
	var samples []time.Duration
	for b.Loop() {
		t0 := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		inst, err := r.Start(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		res, err := inst.Invoke(ctx, &runtime.Request{ID: newID(), Payload: []byte(`1`)})
		cancel()
		if err != nil || res.Err != nil {
			b.Fatalf("Invoke: %v %v", err, res.Err)
		}
		samples = append(samples, time.Since(t0))
		b.StopTimer()
		_ = inst.Close(context.Background())
		b.StartTimer()
	}
	slices.Sort(samples)
	pct := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
