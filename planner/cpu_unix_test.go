//go:build unix

package planner

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user+system) the test process has used so far, GC included.
// Benchmarks report it per op: on a shared machine wall time says more about the neighbours.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
