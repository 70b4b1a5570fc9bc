package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiling writes a CPU profile to $BERTH_CPUPROFILE and an execution trace to
// $BERTH_TRACEFILE while the command runs, for diagnosing where a command spends its time
// (`go tool pprof`, `go tool trace`). The returned function stops both.
func startProfiling() func() {
	var stops []func()
	cpu, tr := os.Getenv("BERTH_CPUPROFILE"), os.Getenv("BERTH_TRACEFILE")
	// Processes this one starts (DNS servers, monitors) must not overwrite the files.
	os.Unsetenv("BERTH_CPUPROFILE")
	os.Unsetenv("BERTH_TRACEFILE")
	if path := cpu; path != "" {
		if f, err := os.Create(path); err != nil {
			fmt.Fprintln(os.Stderr, "berth: BERTH_CPUPROFILE:", err)
		} else if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "berth: BERTH_CPUPROFILE:", err)
			f.Close()
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := tr; path != "" {
		if f, err := os.Create(path); err != nil {
			fmt.Fprintln(os.Stderr, "berth: BERTH_TRACEFILE:", err)
		} else if err := trace.Start(f); err != nil {
			fmt.Fprintln(os.Stderr, "berth: BERTH_TRACEFILE:", err)
			f.Close()
		} else {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
