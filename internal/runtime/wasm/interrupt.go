package wasm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Interrupting a running guest.
//
// A timeout must stop a guest in the middle of any loop, and a guest that
// spins must not hold up the Go runtime: a goroutine running generated code
// cannot be preempted, so a garbage collection waiting to stop the world
// would wait for the guest, and with it every request of the node. wazero
// can do both itself (RuntimeConfig.WithCloseOnContextDone), by calling out
// to Go at the head of every loop iteration; that makes guest code slow (on
// this machine a tight loop ran 40 times slower, encoding/json 4 times, a Go
// command's start-up a third slower). So instead, before compiling, every
// loop head of the module gets an inline countdown:
//
//	global.get $tick ; i32.const 1 ; i32.sub ; global.set $tick
//	global.get $tick ; i32.eqz ; if
//	  i32.const interruptEvery ; global.set $tick
//	  i32.const 0 ; memory.grow ; drop       ;; a call into Go: preemptible
//	  global.get $interrupt ; if ; unreachable ; end
//	end
//
// a load, a store and a branch per iteration, and every interruptEvery
// iterations an exit to Go (memory.grow by 0 pages is handled in Go by
// wazero, where the Go scheduler can stop the goroutine) and a look at the
// flag $interrupt. $tick and $interrupt are mutable i32 globals added to
// the module, the flag exported as interruptExport; a module without a
// memory gets an empty one for the memory.grow. To stop a guest the host
// raises the flag (instance.stop): the guest traps within interruptEvery
// iterations of its current loop, or returns from the host call it waits in
// (those watch the instance's context). Recursion without a loop ends in a
// stack overflow, so loop heads suffice.
//
// The rewrite knows every instruction wazero compiles (the core
// specification with sign extension, saturating conversions, bulk memory,
// reference types, multi-value, tail calls and SIMD). A module with any
// other instruction is refused: nothing could stop it.

// interruptEvery is how many loop iterations run between exits to Go.
const interruptEvery = 1024

// interruptExport names the flag global in an instrumented module.
const interruptExport = "nimbus.interrupt"

const (
	sectionImport   = 2
	sectionGlobal   = 6
	sectionExport   = 7
	sectionCode     = 10
	exportKindGlob  = 3
	importKindFunc  = 0
	importKindTable = 1
	importKindMem   = 2
	importKindGlob  = 3
	importKindTag   = 4
)

// interruptCheck is the code inserted after each loop's block type.
func interruptCheck(flag, tick uint32) []byte {
	get := func(b []byte, g uint32) []byte { return binary.AppendUvarint(append(b, 0x23), uint64(g)) }
	set := func(b []byte, g uint32) []byte { return binary.AppendUvarint(append(b, 0x24), uint64(g)) }
	b := get(nil, tick)
	b = append(b, 0x41, 0x01, 0x6b) // i32.const 1, i32.sub
	b = set(b, tick)
	b = get(b, tick)
	b = append(b, 0x45, 0x04, 0x40) // i32.eqz, if
	b = appendSleb32(append(b, 0x41), interruptEvery)
	b = set(b, tick)
	b = append(b, 0x41, 0x00, 0x40, 0x00, 0x1a) // i32.const 0, memory.grow 0, drop
	b = get(b, flag)
	return append(b, 0x04, 0x40, 0x00, 0x0b, 0x0b) // if, unreachable, end, end
}

// errUninterruptible: the module has an instruction the rewrite does not know.
var errUninterruptible = errors.New("the module uses instructions Nimbus cannot make interruptible (threads, exceptions or garbage collection)")

// errMalformed: the module does not parse. (A module the rewrite cannot
// parse is never compiled as it is: it could not be stopped.)
var errMalformed = errors.New("malformed module")

