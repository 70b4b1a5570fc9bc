package monitor

import (
	"strconv"
	"strings"
	"syscall"
	"time"
)

func healthEnabled(h *healthcheck) bool {
	return h != nil && len(h.Test) > 0 && h.Test[0] != "NONE"
}

func durOr(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// healthLoop probes the container until stop is closed, updating State.Health; it closes
// done when it returns.
func (m *monitor) healthLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	hc := m.cfg.Healthcheck
	if !healthEnabled(hc) {
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
		starting := m.st.Health != nil && m.st.Health.Status == healthStarting
		m.mu.Unlock()
		if inStart && starting {
			wait = startInterval
		}
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		res, ok := m.probe(stop, timeout)
		if !ok {
			return
		}
		inStart = time.Since(started) < hc.StartPeriod
		m.mu.Lock()
		h := m.st.Health
		if h == nil {
			h = &Health{Status: healthStarting}
		}
		h2 := *h
		h2.Log = append(append([]HealthResult(nil), h.Log...), res)
		if len(h2.Log) > 5 {
			h2.Log = h2.Log[len(h2.Log)-5:]
		}
		if res.ExitCode == 0 {
			h2.Status = healthHealthy
			h2.FailingStreak = 0
		} else if !inStart || h2.Status != healthStarting {
			h2.FailingStreak++
			if h2.FailingStreak >= retries {
				h2.Status = healthUnhealthy
			}
		}
		m.st.Health = &h2
		m.writeState()
		m.mu.Unlock()
	}
}

// probe runs one healthcheck in `SHIM __health`, which prints "CODE START END" (Unix
// nanoseconds) and the probe's output. ok is false when stop was closed meanwhile.
func (m *monitor) probe(stop <-chan struct{}, timeout time.Duration) (HealthResult, bool) {
	res := HealthResult{Start: time.Now().UTC(), ExitCode: -1}
	fail := func(msg string) (HealthResult, bool) {
		res.End, res.Output = time.Now().UTC(), msg
		return res, true
	}
	r, w, err := pipe()
	if err != nil {
		return fail(err.Error())
	}
	pid, exited, err := m.reaper.spawn(m.shim, []string{"berth-health", HealthArg, m.root, m.runRoot, m.id,
		strconv.FormatInt(int64(timeout), 10)}, []int{0, w, 2})
	syscall.Close(w)
	if err != nil {
		syscall.Close(r)
		return fail("run health helper: " + err.Error())
	}
	out := make(chan []byte, 1)
	go func() {
		var b []byte
		buf := make([]byte, 4096)
		for len(b) < 64<<10 {
			n, err := syscall.Read(r, buf)
			if err == syscall.EINTR {
				continue
			}
			if n <= 0 || err != nil {
				break
			}
			b = append(b, buf[:n]...)
		}
		syscall.Close(r)
		out <- b
	}()
	// The helper enforces the timeout; this one only guards against a stuck helper.
	guard := time.NewTimer(timeout + 30*time.Second)
	defer guard.Stop()
	var ws syscall.WaitStatus
	select {
	case ws = <-exited:
	case <-guard.C:
		_ = m.reaper.signal(pid, syscall.SIGKILL)
		ws = <-exited
	case <-stop:
		_ = m.reaper.signal(pid, syscall.SIGKILL)
		<-exited
		return res, false
	}
	b := <-out
	head, body, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(head)
	if len(f) != 3 {
		return fail("health helper exited with status " + strconv.Itoa(exitCode(ws)) + ": " + strings.TrimSpace(string(b)))
	}
	code, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseInt(f[1], 10, 64)
	end, err3 := strconv.ParseInt(f[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return fail("health helper: bad report " + strconv.Quote(head))
	}
	return HealthResult{Start: time.Unix(0, start).UTC(), End: time.Unix(0, end).UTC(), ExitCode: code, Output: body}, true
}
