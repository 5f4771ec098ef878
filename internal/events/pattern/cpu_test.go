//go:build unix

package pattern

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU adds a "cpu-ns/op" metric: process CPU time per operation. The
// machines these benchmarks run on are shared, and wall time per op (ns/op)
// then measures the neighbours as much as the code.
func reportCPU(b *testing.B) func() {
	b.Helper()
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