// instrumentLoops returns code with the interrupt flag added and checked
// at every loop head, or an error (errUninterruptible, errMalformed).
func instrumentLoops(code []byte) ([]byte, error) {
	if len(code) < 8 {
		return nil, errMalformed
	}
	type section struct {
		id      byte
		content []byte
	}
	var secs []section
	for i := 8; i < len(code); {
		size, n := binary.Uvarint(code[i+1:])
		if n <= 0 || size > uint64(len(code)-i-1-n) {
			return nil, fmt.Errorf("%w: section at byte %d", errMalformed, i)
		}
		start := i + 1 + n
		secs = append(secs, section{code[i], code[start : start+int(size)]})
		i = start + int(size)
	}

	// The new globals' indexes: after the imported and the defined ones.
	var globals, memories uint64
	for _, s := range secs {
		switch s.id {
		case sectionImport:
			g, m, ok := importedGlobalsAndMemories(s.content)
			if !ok {
				return nil, fmt.Errorf("%w: import section", errMalformed)
			}
			globals += g
			memories += m
		case sectionMemory:
			n, k := binary.Uvarint(s.content)
			if k <= 0 {
				return nil, fmt.Errorf("%w: memory section", errMalformed)
			}
			memories += n
		case sectionGlobal:
			n, k := binary.Uvarint(s.content)
			if k <= 0 {
				return nil, fmt.Errorf("%w: global section", errMalformed)
			}
			globals += n
		}
	}
	if globals >= 1<<32-2 {
		return nil, fmt.Errorf("%w: too many globals", errMalformed)
	}
	flag, tick := uint32(globals), uint32(globals+1)
	check := interruptCheck(flag, tick)

	// i32, mutable, i32.const 0 / interruptEvery, end
	newGlobal := []byte{0x7f, 0x01, 0x41, 0x00, 0x0b, 0x7f, 0x01, 0x41}
	newGlobal = append(appendSleb32(newGlobal, interruptEvery), 0x0b)
	newExport := binary.AppendUvarint(nil, uint64(len(interruptExport)))
	newExport = append(newExport, interruptExport...)
	newExport = append(newExport, exportKindGlob)
	newExport = binary.AppendUvarint(newExport, uint64(flag))

	// Sections keep their order: the global section comes before the export
	// section, which comes before start, element, data count, code and data.
	order := func(id byte) int {
		switch id {
		case 1, 2, 3, 4, 5:
			return int(id)
		case 13: // tag
			return 6
		case sectionGlobal:
			return 7
		case sectionExport:
			return 8
		case 8, 9:
			return int(id) + 1
		case 12: // data count
			return 11
		case sectionCode:
			return 12
		case 11: // data
			return 13
		}
		return -1
	}
	out := append([]byte(nil), code[:8]...)
	appendSection := func(id byte, content []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(content)))
		out = append(out, content...)
	}
	addedGlobal, addedExport, addedMemory := false, false, memories > 0
	for _, s := range secs {
		if o := order(s.id); o > 0 {
			if !addedMemory && o > order(sectionMemory) {
				appendSection(sectionMemory, []byte{1, 0x00, 0x00}) // one memory of 0 pages
				addedMemory = true
			}
			if !addedGlobal && o > order(sectionGlobal) {
				appendSection(sectionGlobal, append([]byte{2}, newGlobal...))
				addedGlobal = true
			}
			if !addedExport && o > order(sectionExport) {
				appendSection(sectionExport, append([]byte{1}, newExport...))
				addedExport = true
			}
		}
		switch s.id {
		case sectionGlobal:
			c, ok := appendToVector(s.content, 2, newGlobal)
			if !ok {
				return nil, fmt.Errorf("%w: global section", errMalformed)
			}
			appendSection(s.id, c)
			addedGlobal = true
		case sectionExport:
			c, ok := appendToVector(s.content, 1, newExport)
			if !ok {
				return nil, fmt.Errorf("%w: export section", errMalformed)
			}
			appendSection(s.id, c)
			addedExport = true
		case sectionCode:
			c, err := instrumentCode(s.content, check)
			if err != nil {
				return nil, err
			}
			if c == nil {
				return nil, fmt.Errorf("%w: code section", errMalformed)
			}
			appendSection(s.id, c)
		default:
			appendSection(s.id, s.content)
		}
	}
	if !addedMemory {
		appendSection(sectionMemory, []byte{1, 0x00, 0x00})
	}
	if !addedGlobal {
		appendSection(sectionGlobal, append([]byte{2}, newGlobal...))
	}
	if !addedExport {
		appendSection(sectionExport, append([]byte{1}, newExport...))
	}
	return out, nil
}

// appendToVector adds n entries (encoded in entries) to a vector.
func appendToVector(vec []byte, n uint64, entries []byte) ([]byte, bool) {
	count, k := binary.Uvarint(vec)
	if k <= 0 {
		return nil, false
	}
	out := binary.AppendUvarint(nil, count+n)
	out = append(out, vec[k:]...)
	return append(out, entries...), true
}

// importedGlobalsAndMemories counts the global and the memory imports of
// an import section.
func importedGlobalsAndMemories(b []byte) (globals, memories uint64, ok bool) {
	r := reader{b: b}
	count := r.u32()
	for range count {
		r.bytes() // module
		r.bytes() // name
		switch kind := r.byte(); kind {
		case importKindFunc:
			r.u32()
		case importKindTable:
			r.byte() // reference type
			r.limits()
		case importKindMem:
			r.limits()
			memories++
		case importKindGlob:
			r.byte() // value type
			r.byte() // mutability
			globals++
		case importKindTag:
			r.byte()
			r.u32()
		default:
			return 0, 0, false
		}
		if r.bad {
			return 0, 0, false
		}
	}
	return globals, memories, !r.bad && r.i == len(b)
}

