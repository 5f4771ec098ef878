package testutil

import (
	"bytes"
	"testing"
)

func TestBuildWasm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module with the go command")
	}
	code := BuildWasm(t, "./examples/echo-wasi")
	if !bytes.HasPrefix(code, []byte("\x00asm")) {
		t.Fatalf("BuildWasm: got %d bytes without the wasm header", len(code))
	}
	again := BuildWasm(t, "./examples/echo-wasi")
	if &again[0] != &code[0] {
		t.Errorf("BuildWasm: second call built again; want the cached module")
	}
}
