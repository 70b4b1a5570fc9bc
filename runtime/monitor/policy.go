package monitor

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// restartPolicy is a parsed restart policy (runtime.ContainerConfig.Restart).
type restartPolicy struct {
	mode       string // no, always, on-failure, unless-stopped
	maxRetries int    // on-failure: 0 = unlimited
}

func parseRestart(s string) (restartPolicy, error) {
	mode, n, hasN := strings.Cut(s, ":")
	switch mode {
	case "", "no":
		return restartPolicy{mode: "no"}, nil
	case "always", "unless-stopped":
		if hasN {
			break
		}
		return restartPolicy{mode: mode}, nil
	case "on-failure":
		p := restartPolicy{mode: mode}
		if hasN {
			v, err := strconv.Atoi(n)
			if err != nil || v < 0 {
				break
			}
			p.maxRetries = v
		}
		return p, nil
	}
	return restartPolicy{}, errors.New("restart policy " + strconv.Quote(s) + ": use no, always, on-failure[:N] or unless-stopped")
}

// CheckRestart validates a restart policy (no, always, on-failure[:N], unless-stopped).
func CheckRestart(s string) error {
	_, err := parseRestart(s)
	return err
}

// shouldRestart decides whether a container that exited with code, after restarts so far,
// starts again. stopped is true when a user stopped it.
func (p restartPolicy) shouldRestart(code, restarts int, stopped bool) bool {
	if stopped {
		return false
	}
	switch p.mode {
	case "always", "unless-stopped":
		return true
	case "on-failure":
		return code != 0 && (p.maxRetries == 0 || restarts < p.maxRetries)
	}
	return false
}

// backoff is the delay before restart number n (0-based): 100ms doubling, capped at 1 minute.
// A container that ran for at least 10 seconds starts over at 100ms (the caller resets n).
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < n && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}
