// Command berth-shim is the small re-exec target of the runtime: libcontainer's init, the
// per-container monitor's short-lived helpers (__start creates and starts a container,
// __health runs a probe, __destroy tears a container down), exec and the --init reaper. It
// links only the runtime package, so it starts faster and uses less memory than the full berth
// binary, whose package initialisation (compose-go's JSON schema, buildkit, registry clients)
// would otherwise be paid by every container start. Install it next to berth; without it the
// runtime re-execs berth itself. The monitor itself is berth-monitor (runtime/monitor), a much
// smaller binary installed beside this one; without it, berth-shim runs the same monitor code
// as `berth-shim __monitor`.
package main

import (
	"fmt"
	"os"

	crt "github.com/berth-dev/berth/runtime"
)

func main() {
	if crt.Reexec() {
		return
	}
	fmt.Fprintln(os.Stderr, "berth-shim is started by berth; it is not meant to be run directly")
	os.Exit(2)
}
