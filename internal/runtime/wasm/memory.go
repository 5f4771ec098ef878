package wasm

import (
	"os"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

const pageSize = 64 << 10 // bytes in a WebAssembly page

// linearMemory backs one instance's linear memory and enforces the function's
// memory limit. wazero's own limit (RuntimeConfig.WithMemoryLimitPages) is
// per runtime and feeds compilation, so enforcing it there would need one
// runtime and one compile per memory size; an allocator enforces it per
// instance instead, and tells us that a grow was refused, which is how a
// failure is classified as function.ErrMemoryLimit rather than guessed from
// the guest's stderr.
//
// Where the platform allows, the memory is one anonymous mapping of the whole
// limit, reserved (not committed) up front: growing is a reslice, with no copy
// and no zeroing (the kernel hands out zero pages on first touch), and none of
// it is Go heap for the GC to account for. A Go guest grows its memory several
// times during init, and each copy was a large part of a cold start.
// Elsewhere, or when the mapping fails, the memory is a Go slice grown by
// append.
//
// The mapping is released by Free, which wazero calls when the module is
// closed. That must never happen under a running guest: the runtime closes a
// module only after its _start returned, and stops a running guest by
// cancelling its context, after which wazero defers the release until the
// guest has unwound.
//
// Reallocate runs on the guest's goroutine (memory.grow); size and exceeded
// are read by Invoke from other goroutines, hence atomics.
type linearMemory struct {
	limit    uint64 // bytes the guest may have
	buf      []byte
	region   []byte        // the mapping buf is a prefix of, if mapped
	image    *memoryImage  // the module's initial memory contents, or nil
	reaper   *reaper       // unmaps region
	imaged   bool          // image is mapped into region
	size     atomic.Uint64 // current length: the high-water mark, as memory never shrinks
	exceeded atomic.Bool   // a grow past limit was refused
	// tooBig is set when the module's initial memory alone exceeds limit.
	// wazero requires the initial allocation to succeed, so it gets it, and
	// Start then closes the instance before any guest code but a start
	// section runs.
	tooBig    bool
	allocated bool // the initial allocation happened
}

var _ experimental.LinearMemory = (*linearMemory)(nil)

func newLinearMemory(limit uint64, image *memoryImage, reaper *reaper) *linearMemory {
	return &linearMemory{limit: limit, image: image, reaper: reaper}
}

// allocator returns a MemoryAllocator handing out m (one memory per module).
func (m *linearMemory) allocator() experimental.MemoryAllocator {
	return experimental.MemoryAllocatorFunc(func(capacity, maxBytes uint64) experimental.LinearMemory {
		if region, err := mapMemory(min(m.limit, maxBytes)); err == nil {
			m.region = region
			m.buf = region[:0]
			m.imaged = m.image != nil && m.image.mapInto(region) == nil
		} else {
			m.buf = make([]byte, 0, min(capacity, m.limit))
		}
		return m
	})
}

// Reallocate implements experimental.LinearMemory.
func (m *linearMemory) Reallocate(size uint64) []byte {
	first := !m.allocated
	m.allocated = true
	if size > m.limit {
		m.exceeded.Store(true)
		if !first {
			return nil // memory.grow returns -1 to the guest
		}
		m.tooBig = true
	}
	if m.region != nil && size > uint64(len(m.region)) {
		// Only the initial memory of a module over its limit gets here.
		m.unmap()
		m.buf = make([]byte, 0, size)
		m.imaged = false
	}
	if size <= uint64(cap(m.buf)) {
		// The bytes past len were never visible to the guest (memory only
		// grows), so they are still zero as WebAssembly requires.
		m.buf = m.buf[:size]
	} else {
		// append grows the backing array geometrically, as wazero does.
		m.buf = append(m.buf, make([]byte, size-uint64(len(m.buf)))...)
	}
	if first && m.image != nil && !m.imaged {
		// The image fits the initial memory (extractData checked).
		copy(m.buf, m.image.data)
	}
	m.size.Store(size)
	return m.buf
}

// memoryImage is a module's initial memory contents (its data segments, see
// extractData), shared by its instances.
type memoryImage struct {
	data      []byte
	fd        int      // a memfd holding data, or -1
	file      *os.File // owns fd
	mappedLen int      // bytes of fd to map: len(data) rounded up to pages
}

// Free implements experimental.LinearMemory.
func (m *linearMemory) Free() {
	m.unmap()
	m.buf = nil
}

func (m *linearMemory) unmap() {
	if m.region != nil {
		m.reaper.release(m.region)
		m.region = nil
	}
}

// reaper unmaps released memories on its own goroutine: unmapping a memory
// the guest used takes ~100 µs, which should not delay the end of an
// invocation (a command's memory is released as it exits).
type reaper struct {
	mu     sync.Mutex
	ch     chan []byte
	closed bool
	done   chan struct{}
}

func newReaper() *reaper {
	p := &reaper{ch: make(chan []byte, 256), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *reaper) run() {
	defer close(p.done)
	for b := range p.ch {
		unmapMemory(b)
	}
}

// release unmaps b, later when the reaper keeps up, now otherwise.
func (p *reaper) release(b []byte) {
	p.mu.Lock()
	if !p.closed {
		select {
		case p.ch <- b:
			p.mu.Unlock()
			return
		default:
		}
	}
	p.mu.Unlock()
	unmapMemory(b)
}

// close unmaps what is pending and stops the reaper.
func (p *reaper) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.ch)
	}
	p.mu.Unlock()
	<-p.done
}
