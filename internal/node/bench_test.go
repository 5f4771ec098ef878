package node_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/nimbus-run/nimbus/api"
	"github.com/nimbus-run/nimbus/internal/invoke"
	"github.com/nimbus-run/nimbus/internal/node"
	"github.com/nimbus-run/nimbus/internal/node/nodetest"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// BenchmarkInvoke measures the invoke path without HTTP: resolve, pool
// acquire, a call into a warm SDK instance, release, record.
func BenchmarkInvoke(b *testing.B) {
	n := nodetest.Start(b, node.Config{Dev: true})
	nodetest.Deploy(b, n, api.Function{Name: "echo", Memory: 64, Max: 1000}, testutil.BuildWasm(b, "./examples/echo-sdk"))
	payload := []byte(`{"hello":"world"}`)
	ctx := context.Background()
	if _, err := n.Invoker.Invoke(ctx, &invoke.Request{Function: "echo", Payload: payload}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := n.Invoker.Invoke(ctx, &invoke.Request{Function: "echo", Payload: payload, Source: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkHTTPInvoke adds the gateway: POST /function/echo over loopback.
func BenchmarkHTTPInvoke(b *testing.B) {
	n := nodetest.Start(b, node.Config{Dev: true})
	nodetest.Deploy(b, n, api.Function{Name: "echo", Memory: 64, Max: 1000}, testutil.BuildWasm(b, "./examples/echo-sdk"))
	url := n.URL() + "/function/echo"
	payload := []byte(`{"hello":"world"}`)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := http.Post(url, "application/json", bytes.NewReader(payload))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
}
