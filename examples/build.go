// Package examples holds runnable example functions (each subdirectory is a
// main package) and the helper that builds the WebAssembly ones, shared by
// tests and `nimbus up --demo`. It owns no runtime code.
package examples

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// modulePath is the module whose root Root looks for.
const modulePath = "github.com/nimbus-run/nimbus"

// BuildWasm builds the main package pkgDir (a directory, relative to the
// repository root or absolute, such as "./examples/hello") with
// GOOS=wasip1 GOARCH=wasm into the file out. It needs the go command.
func BuildWasm(ctx context.Context, pkgDir, out string) error {
	return build(ctx, pkgDir, out, "GOOS=wasip1", "GOARCH=wasm")
}

// BuildNative builds the main package pkgDir for this machine (a process
// function's executable, e.g. its bootstrap) into the file out.
func BuildNative(ctx context.Context, pkgDir, out string) error {
	return build(ctx, pkgDir, out)
}

func build(ctx context.Context, pkgDir, out string, env ...string) error {
	root, err := Root()
	if err != nil {
		return err
	}
	if !filepath.IsAbs(pkgDir) && !strings.HasPrefix(pkgDir, "."+string(filepath.Separator)) && !strings.HasPrefix(pkgDir, "./") {
		pkgDir = "./" + pkgDir
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("build %s: %w", pkgDir, err)
	}
	cmd := exec.CommandContext(ctx, goCommand(), "build", "-trimpath", "-o", out, pkgDir)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build %s: %w: %s", pkgDir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return nil
}

// Root returns the repository root: the directory of this file's module when
// the sources are where they were compiled (tests, `go run`), else the module
// that `go env GOMOD` finds from the working directory.
func Root() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok {
		dir := filepath.Dir(filepath.Dir(file))
		if isModuleRoot(dir) {
			return dir, nil
		}
	}
	out, err := exec.Command(goCommand(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find repository root: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("find repository root: not inside the " + modulePath + " module")
	}
	dir := filepath.Dir(gomod)
	if !isModuleRoot(dir) {
		return "", fmt.Errorf("find repository root: %s is not the %s module", dir, modulePath)
	}
	return dir, nil
}

func isModuleRoot(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(first) == "module "+modulePath
}

// goCommand is the go command on PATH; `go test` and `go run` put their own
// toolchain first on PATH, so tests build with the version they run with.
func goCommand() string { return "go" }
