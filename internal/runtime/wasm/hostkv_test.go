package wasm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/runtime"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// TestKVWithoutTables: on a runtime that serves no table calls (no
// Config.Tables), a guest's Table.Get and Table.Put fail with the API's
// Unavailable error, as api_v2 calls do without Config.API, instead of
// trapping. (The calls themselves are tested through a node: TestSDKData.)
func TestKVWithoutTables(t *testing.T) {
	r := newRuntime(t, Config{})
	inst := start(t, r, prepared(t, r, "sdkfn", testutil.BuildWasm(t, "./bench/data/sdkfn")))
	for _, op := range []string{"get", "put"} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		res, err := inst.Invoke(ctx, &runtime.Request{ID: op, Payload: []byte(`{"op":"` + op + `","table":"t","from":0,"n":1}`)})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if res.Err == nil || !strings.Contains(res.Err.Message, "Unavailable: nimbus.kv: this node does not serve data calls") {
			t.Fatalf("%s: result %s, error %+v; want the Unavailable error", op, res.Payload, res.Err)
		}
	}
}
