package wasm

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/internal/testutil"
)

func TestScratchBreakdown(t *testing.T) {
	r := newRuntime(t, Config{})
	for _, pkg := range []string{pkgHello, pkgEchoSDK} {
		spec := prepared(t, r, "x", testutil.BuildWasm(t, pkg))
		var inits, invs, closes, insts []time.Duration
		for i := 0; i < 100; i++ {
			inst, err := r.Start(context.Background(), spec)
			if err != nil {
				t.Fatal(err)
			}
			s := inst.(*sdkInstance)
			inits = append(inits, s.initDur); insts = append(insts, s.instDur)
			t0 := time.Now()
			mustInvoke(t, inst, `{}`)
			invs = append(invs, time.Since(t0))
			t0 = time.Now()
			inst.Close(context.Background())
			closes = append(closes, time.Since(t0))
		}
		slices.Sort(inits); slices.Sort(insts); slices.Sort(invs); slices.Sort(closes)
		t.Logf("%s: inst p50 %v init p50 %v, first invoke p50 %v, close p50 %v", pkg, insts[50], inits[50], invs[50], closes[50])
	}
}
