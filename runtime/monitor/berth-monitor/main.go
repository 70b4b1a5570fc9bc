// Command berth-monitor is the per-container monitor (package runtime/monitor) as a small
// static binary of its own: it links no libcontainer, so an idle monitor costs about 2 MiB of
// RSS instead of the ~9 MiB of the shim, whose file pages a monitor would otherwise map. It is
// also the reaper of `init: true` containers and the loader of precompiled seccomp programs. The
// runtime starts it from beside berth-shim, and falls back to `berth-shim __monitor` without it.
package main

import (
	"os"

	"github.com/berth-dev/berth/runtime/monitor"
)

func main() {
	if len(os.Args) > 1 {
		// Inside containers, bind-mounted at /dev/.berth-init: the reaper and the seccomp loader.
		switch os.Args[1] {
		case monitor.InitArg:
			os.Exit(monitor.Init(os.Args[2:]))
		case monitor.SeccompArg:
			os.Exit(monitor.SeccompExec(os.Args[2:]))
		}
	}
	os.Exit(monitor.Main(os.Args[1:]))
}