// instrumentCode rewrites a code section. nil, nil: malformed.
func instrumentCode(b []byte, check []byte) ([]byte, error) {
	r := reader{b: b}
	count := r.u32()
	if r.bad {
		return nil, nil
	}
	out := binary.AppendUvarint(make([]byte, 0, len(b)+len(b)/16), uint64(count))
	var body []byte
	for range count {
		size := int(r.u32())
		if r.bad || size > len(b)-r.i {
			return nil, nil
		}
		var err error
		body, err = instrumentBody(body[:0], b[r.i:r.i+size], check)
		if err != nil || body == nil {
			return nil, err
		}
		r.i += size
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	if r.i != len(b) {
		return nil, nil
	}
	return out, nil
}

// instrumentBody appends body to out with check after every loop's block
// type. nil, nil: malformed.
func instrumentBody(out, body []byte, check []byte) ([]byte, error) {
	r := reader{b: body}
	groups := r.u32()
	for range groups {
		r.u32()  // count
		r.byte() // value type
	}
	if r.bad {
		return nil, nil
	}
	out = append(out, body[:r.i]...)
	for !r.bad && r.i < len(body) {
		start := r.i
		op := r.byte()
		loop := op == 0x03
		if err := r.skipImmediates(op); err != nil {
			return nil, err
		}
		if r.bad {
			return nil, nil
		}
		out = append(out, body[start:r.i]...)
		if loop {
			out = append(out, check...)
		}
	}
	if r.bad {
		return nil, nil
	}
	return out, nil
}

// reader decodes the binary format; a read past the end sets bad.
type reader struct {
	b   []byte
	i   int
	bad bool
}

func (r *reader) byte() byte {
	if r.i >= len(r.b) {
		r.bad = true
		return 0
	}
	c := r.b[r.i]
	r.i++
	return c
}

func (r *reader) u32() uint32 {
	v, n := binary.Uvarint(r.b[min(r.i, len(r.b)):])
	if n <= 0 || n > 5 || v > 1<<32-1 {
		r.bad = true
		return 0
	}
	r.i += n
	return uint32(v)
}

// leb skips a LEB128 number of at most max bytes (signed or not).
func (r *reader) leb(max int) {
	for n := 0; ; n++ {
		if n == max {
			r.bad = true
			return
		}
		if r.byte()&0x80 == 0 || r.bad {
			return
		}
	}
}

func (r *reader) skip(n int) {
	if n > len(r.b)-r.i {
		r.bad = true
		return
	}
	r.i += n
}

func (r *reader) bytes() {
	n := r.u32()
	if !r.bad {
		r.skip(int(n))
	}
}

func (r *reader) limits() {
	switch r.byte() {
	case 0x00:
		r.u32()
	case 0x01, 0x03: // min max (0x03: shared)
		r.u32()
		r.u32()
	case 0x02:
		r.u32()
	default:
		r.bad = true
	}
}

// blockType skips a block type: empty, a value type, or a type index.
func (r *reader) blockType() {
	if r.i >= len(r.b) {
		r.bad = true
		return
	}
	switch c := r.b[r.i]; c {
	case 0x40, 0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f:
		r.i++
	default:
		r.leb(5) // s33 type index
	}
}

// memarg skips alignment (with a memory index when bit 6 is set) and offset.
func (r *reader) memarg() {
	if r.u32()&0x40 != 0 {
		r.u32()
	}
	r.leb(10)
}

// skipImmediates skips what follows opcode op.
func (r *reader) skipImmediates(op byte) error {
	switch {
	case op == 0x00, op == 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b, op == 0xd1:
	case op >= 0x45 && op <= 0xc4: // numeric
	case op == 0x02, op == 0x03, op == 0x04:
		r.blockType()
	case op == 0x0c, op == 0x0d, op == 0x10, op == 0x12, op == 0xd2:
		r.u32()
	case op == 0x11, op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x0e: // br_table
		n := r.u32()
		for i := uint32(0); i <= n && !r.bad; i++ {
			r.u32()
		}
	case op == 0x1c: // select t*
		n := r.u32()
		r.skip(int(n))
	case op >= 0x20 && op <= 0x26: // locals, globals, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f, op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41:
		r.leb(5)
	case op == 0x42:
		r.leb(10)
	case op == 0x43:
		r.skip(4)
	case op == 0x44:
		r.skip(8)
	case op == 0xd0: // ref.null
		r.byte()
	case op == 0xfc:
		return r.skipMisc()
	case op == 0xfd:
		return r.skipSIMD()
	default:
		if !r.bad {
			return fmt.Errorf("%w: opcode 0x%02x", errUninterruptible, op)
		}
	}
	return nil
}

func (r *reader) skipMisc() error {
	switch sub := r.u32(); {
	case r.bad:
	case sub <= 7: // saturating conversions
	case sub == 8: // memory.init
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	case sub == 10, sub == 12, sub == 14: // memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	default:
		return fmt.Errorf("%w: opcode 0xfc %d", errUninterruptible, sub)
	}
	return nil
}

func (r *reader) skipSIMD() error {
	switch sub := r.u32(); {
	case r.bad:
	case sub <= 11, sub == 92, sub == 93: // loads, stores, load zero
		r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.skip(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		r.memarg()
		r.byte()
	case sub <= 0x113:
	default:
		return fmt.Errorf("%w: opcode 0xfd %d", errUninterruptible, sub)
	}
	return nil
}
