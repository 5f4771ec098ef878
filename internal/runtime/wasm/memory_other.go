//go:build !linux

package wasm

import "errors"

// Outside Linux, memories are Go slices and images are copied.

func mapMemory(uint64) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapMemory([]byte) {}

func newMemoryImage(data []byte) *memoryImage { return &memoryImage{data: data, fd: -1} }

func (img *memoryImage) mapInto([]byte) error { return errors.ErrUnsupported }

func (img *memoryImage) close() {}
