package runtime

import "github.com/berth-dev/berth/runtime/monitor"

const (
	initArg = monitor.InitArg
	execArg = "__exec"
)
