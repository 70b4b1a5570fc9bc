package runtime

import (
	"os"

	// Registers the device-cgroup rule setter; without it starts fail with "cgroup manager is
	// not configured to set device rules".
	_ "github.com/opencontainers/cgroups/devices"
	"github.com/opencontainers/runc/libcontainer"
	// nsenter's cgo constructor sets up namespaces before the Go runtime starts in the
	// re-executed "init"; without it every start fails with "can't get final child's PID from
	// pipe: EOF".
	_ "github.com/opencontainers/runc/libcontainer/nsenter"

	"github.com/berth-dev/berth/runtime/monitor"
)

// Reexec runs the re-executed modes of the berth binary (container init, the monitor and its
// __start/__health/__destroy helpers, the init reaper, exec) and reports whether it handled
// one; main returns immediately when it did. It must run before anything else in main.
func Reexec() bool {
	if len(os.Args) < 2 {
		return false
	}
	switch os.Args[1] {
	case "init":
		if os.Getenv("_LIBCONTAINER_INITPIPE") == "" {
			return false
		}
		libcontainer.Init() // never returns
	case monitor.Arg:
		// Without a berth-monitor binary, the shim runs the same monitor itself.
		os.Exit(monitor.Main(os.Args[2:]))
	case monitor.StartArg:
		os.Exit(runStart(os.Args[2:]))
	case monitor.HealthArg:
		os.Exit(runHealth(os.Args[2:]))
	case monitor.DestroyArg:
		os.Exit(runDestroy(os.Args[2:]))
	case initArg:
		os.Exit(monitor.Init(os.Args[2:]))
	case seccompArg:
		os.Exit(monitor.SeccompExec(os.Args[2:]))
	case seccompExportArg:
		os.Exit(runSeccompExport())
	case execArg:
		os.Exit(runExecMode(os.Args[2:]))
	}
	return false
}
