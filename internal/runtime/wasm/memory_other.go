//go:build !linux

package wasm

import "errors"

// mapMemory is not used outside Linux: memories are Go slices there.
func mapMemory(uint64) ([]byte, error) { return nil, errors.ErrUnsupported }

func unmapMemory([]byte) {}
