// Command berth runs Compose projects on an embedded, daemonless container engine.
package main

import (
	"os"

	crt "github.com/berth-dev/berth/runtime"
)

func main() {
	// Re-executed modes (container init, per-container monitor) must run before anything else.
	if crt.Reexec() {
		return
	}
	stop := startProfiling()
	code := run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
