// Command berth-shim is the small re-exec target of the runtime: the per-container monitor,
// libcontainer's init and the --init reaper. It links only the runtime package, so it starts
// faster and uses less memory than the full berth binary, whose package initialisation
// (compose-go's JSON schema, buildkit, registry clients) would otherwise be paid by every
// container start and every monitor. Install it next to berth; without it the runtime re-execs
// berth itself.
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
