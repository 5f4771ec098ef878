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
	b = append(b, sectionMemory, 3, 1, 0, 2) // one memory, min 2 pages
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

func dataSegments(code []byte) ([]dataSegment, bool) {
	_, start, end, ok := findSection(code, sectionData)
	if !ok {
		return nil, false
	}
	return parseActiveData(code[start:end])
}

func TestExtractData(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var segs []dataSegment
	for range 500 {
		init := make([]byte, 1+rng.IntN(40))
		for i := range init {
			init[i] = byte(rng.IntN(256))
		}
		// Out of order and overlapping: later segments must win.
		segs = append(segs, dataSegment{offset: uint32(rng.IntN(2*pageSize - len(init))), init: init})
	}
	code := moduleWithData(segs)
	stripped, image := extractData(code)
	if image == nil {
		t.Fatal("extractData left a qualifying module unchanged")
	}
	if left, ok := dataSegments(stripped); !ok || len(left) != 0 {
		t.Fatalf("stripped module has %d data segments (ok=%v), want 0", len(left), ok)
	}
	want := memoryAfterInstantiate(t, code)
	got := make([]byte, len(want))
	copy(got, image)
	if !bytes.Equal(want, got) {
		t.Fatal("the image differs from the memory the original module starts with")
	}
	if mem := memoryAfterInstantiate(t, stripped); !bytes.Equal(mem, make([]byte, len(mem))) {
		t.Fatal("the stripped module still writes data")
	}
}

func TestExtractDataLeavesOthers(t *testing.T) {
	passive := []byte("\x00asm\x01\x00\x00\x00")
	passive = append(passive, sectionMemory, 3, 1, 0, 1, sectionData, 4, 1, 1, 1, 'x') // one passive segment
	for name, code := range map[string][]byte{
		"empty":            nil,
		"not-wasm":         []byte("#!/bin/sh"),
		"passive":          passive,
		"truncated":        moduleWithData(make([]dataSegment, 100))[:30],
		"outside-memory":   moduleWithData([]dataSegment{{offset: 2*pageSize - 1, init: []byte("ab")}}),
		"no-data-segments": moduleWithData(nil)[:13],
	} {
		if got, image := extractData(code); !bytes.Equal(got, code) || image != nil {
			t.Errorf("%s: extractData changed the module", name)
		}
	}
}

func TestExtractDataGo(t *testing.T) {
	code := testutil.BuildWasm(t, pkgHello)
	before, _ := dataSegments(code)
	stripped, image := extractData(code)
	if image == nil {
		t.Fatal("extractData left a Go module unchanged")
	}
	t.Logf("hello: %d data segments, %d bytes -> an image of %d bytes and %d bytes of code", len(before), len(code), len(image), len(stripped))
}
