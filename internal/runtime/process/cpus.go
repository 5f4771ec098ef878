package process

import (
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// cpuPlacer gives each instance its CPUs, as Lambda gives a function CPU in
// proportion to its memory: one CPU for every 1,769 MB, at least one. An
// instance with fewer CPUs than the node is pinned to them, round robin
// over the node's CPUs, whatever its concurrency (Lambda's multi-concurrency
// mode also sizes CPU by memory), so its runtime sizes itself to what it gets (Go's
// GOMAXPROCS, Node's thread pool, ...). Many single-CPU runtimes on a small
// machine otherwise each spin up as many threads as the node has CPUs and
// spend their time handing work between them.
type cpuPlacer struct {
	all  []int // the node's CPUs
	next atomic.Uint32
}

// mbPerCPU is Lambda's memory per vCPU.
const mbPerCPU = 1769

func newCPUPlacer() *cpuPlacer {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return &cpuPlacer{}
	}
	p := &cpuPlacer{}
	for c := range 1024 {
		if set.IsSet(c) {
			p.all = append(p.all, c)
		}
	}
	return p
}

// place returns the CPU set of an instance of a function with memMB, and
// false when it gets every CPU (nothing to pin).
func (p *cpuPlacer) place(memMB int) (unix.CPUSet, bool) {
	var set unix.CPUSet
	n := max(memMB/mbPerCPU, 1)
	if n >= len(p.all) || len(p.all) < 2 {
		return set, false
	}
	first := int(p.next.Add(uint32(n))) - n
	for i := range n {
		set.Set(p.all[(first+i)%len(p.all)])
	}
	return set, true
}

// withAffinity runs start (which forks the instance) on a thread pinned to
// set, so the child inherits set from its first instruction: a runtime
// reads its CPUs once, at start. The thread gets its old set back after.
func withAffinity(set unix.CPUSet, start func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.CPUSet
	if err := unix.SchedGetaffinity(0, &old); err != nil {
		return start()
	}
	if err := unix.SchedSetaffinity(0, &set); err != nil {
		return start()
	}
	defer unix.SchedSetaffinity(0, &old)
	return start()
}
