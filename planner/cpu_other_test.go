//go:build !unix

package planner

import "time"

func processCPU() time.Duration { return 0 }
