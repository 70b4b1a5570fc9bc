package runtime

import (
	"bytes"
	"context"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

const maxHealthOutput = 4096

func healthEnabled(h *Healthcheck) bool {
	return h != nil && len(h.Test) > 0 && h.Test[0] != "NONE"
}

// healthArgs turns Docker's test form into a command line.
func healthArgs(test []string) []string {
	switch test[0] {
	case "CMD":
		return test[1:]
	case "CMD-SHELL":
		if len(test) < 2 {
			return nil
		}
		return []string{"/bin/sh", "-c", test[1]}
	}
	// A bare command string is run by the shell, as in Compose's string form.
	if len(test) == 1 {
		return []string{"/bin/sh", "-c", test[0]}
	}
	return test
}

// healthLoop probes the container until ctx ends, updating State.Health.
func (m *monitor) healthLoop(ctx context.Context, ct *libcontainer.Container) {
	hc := m.cfg.Healthcheck
	if !healthEnabled(hc) {
		return
	}
	args := healthArgs(hc.Test)
	if len(args) == 0 {
		return
	}
	interval := durOr(hc.Interval, 30*time.Second)
	timeout := durOr(hc.Timeout, 30*time.Second)
	startInterval := durOr(hc.StartInterval, 5*time.Second)
	retries := hc.Retries
	if retries <= 0 {
		retries = 3
	}
	started := time.Now()
	for {
		wait := interval
		inStart := time.Since(started) < hc.StartPeriod
		m.mu.Lock()
		starting := m.st.Health != nil && m.st.Health.Status == HealthStarting
		m.mu.Unlock()
		if inStart && starting {
			wait = startInterval
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		res := m.probe(ctx, ct, args, timeout)
		if ctx.Err() != nil {
			return
		}
		inStart = time.Since(started) < hc.StartPeriod
		m.mu.Lock()
		h := m.st.Health
		if h == nil {
			h = &Health{Status: HealthStarting}
		}
		h2 := *h
		h2.Log = append(append([]HealthResult(nil), h.Log...), res)
		if len(h2.Log) > 5 {
			h2.Log = h2.Log[len(h2.Log)-5:]
		}
		if res.ExitCode == 0 {
			h2.Status = HealthHealthy
			h2.FailingStreak = 0
		} else if !inStart || h2.Status != HealthStarting {
			h2.FailingStreak++
			if h2.FailingStreak >= retries {
				h2.Status = HealthUnhealthy
			}
		}
		m.st.Health = &h2
		m.writeState()
		m.mu.Unlock()
	}
}

func durOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// limitedBuffer keeps the first maxHealthOutput bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxHealthOutput - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// probe runs one healthcheck command in the container.
func (m *monitor) probe(ctx context.Context, ct *libcontainer.Container, args []string, timeout time.Duration) HealthResult {
	res := HealthResult{Start: time.Now().UTC(), ExitCode: -1}
	u, err := resolveUser(m.cfg.Rootfs, m.cfg.User, m.cfg.GroupAdd)
	if err != nil {
		res.End, res.Output = time.Now().UTC(), err.Error()
		return res
	}
	cwd := m.cfg.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	r, w, err := os.Pipe()
	if err != nil {
		res.End, res.Output = time.Now().UTC(), err.Error()
		return res
	}
	p := &libcontainer.Process{
		Args: args, Env: processEnv(m.cfg.Env, u, m.cfg.Hostname, false), Cwd: cwd,
		UID: u.UID, GID: u.GID, AdditionalGroups: u.Groups,
		Stdout: w, Stderr: w,
	}
	if err := ct.Run(p); err != nil {
		w.Close()
		r.Close()
		res.End, res.Output = time.Now().UTC(), err.Error()
		return res
	}
	w.Close()
	var out limitedBuffer
	copied := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := r.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		r.Close()
		close(copied)
	}()
	exited := make(chan *os.ProcessState, 1)
	go func() { ps, _ := p.Wait(); exited <- ps }()
	var ps *os.ProcessState
	timedOut := false
	select {
	case ps = <-exited:
	case <-time.After(timeout):
		timedOut = true
		_ = p.Signal(unix.SIGKILL)
		ps = <-exited
	case <-ctx.Done():
		_ = p.Signal(unix.SIGKILL)
		ps = <-exited
	}
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	res.End = time.Now().UTC()
	out.mu.Lock()
	res.Output = out.buf.String()
	out.mu.Unlock()
	if timedOut {
		res.Output = "Health check exceeded timeout (" + timeout.String() + ")"
		return res
	}
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			if ws.Exited() {
				res.ExitCode = ws.ExitStatus()
			} else if ws.Signaled() {
				res.ExitCode = 128 + int(ws.Signal())
			}
		}
	}
	return res
}
