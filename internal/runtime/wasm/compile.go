package wasm

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nimbus-run/nimbus/internal/function"
)

// module is a compiled module held in memory, with what Prepare learned of it.
type module struct {
	digest   string
	compiled wazero.CompiledModule
	sdk      bool         // imports the nimbus host module
	minPages uint32       // the initial size of its exported memory
	image    *memoryImage // its data segments, moved out of the code; or nil

	// Under Runtime.mu. refs counts acquirers between acquire and release,
	// so that an eviction never closes a module being instantiated.
	refs    int
	evicted bool
	elem    *list.Element
}

// fits reports whether spec's memory holds the module's initial memory.
func (m *module) fits(spec *function.Spec) error {
	need := uint64(m.minPages) * pageSize
	if need > memoryLimit(spec) {
		mb := (need + (1<<20 - 1)) >> 20
		return function.Invalid("memory", "the module needs %d MB of memory at start, more than the function's %d MB: raise memory to at least %d", mb, spec.MemoryMB, mb)
	}
	return nil
}

// memoryLimit is spec's memory in bytes: MemoryMB*16 pages.
func memoryLimit(spec *function.Spec) uint64 {
	mb := spec.MemoryMB
	if mb <= 0 {
		mb = function.DefaultMemoryMB
	}
	return uint64(mb) << 20
}

// acquire returns the compiled module of digest, compiling it when it is not
// in memory: from code when given, else from Config.Code. Concurrent callers
// share one compile. The caller must release the module.
func (r *Runtime) acquire(ctx context.Context, digest string, code []byte) (*module, error) {
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return nil, errRuntimeClosed
		}
		if m, ok := r.modules[digest]; ok {
			m.refs++
			r.lru.MoveToFront(m.elem)
			r.mu.Unlock()
			return m, nil
		}
		r.mu.Unlock()

		// The compile belongs to no single caller: it goes on when the caller
		// that started it gives up, for the others (and the next Start).
		ch := r.sf.DoChan(digest, func() (any, error) {
			return r.compile(context.WithoutCancel(ctx), digest, code)
		})
		select {
		case res := <-ch:
			if res.Err != nil {
				return nil, res.Err
			}
		case <-ctx.Done():
			return nil, fmt.Errorf("compile: %w", context.Cause(ctx))
		}
		// Loop: the module is in the map now, unless a burst of compiles
		// already evicted it, in which case the next round compiles it again.
	}
}

func (r *Runtime) release(m *module) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.refs--
	if m.evicted && m.refs == 0 {
		r.closeCompiled(m)
	}
}

// compile compiles code, checks it, and inserts the module in the LRU.
func (r *Runtime) compile(ctx context.Context, digest string, code []byte) (*module, error) {
	if !validDigest(digest) {
		return nil, function.Invalid("code", "must be a digest \"sha256:<64 hex digits>\"")
	}
	if code == nil {
		if r.cfg.Code == nil {
			return nil, fmt.Errorf("%s is not compiled in this process and no code loader is configured", digest)
		}
		var err error
		if code, err = r.cfg.Code(ctx, digest); err != nil {
			return nil, fmt.Errorf("load %s: %w", digest, err)
		}
	}
	if !bytes.HasPrefix(code, []byte("\x00asm")) {
		return nil, function.Invalid("code", "not a WebAssembly module (it lacks the \\0asm header): build Go with GOOS=wasip1 GOARCH=wasm")
	}
	if got := Digest(code); got != digest {
		return nil, function.Invalid("code", "content digest %s does not match %s", got, digest)
	}

	code, image := extractData(code)
	code, err := instrumentLoops(code)
	if errors.Is(err, errMalformed) {
		return nil, function.Invalid("code", "invalid WebAssembly: %v", err)
	}
	if err != nil {
		return nil, function.Invalid("code", "%v", err)
	}

	r.compileMu.Lock()
	// Close takes compileMu before it closes wazero, so a compile either
	// finishes first or sees the runtime closed here; compiling into a
	// closed wazero runtime panics.
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		r.compileMu.Unlock()
		return nil, fmt.Errorf("compile %s: %w", digest, errRuntimeClosed)
	}
	before := r.cacheFiles()
	start := time.Now()
	compiled, err := r.wr.CompileModule(ctx, code)
	took := time.Since(start)
	after := r.cacheFiles()
	r.compileMu.Unlock()
	if err != nil {
		return nil, function.Invalid("code", "invalid WebAssembly: %v", err)
	}
	m := &module{digest: digest, compiled: compiled}
	if err := r.inspect(m); err != nil {
		_ = compiled.Close(ctx)
		return nil, err
	}
	if image != nil {
		m.image = newMemoryImage(image)
	}
	full := before < 0 || after > before

	r.mu.Lock()
	defer r.mu.Unlock()
	r.stats.Compiles++
	r.stats.CompileTime += took
	if full {
		r.stats.FullCompiles++
	} else {
		r.stats.CacheHits++
	}
	if r.closed {
		r.closeCompiled(m)
		return nil, errRuntimeClosed
	}
	if old, ok := r.modules[digest]; ok {
		r.evictLocked(old) // cannot happen under singleflight; stay correct anyway
	}
	m.elem = r.lru.PushFront(m)
	r.modules[digest] = m
	for r.lru.Len() > r.cfg.MaxCompiled {
		r.evictLocked(r.lru.Back().Value.(*module))
	}
	r.log.Debug("wasm: compiled", "digest", digest, "duration", took, "from_cache", !full, "sdk", m.sdk)
	return m, nil
}

