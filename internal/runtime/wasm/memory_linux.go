//go:build linux

package wasm

import "syscall"

// mapMemory reserves size bytes of zeroed, private memory. MAP_NORESERVE:
// only the pages a guest touches count against the system's memory, so a
// function's limit can be reserved whole.
func mapMemory(size uint64) ([]byte, error) {
	if size == 0 || size > 1<<32 {
		return nil, syscall.EINVAL
	}
	return syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS|syscall.MAP_NORESERVE)
}

func unmapMemory(b []byte) { _ = syscall.Munmap(b) }
