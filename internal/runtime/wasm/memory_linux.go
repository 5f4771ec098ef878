//go:build linux

package wasm

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapMemory reserves size bytes of zeroed, private memory. MAP_NORESERVE:
// only the pages a guest touches count against the system's memory, so a
// function's whole limit can be reserved.
func mapMemory(size uint64) ([]byte, error) {
	if size == 0 || size > 1<<32 {
		return nil, unix.EINVAL
	}
	return unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
}

func unmapMemory(b []byte) { _ = unix.Munmap(b) }

// mappedImageMin is the image size from which mapping beats copying: a
// mapping costs two system calls, a copy of a few pages costs less.
const mappedImageMin = 64 << 10

// newMemoryImage keeps data for instances; a large one also goes into a
// memfd, so that instances map it copy-on-write instead of copying it.
func newMemoryImage(data []byte) *memoryImage {
	img := &memoryImage{data: data, fd: -1}
	if len(data) < mappedImageMin {
		return img
	}
	fd, err := unix.MemfdCreate("nimbus-wasm-image", unix.MFD_CLOEXEC)
	if err != nil {
		return img // copying still works
	}
	f := os.NewFile(uintptr(fd), "nimbus-wasm-image")
	size := roundUp(len(data), os.Getpagesize())
	// The file spans whole pages: touching a mapped page past its end
	// would raise SIGBUS.
	if _, err := f.Write(data); err != nil || f.Truncate(int64(size)) != nil {
		f.Close()
		return img
	}
	img.file, img.fd, img.mappedLen = f, fd, size
	return img
}

// mapInto lays the image over the start of region, copy-on-write.
func (img *memoryImage) mapInto(region []byte) error {
	if img.fd < 0 || img.mappedLen > len(region) {
		return unix.EINVAL
	}
	_, err := unix.MmapPtr(img.fd, 0, unsafe.Pointer(unsafe.SliceData(region)), uintptr(img.mappedLen),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	if err != nil {
		return fmt.Errorf("map memory image: %w", err)
	}
	return nil
}

func (img *memoryImage) close() {
	if img.file != nil {
		img.file.Close()
		img.file, img.fd = nil, -1
	}
}

func roundUp(n, to int) int { return (n + to - 1) / to * to }
