package runtime

import (
	"crypto/rand"
	"fmt"
	"io"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func randReader() io.Reader { return rand.Reader }

// ParseSignal parses "SIGTERM", "TERM", "term" or "15"; "" is SIGTERM.
func ParseSignal(s string) (syscall.Signal, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return syscall.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal %q out of range: %w", s, ErrInvalid)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q: %w", s, ErrInvalid)
}

// restartPolicy is a parsed restart policy.
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
	return restartPolicy{}, fmt.Errorf("restart policy %q: use no, always, on-failure[:N] or unless-stopped: %w", s, ErrInvalid)
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