// evictLocked drops m from memory; it is closed when its last acquirer
// releases it. Instances already started are unaffected (wazero keeps the
// machine code alive while an instance uses it).
func (r *Runtime) evictLocked(m *module) {
	if m.evicted {
		return
	}
	m.evicted = true
	r.lru.Remove(m.elem)
	delete(r.modules, m.digest)
	r.log.Debug("wasm: evicted", "digest", m.digest)
	if m.refs == 0 {
		r.closeCompiled(m)
	}
}

func (r *Runtime) closeCompiled(m *module) {
	_ = m.compiled.Close(context.Background()) // frees memory only; never fails
	if m.image != nil {
		m.image.close() // instances keep their mappings
	}
}

// cacheFiles counts the entries of the compilation cache directory, -1 when
// there is none. Compiles are serialized, so a new entry during a compile
// means that compile missed the cache.
func (r *Runtime) cacheFiles() int {
	if r.cfg.CacheDir == "" {
		return -1
	}
	n := 0
	_ = filepath.WalkDir(r.cfg.CacheDir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(d.Name(), ".tmp") {
			n++
		}
		return nil
	})
	return n
}

// hostFunctions are the functions guests may import, by module.
type hostFunctions struct {
	wasiModule   map[string]api.FunctionDefinition
	nimbusModule map[string]api.FunctionDefinition
}

// inspect rejects modules that cannot run here and learns their style.
func (r *Runtime) inspect(m *module) error {
	c := m.compiled
	start, ok := c.ExportedFunctions()["_start"]
	if !ok {
		return function.Invalid("code", "the module exports no _start function: build a command (a main package with GOOS=wasip1), not a library")
	}
	if len(start.ParamTypes()) != 0 || len(start.ResultTypes()) != 0 {
		return function.Invalid("code", "_start must take no parameters and return nothing")
	}
	for _, f := range c.ImportedFunctions() {
		mod, name, _ := f.Import()
		var defs map[string]api.FunctionDefinition
		switch mod {
		case wasi_snapshot_preview1.ModuleName:
			defs = r.hostFn.wasiModule
		case nimbusModule:
			defs = r.hostFn.nimbusModule
			m.sdk = true
		default:
			return function.Invalid("code", "the module imports %s.%s: Nimbus provides only the %s and %s host modules (docs/wasm-abi.md)", mod, name, wasi_snapshot_preview1.ModuleName, nimbusModule)
		}
		def, ok := defs[name]
		if !ok {
			return function.Invalid("code", "the module imports %s.%s, which this Nimbus does not provide (ABI version %d)", mod, name, abiVersion)
		}
		if !slices.Equal(def.ParamTypes(), f.ParamTypes()) || !slices.Equal(def.ResultTypes(), f.ResultTypes()) {
			return function.Invalid("code", "the module imports %s.%s as %s, but it is %s", mod, name, signature(f), signature(def))
		}
	}
	if len(c.ImportedMemories()) > 0 {
		return function.Invalid("code", "the module imports its memory: it must define and export it")
	}
	mems := c.ExportedMemories()
	if mem, ok := mems["memory"]; ok {
		m.minPages = mem.Min()
	} else if len(mems) > 0 {
		for _, mem := range mems {
			m.minPages = mem.Min()
		}
	} else if m.sdk {
		return function.Invalid("code", "the module must export its memory as \"memory\": the nimbus host functions read and write it")
	}
	return nil
}

func signature(f api.FunctionDefinition) string {
	names := func(ts []api.ValueType) string {
		s := make([]string, len(ts))
		for i, t := range ts {
			s[i] = api.ValueTypeName(t)
		}
		return strings.Join(s, ", ")
	}
	return "(" + names(f.ParamTypes()) + ") -> (" + names(f.ResultTypes()) + ")"
}

// Digest returns the content address of code, as function.Spec.Code holds it.
func Digest(code []byte) string {
	sum := sha256.Sum256(code)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func validDigest(d string) bool {
	hexPart, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(hexPart) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil && strings.ToLower(hexPart) == hexPart
}
