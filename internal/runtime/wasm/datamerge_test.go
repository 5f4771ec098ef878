package wasm

import (
	"bytes"
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/nimbus-run/nimbus/internal/testutil"
)

// moduleWithData returns a module with a 2-page memory and segs.
func moduleWithData(segs []dataSegment) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 5, 3, 1, 0, 2) // memory section: one memory, min 2 pages
	content := encodeData(segs)
	b = append(b, sectionData)
	b = binary.AppendUvarint(b, uint64(len(content)))
	return append(b, content...)
}

func memoryAfterInstantiate(t *testing.T, code []byte) []byte {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, code)
	if err != nil {
		t.Fatalf("Instantiate: %v", err)
	}
	b, _ := mod.Memory().Read(0, mod.Memory().Size())
	return bytes.Clone(b)
}

func TestCoalesceData(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var segs []dataSegment
	for range 500 {
		init := make([]byte, 1+rng.IntN(40))
		for i := range init {
			init[i] = byte(rng.IntN(256))
		}
		// Out of order, overlapping, with gaps short and long: later
		// segments must still win where they overlap.
		segs = append(segs, dataSegment{offset: uint32(rng.IntN(2*pageSize - len(init))), init: init})
	}
	code := moduleWithData(segs)
	merged := coalesceData(code)
	if bytes.Equal(merged, code) {
		t.Fatal("coalesceData left a qualifying module unchanged")
	}
	got, ok := dataSegments(merged)
	if !ok || len(got) >= len(segs) {
		t.Fatalf("coalesced into %d segments (ok=%v), want fewer than %d", len(got), ok, len(segs))
	}
	if want, have := memoryAfterInstantiate(t, code), memoryAfterInstantiate(t, merged); !bytes.Equal(want, have) {
		t.Fatal("memory after instantiation differs between the original and the coalesced module")
	}
}

func TestCoalesceDataLeavesOthers(t *testing.T) {
	passive := []byte("\x00asm\x01\x00\x00\x00")
	passive = append(passive, 5, 3, 1, 0, 1, sectionData, 4, 1, 1, 1, 'x') // one passive segment
	for name, code := range map[string][]byte{
		"empty":     nil,
		"not-wasm":  []byte("#!/bin/sh"),
		"few":       moduleWithData([]dataSegment{{0, []byte("a")}, {10, []byte("b")}}),
		"passive":   passive,
		"truncated": moduleWithData(make([]dataSegment, 100))[:30],
	} {
		if got := coalesceData(code); !bytes.Equal(got, code) {
			t.Errorf("%s: coalesceData changed the module", name)
		}
	}
}

func TestCoalesceDataGo(t *testing.T) {
	code := testutil.BuildWasm(t, pkgHello)
	before, _ := dataSegments(code)
	merged := coalesceData(code)
	after, ok := dataSegments(merged)
	if !ok || len(after) > 100 {
		t.Errorf("coalesced Go module: %d data segments (ok=%v), want at most 100", len(after), ok)
	}
	t.Logf("hello: %d segments, %d bytes -> %d segments, %d bytes", len(before), len(code), len(after), len(merged))
}

func dataSegments(code []byte) ([]dataSegment, bool) {
	_, start, end, ok := findSection(code, sectionData)
	if !ok {
		return nil, false
	}
	return parseActiveData(code[start:end])
}
