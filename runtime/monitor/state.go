package monitor

import (
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Container statuses and health statuses, the words runtime.State uses.
const (
	statusCreated    = "created"
	statusRunning    = "running"
	statusRestarting = "restarting"
	statusExited     = "exited"

	healthStarting  = "starting"
	healthHealthy   = "healthy"
	healthUnhealthy = "unhealthy"
)

// State mirrors runtime.State field for field and encodes to the same JSON (state.json).
type State struct {
	Status        string
	Pid           int
	ExitCode      int
	OOMKilled     bool
	Error         string
	StartedAt     time.Time
	FinishedAt    time.Time
	RestartCount  int
	StoppedByUser bool
	Health        *Health
	MonitorPid    int
}

// Health mirrors runtime.Health.
type Health struct {
	Status        string
	FailingStreak int
	Log           []HealthResult
}

// HealthResult mirrors runtime.HealthResult.
type HealthResult struct {
	Start    time.Time
	End      time.Time
	ExitCode int
	Output   string
}

// AppendJSON appends the state as encoding/json encodes runtime.State.
func (s *State) AppendJSON(b []byte) []byte {
	b = append(b, `{"status":`...)
	b = appendString(b, s.Status)
	if s.Pid != 0 {
		b = append(b, `,"pid":`...)
		b = strconv.AppendInt(b, int64(s.Pid), 10)
	}
	b = append(b, `,"exitCode":`...)
	b = strconv.AppendInt(b, int64(s.ExitCode), 10)
	if s.OOMKilled {
		b = append(b, `,"oomKilled":true`...)
	}
	if s.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, s.Error)
	}
	if !s.StartedAt.IsZero() {
		b = append(b, `,"startedAt":`...)
		b = appendTime(b, s.StartedAt)
	}
	if !s.FinishedAt.IsZero() {
		b = append(b, `,"finishedAt":`...)
		b = appendTime(b, s.FinishedAt)
	}
	if s.RestartCount != 0 {
		b = append(b, `,"restartCount":`...)
		b = strconv.AppendInt(b, int64(s.RestartCount), 10)
	}
	if s.StoppedByUser {
		b = append(b, `,"stoppedByUser":true`...)
	}
	if s.Health != nil {
		h := s.Health
		b = append(b, `,"health":{"status":`...)
		b = appendString(b, h.Status)
		b = append(b, `,"failingStreak":`...)
		b = strconv.AppendInt(b, int64(h.FailingStreak), 10)
		if len(h.Log) > 0 {
			b = append(b, `,"log":[`...)
			for i, r := range h.Log {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"start":`...)
				b = appendTime(b, r.Start)
				b = append(b, `,"end":`...)
				b = appendTime(b, r.End)
				b = append(b, `,"exitCode":`...)
				b = strconv.AppendInt(b, int64(r.ExitCode), 10)
				b = append(b, `,"output":`...)
				b = appendString(b, r.Output)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	if s.MonitorPid != 0 {
		b = append(b, `,"monitorPid":`...)
		b = strconv.AppendInt(b, int64(s.MonitorPid), 10)
	}
	return append(b, '}')
}

// ParseState decodes state.json as written by the runtime or AppendJSON.
func ParseState(b []byte) (State, error) {
	v, err := parseJSON(b)
	if err != nil {
		return State{}, err
	}
	o, ok := v.(map[string]any)
	if !ok {
		return State{}, errSyntax
	}
	s := stateFrom(o)
	return s, nil
}

func stateFrom(o object) State {
	s := State{
		Status:        o.str("status"),
		Pid:           int(o.int("pid")),
		ExitCode:      int(o.int("exitCode")),
		OOMKilled:     o.bool("oomKilled"),
		Error:         o.str("error"),
		StartedAt:     o.time("startedAt"),
		FinishedAt:    o.time("finishedAt"),
		RestartCount:  int(o.int("restartCount")),
		StoppedByUser: o.bool("stoppedByUser"),
		MonitorPid:    int(o.int("monitorPid")),
	}
	if h := o.obj("health"); h != nil {
		s.Health = &Health{Status: h.str("status"), FailingStreak: int(h.int("failingStreak"))}
		logs, _ := h["log"].([]any)
		for _, l := range logs {
			lo, _ := l.(map[string]any)
			r := object(lo)
			s.Health.Log = append(s.Health.Log, HealthResult{
				Start: r.time("start"), End: r.time("end"), ExitCode: int(r.int("exitCode")), Output: r.str("output"),
			})
		}
	}
	return s
}

// config is the part of runtime.ContainerConfig (config.json) the monitor uses.
type config struct {
	Tty           bool
	OpenStdin     bool
	Restart       string
	Healthcheck   *healthcheck
	LogMaxSize    int64
	LogMaxFiles   int
	AutoRemove    bool
	AutoRemoveCmd []string
}

type healthcheck struct {
	Test          []string
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

func parseConfig(b []byte) (config, error) {
	v, err := parseJSON(b)
	if err != nil {
		return config{}, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return config{}, errSyntax
	}
	o := object(m)
	c := config{
		Tty:           o.bool("tty"),
		OpenStdin:     o.bool("openStdin"),
		Restart:       o.str("restart"),
		LogMaxSize:    o.int("logMaxSize"),
		LogMaxFiles:   int(o.int("logMaxFiles")),
		AutoRemove:    o.bool("autoRemove"),
		AutoRemoveCmd: o.strs("autoRemoveCmd"),
	}
	if h := o.obj("healthcheck"); h != nil {
		c.Healthcheck = &healthcheck{
			Test:          h.strs("test"),
			Interval:      time.Duration(h.int("interval")),
			Timeout:       time.Duration(h.int("timeout")),
			StartPeriod:   time.Duration(h.int("startPeriod")),
			StartInterval: time.Duration(h.int("startInterval")),
			Retries:       int(h.int("retries")),
		}
	}
	return c, nil
}

// WriteFileAtomic writes b to path crash-safely with mode: temp file, fsync, rename. A crash
// leaves the old file or the new one, never a torn one. (The runtime writes its files with it
// too.)
func WriteFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil && mode != 0o600 {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}
