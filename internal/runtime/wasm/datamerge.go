package wasm

import (
	"encoding/binary"
)

// Data segment coalescing.
//
// Go's linker emits tens of thousands of small data segments (40,000 for a
// hello world), and wazero evaluates each one's offset expression at every
// instantiation: about 5 ms per cold start, more than everything else.
// Before compiling, coalesceData rewrites the data section into a few
// segments holding the same bytes at the same addresses. The result is
// observably identical: segments are applied in order at instantiation, so
// replaying them into one image (later writes win) and emitting the covered
// runs writes the same memory; gaps filled with zeros were zero anyway, as
// memory starts zeroed. A module it cannot prove this for (passive segments,
// non-constant offsets, a DataCount section that memory.init could use) is
// left unchanged.
const (
	// coalesceMinSegments is the count below which rewriting gains nothing.
	coalesceMinSegments = 64
	// coalesceMaxGap is the longest run of uncovered bytes merged into a
	// segment (as zeros) instead of starting a new segment.
	coalesceMaxGap = 256
	// coalesceMaxSpan bounds the image built while rewriting.
	coalesceMaxSpan = 256 << 20
)

const (
	sectionData      = 11
	sectionDataCount = 12
	opI32Const       = 0x41
	opEnd            = 0x0b
)

type dataSegment struct {
	offset uint32
	init   []byte
}

// coalesceData returns code with its data segments merged, or code itself
// when it does not qualify or is malformed (the compiler then reports it).
func coalesceData(code []byte) []byte {
	if len(code) < 8 {
		return code
	}
	if _, _, _, ok := findSection(code, sectionDataCount); ok {
		return code
	}
	secStart, contentStart, contentEnd, ok := findSection(code, sectionData)
	if !ok {
		return code
	}
	segs, ok := parseActiveData(code[contentStart:contentEnd])
	if !ok || len(segs) < coalesceMinSegments {
		return code
	}
	merged, ok := mergeSegments(segs)
	if !ok {
		return code
	}
	content := encodeData(merged)
	out := make([]byte, 0, len(code)-(contentEnd-secStart)+len(content)+6)
	out = append(out, code[:secStart]...)
	out = append(out, sectionData)
	out = binary.AppendUvarint(out, uint64(len(content)))
	out = append(out, content...)
	return append(out, code[contentEnd:]...)
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

// mergeSegments replays segs into an image and returns its covered runs.
func mergeSegments(segs []dataSegment) ([]dataSegment, bool) {
	lo, hi := uint64(1<<32), uint64(0)
	for _, s := range segs {
		lo = min(lo, uint64(s.offset))
		hi = max(hi, uint64(s.offset)+uint64(len(s.init)))
	}
	if hi <= lo || hi-lo > coalesceMaxSpan {
		return nil, false
	}
	image := make([]byte, hi-lo)
	covered := make([]bool, hi-lo)
	for _, s := range segs {
		at := uint64(s.offset) - lo
		copy(image[at:], s.init)
		for i := range s.init {
			covered[at+uint64(i)] = true
		}
	}
	var out []dataSegment
	for i := 0; i < len(covered); {
		if !covered[i] {
			i++
			continue
		}
		start, end := i, i
		for end < len(covered) {
			if covered[end] {
				end++
				continue
			}
			gap := end
			for gap < len(covered) && !covered[gap] && gap-end <= coalesceMaxGap {
				gap++
			}
			if gap == len(covered) || !covered[gap] {
				break // a long gap, or only zeros until the end
			}
			end = gap
		}
		out = append(out, dataSegment{offset: uint32(lo + uint64(start)), init: image[start:end]})
		i = end
	}
	return out, true
}

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
