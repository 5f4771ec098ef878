package wasm

import (
	"encoding/binary"
)

// Memory images: data segments moved out of the module.
//
// Go's linker emits tens of thousands of small data segments (40,000 for a
// hello world), and wazero evaluates each one's offset expression and copies
// it at every instantiation: about 5 ms per cold start, more than everything
// else. So, before compiling, extractData replays the data segments into one
// image of the initial memory and removes them from the module; the image is
// then laid into each instance's memory by its allocator (linearMemory): on
// Linux as a private copy-on-write mapping of a memfd holding the image, so
// an instance pays only for the pages it touches, elsewhere by one copy.
// Wasmtime's "copy-on-write memory initialization" does the same.
//
// This is observably identical to instantiating the original module: active
// segments are applied in order at instantiation (later writes win, as in
// the replay), and a segment outside the initial memory would fail the
// instantiation, so such a module is left unchanged for wazero to reject.
// A module whose segments are not all active at constant offsets, or that has
// a DataCount section (memory.init/data.drop may name segments), is left
// unchanged too.

const (
	sectionMemory    = 5
	sectionData      = 11
	sectionDataCount = 12
	opI32Const       = 0x41
	opEnd            = 0x0b
)

type dataSegment struct {
	offset uint32
	init   []byte
}

// extractData returns code without its data segments and the image they
// write at offset 0 of the initial memory, or code and nil when it does not
// qualify (or is malformed: the compiler then reports it).
func extractData(code []byte) (stripped, image []byte) {
	if _, _, _, ok := findSection(code, sectionDataCount); ok {
		return code, nil
	}
	secStart, contentStart, contentEnd, ok := findSection(code, sectionData)
	if !ok {
		return code, nil
	}
	minPages, ok := definedMemoryMin(code)
	if !ok {
		return code, nil
	}
	segs, ok := parseActiveData(code[contentStart:contentEnd])
	if !ok || len(segs) == 0 {
		return code, nil
	}
	var end uint64
	for _, s := range segs {
		end = max(end, uint64(s.offset)+uint64(len(s.init)))
	}
	if end > uint64(minPages)*pageSize {
		return code, nil
	}
	image = make([]byte, end)
	for _, s := range segs {
		copy(image[s.offset:], s.init)
	}
	stripped = make([]byte, 0, len(code)-(contentEnd-contentStart)+1)
	stripped = append(stripped, code[:secStart]...)
	stripped = append(stripped, sectionData, 1, 0) // a data section with no segments
	stripped = append(stripped, code[contentEnd:]...)
	return stripped, image
}

// definedMemoryMin returns the initial pages of the one memory the module
// defines (32-bit, not shared).
func definedMemoryMin(code []byte) (uint32, bool) {
	_, start, end, ok := findSection(code, sectionMemory)
	if !ok {
		return 0, false
	}
	b := code[start:end]
	count, n := binary.Uvarint(b)
	if n <= 0 || count != 1 || len(b) < n+2 {
		return 0, false
	}
	if flags := b[n]; flags != 0 && flags != 1 { // min, or min and max
		return 0, false
	}
	minPages, m := binary.Uvarint(b[n+1:])
	if m <= 0 || minPages > 65536 {
		return 0, false
	}
	return uint32(minPages), true
}

// findSection locates the section id in a module: where it starts and where
// its content starts and ends. ok is false when it is absent or the module
// is malformed.
func findSection(code []byte, id byte) (start, contentStart, contentEnd int, ok bool) {
	if len(code) < 8 {
		return 0, 0, 0, false
	}
	for i := 8; i < len(code); {
		start := i
		size, n := binary.Uvarint(code[i+1:])
		if n <= 0 || size > uint64(len(code)-i-1-n) {
			return 0, 0, 0, false
		}
		if code[i] == id {
			return start, i + 1 + n, i + 1 + n + int(size), true
		}
		i += 1 + n + int(size)
	}
	return 0, 0, 0, false
}

// parseActiveData parses a data section whose segments are all active in
// memory 0 at an i32.const offset.
func parseActiveData(b []byte) ([]dataSegment, bool) {
	count, n := binary.Uvarint(b)
	if n <= 0 || count > uint64(len(b)) {
		return nil, false
	}
	b = b[n:]
	segs := make([]dataSegment, 0, count)
	for range count {
		// flags 0: active, memory 0, offset expression, bytes.
		if len(b) < 3 || b[0] != 0 || b[1] != opI32Const {
			return nil, false
		}
		off, n := readSleb32(b[2:])
		if n <= 0 || len(b) < 2+n+1 || b[2+n] != opEnd {
			return nil, false
		}
		b = b[2+n+1:]
		size, n := binary.Uvarint(b)
		if n <= 0 || size > uint64(len(b)-n) {
			return nil, false
		}
		segs = append(segs, dataSegment{offset: uint32(off), init: b[n : n+int(size)]})
		b = b[n+int(size):]
	}
	return segs, len(b) == 0
}

// encodeData encodes segments as the content of a data section.
func encodeData(segs []dataSegment) []byte {
	size := 5
	for _, s := range segs {
		size += 12 + len(s.init)
	}
	b := make([]byte, 0, size)
	b = binary.AppendUvarint(b, uint64(len(segs)))
	for _, s := range segs {
		b = append(b, 0, opI32Const)
		b = appendSleb32(b, int32(s.offset))
		b = append(b, opEnd)
		b = binary.AppendUvarint(b, uint64(len(s.init)))
		b = append(b, s.init...)
	}
	return b
}

// readSleb32 decodes a signed LEB128 of at most 5 bytes.
func readSleb32(b []byte) (int32, int) {
	var result int64
	var shift uint
	for i := 0; i < len(b) && i < 5; i++ {
		c := b[i]
		result |= int64(c&0x7f) << shift
		shift += 7
		if c&0x80 == 0 {
			if shift < 64 && c&0x40 != 0 {
				result |= -1 << shift
			}
			return int32(result), i + 1
		}
	}
	return 0, 0
}

func appendSleb32(b []byte, v int32) []byte {
	x := int64(v)
	for {
		c := byte(x & 0x7f)
		x >>= 7
		if (x == 0 && c&0x40 == 0) || (x == -1 && c&0x40 != 0) {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
