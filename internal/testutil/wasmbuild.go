// Package testutil holds the test helpers Nimbus packages share.
package testutil

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nimbus-run/nimbus/examples"
)

// wasmBuilds caches builds per test process: pkg -> *wasmBuild.
var wasmBuilds sync.Map

type wasmBuild struct {
	once sync.Once
	code []byte
	err  error
}

// BuildWasm builds the main package pkg (relative to the repository root,
// like "./examples/hello" or "./internal/runtime/wasm/testdata/loop") with
// GOOS=wasip1 GOARCH=wasm and returns the module. Each package is built once
// per test process; concurrent callers share the build.
func BuildWasm(tb testing.TB, pkg string) []byte {
	tb.Helper()
	v, _ := wasmBuilds.LoadOrStore(pkg, &wasmBuild{})
	b := v.(*wasmBuild)
	b.once.Do(func() { b.code, b.err = buildWasm(pkg) })
	if b.err != nil {
		tb.Fatalf("build %s: %v", pkg, b.err)
	}
	return b.code
}

func buildWasm(pkg string) ([]byte, error) {
	// Not tb.TempDir: the module outlives the test that built it. It is kept
	// in memory, so the file goes right away.
	dir, err := os.MkdirTemp("", "nimbus-wasm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "module.wasm")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := examples.BuildWasm(ctx, pkg, out); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}
