package wasm

import (
	"bytes"
	"context"
	"errors"
	goruntime "runtime"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/nimbus-run/nimbus/examples"
	"github.com/nimbus-run/nimbus/internal/function"
	"github.com/nimbus-run/nimbus/internal/runtime"
	"github.com/nimbus-run/nimbus/internal/testutil"
)

// oneFunc builds a module of one function () -> () with body (no locals).
func oneFunc(body ...byte) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 1, 4, 1, 0x60, 0, 0) // type section: func () -> ()
	b = append(b, 3, 2, 1, 0)          // function section: type 0
	fn := append([]byte{0}, body...)   // no locals
	code := append([]byte{1, byte(len(fn))}, fn...)
	b = append(b, 10, byte(len(code)))
	return append(b, code...)
}

func TestInstrumentLoops(t *testing.T) {
	ctx := context.Background()
	wr := wazero.NewRuntime(ctx)
	defer wr.Close(ctx)
	cases := map[string][]byte{
		"no globals, no exports":    oneFunc(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b), // loop br 0 end
		"Go, data segments removed": func() []byte { c, _ := extractData(testutil.BuildWasm(t, pkgEchoWASI)); return c }(),
		"WAT echo":                  examples.EchoWAT,
	}
	for name, code := range cases {
		out, err := instrumentLoops(code)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cm, err := wr.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("%s: the instrumented module does not compile: %v", name, err)
		}
		if _, ok := cm.ExportedFunctions()["_start"]; !ok && name != "no globals, no exports" {
			t.Errorf("%s: exports lost", name)
		}
		// The flag is exported, and each loop got its check.
		mod, err := wr.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
		if err != nil && name == "no globals, no exports" {
			t.Fatalf("%s: %v", name, err)
		}
		if err == nil {
			if mod.ExportedGlobal(interruptExport) == nil {
				t.Errorf("%s: no %s export", name, interruptExport)
			}
			mod.Close(ctx)
		}
	}
	// The hand-made module's single loop got exactly one check.
	out, _ := instrumentLoops(cases["no globals, no exports"])
	if n := bytes.Count(out, interruptCheck(0, 1)); n != 1 {
		t.Errorf("%d checks in a module with one loop", n)
	}
}

// A guest spinning in a loop neither escapes its deadline nor holds up the
// Go runtime: a garbage collection (which stops every goroutine, the
// guest's too) completes while it spins.
func TestSpinningGuestLetsGCRun(t *testing.T) {
	r := newRuntime(t, Config{})
	spec := prepared(t, r, "probe", testutil.BuildWasm(t, pkgProbe))
	inst, err := r.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := inst.Invoke(ctx, &runtime.Request{Payload: []byte(`{"mode":"spin"}`)})
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // it spins now
	for range 5 {
		began := time.Now()
		goruntime.GC()
		if took := time.Since(began); took > 500*time.Millisecond {
			t.Fatalf("a GC took %v while a guest spun", took)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the spinning invocation ended early: %v", err)
	default:
	}
	if err := <-done; !errors.Is(err, function.ErrTimeout) {
		t.Fatalf("spinning invocation: err = %v, want ErrTimeout", err)
	}
	deadline, _ := ctx.Deadline()
	if late := time.Since(deadline); late > time.Second {
		t.Errorf("the guest stopped %v after its deadline", late)
	}
}

// Instructions the rewrite does not know are refused: the module could not
// be stopped.
func TestInstrumentLoopsRefusesUnknownInstructions(t *testing.T) {
	_, err := instrumentLoops(oneFunc(0xfe, 0x03, 0x00, 0x0b)) // atomic.fence
	if !errors.Is(err, errUninterruptible) {
		t.Fatalf("err = %v, want errUninterruptible", err)
	}
	if _, err := instrumentLoops(oneFunc(0x03)); !errors.Is(err, errMalformed) {
		t.Fatalf("truncated body: err = %v, want errMalformed", err)
	}
}

// FuzzInstrumentLoops: any input is rewritten or refused without a panic,
// and a module that compiled before still compiles after.
func FuzzInstrumentLoops(f *testing.F) {
	f.Add(oneFunc(0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b))
	f.Add(examples.EchoWAT)
	f.Add(oneFunc(0x41, 0x01, 0x04, 0x40, 0x03, 0x7f, 0x41, 0x00, 0x0b, 0x1a, 0x0b, 0x0b))
	ctx := context.Background()
	wr := wazero.NewRuntime(ctx)
	f.Cleanup(func() { wr.Close(ctx) })
	f.Fuzz(func(t *testing.T, code []byte) {
		out, err := instrumentLoops(code)
		if err != nil {
			return
		}
		if _, err := wr.CompileModule(ctx, code); err != nil {
			return
		}
		if _, err := wr.CompileModule(ctx, out); err != nil {
			t.Fatalf("compiles before the rewrite, not after: %v", err)
		}
	})
}
