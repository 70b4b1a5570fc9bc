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
)

// Reexec runs the re-executed modes of the berth binary (container init, monitor, the init
// reaper) and reports whether it handled one; main returns immediately when it did. It must run
// before anything else in main.
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
	case monitorArg:
		os.Exit(runMonitor(os.Args[2:]))
	case initArg:
		os.Exit(runInit(os.Args[2:]))
	case seccompArg:
		os.Exit(runSeccompExec(os.Args[2:]))
	case seccompExportArg:
		os.Exit(runSeccompExport())
	case execArg:
		os.Exit(runExecMode(os.Args[2:]))
	}
	return false
}
