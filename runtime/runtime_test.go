package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/monitor"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"": syscall.SIGTERM, "SIGKILL": syscall.SIGKILL, "kill": syscall.SIGKILL, "HUP": syscall.SIGHUP,
		"9": syscall.SIGKILL, "SIGUSR1": syscall.SIGUSR1, "sigint": syscall.SIGINT,
	} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"NOPE", "0", "99"} {
		if _, err := ParseSignal(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseSignal(%q) err = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestCapabilities(t *testing.T) {
	got, err := capabilities(&ContainerConfig{CapAdd: []string{"NET_ADMIN"}, CapDrop: []string{"cap_mknod", "NET_RAW"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c == "CAP_MKNOD" || c == "CAP_NET_RAW" {
			t.Errorf("dropped %s still present", c)
		}
	}
	if !strings.Contains(strings.Join(got, ","), "CAP_NET_ADMIN") || len(got) != len(defaultCaps)-1 {
		t.Errorf("caps = %v", got)
	}
	got, _ = capabilities(&ContainerConfig{CapDrop: []string{"ALL"}, CapAdd: []string{"CHOWN"}})
	if diff := cmp.Diff([]string{"CAP_CHOWN"}, got); diff != "" {
		t.Errorf("drop ALL + add CHOWN: %s", diff)
	}
	if _, err := capabilities(&ContainerConfig{CapAdd: []string{"FLY"}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown cap err = %v", err)
	}
}

func TestParseSecurityOpt(t *testing.T) {
	so, err := parseSecurityOpt([]string{"seccomp=unconfined", "no-new-privileges:false", "label=disable"})
	if err != nil || !so.seccompUnconfined || so.noNewPrivs {
		t.Errorf("got %+v, %v", so, err)
	}
	if so, _ := parseSecurityOpt(nil); !so.noNewPrivs || so.seccompUnconfined {
		t.Errorf("defaults %+v", so)
	}
	if _, err := parseSecurityOpt([]string{"seccomp=/x.json"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("profile path err = %v", err)
	}
}

func TestClampUlimits(t *testing.T) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		t.Fatal(err)
	}
	var warned []string
	got, err := clampUlimits([]Ulimit{{Name: "nofile", Soft: 100, Hard: int64(cur.Max) + 1}, {Name: "core", Soft: 0, Hard: 0}},
		func(s string) { warned = append(warned, s) })
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Hard != cur.Max || got[0].Soft != 100 || len(warned) != 1 {
		t.Errorf("nofile = %+v, warnings %v", got[0], warned)
	}
	if _, err := clampUlimits([]Ulimit{{Name: "bogus"}}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("bogus err = %v", err)
	}
	if _, err := clampUlimits([]Ulimit{{Name: "nproc", Soft: 10, Hard: 5}}, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("soft>hard err = %v", err)
	}
}

func TestSpecMount(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "missing")
	m, err := specMount(Mount{Type: "bind", Source: src, Target: "/x", ReadOnly: true, Options: []string{"Z"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"rbind", "ro", "rprivate"}, m.Options); diff != "" {
		t.Errorf("bind options: %s", diff)
	}
	if _, err := os.Stat(src); err != nil {
		t.Errorf("missing bind source not created: %v", err)
	}
	m, err = specMount(Mount{Type: "tmpfs", Target: "/t", Options: []string{"size=64m", "mode=1777", "exec"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"nosuid", "nodev", "size=64m", "mode=1777"}, m.Options); diff != "" {
		t.Errorf("tmpfs options: %s", diff)
	}
	if _, err := specMount(Mount{Type: "bind", Source: dir, Target: "rel"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("relative target err = %v", err)
	}
}

func TestHealthArgs(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"CMD", "curl", "-f", "x"}, []string{"curl", "-f", "x"}},
		{[]string{"CMD-SHELL", "exit 1"}, []string{"/bin/sh", "-c", "exit 1"}},
		{[]string{"true || false"}, []string{"/bin/sh", "-c", "true || false"}},
	} {
		if diff := cmp.Diff(tc.want, healthArgs(tc.in)); diff != "" {
			t.Errorf("healthArgs(%v): %s", tc.in, diff)
		}
	}
}

// TestLogsRotateTailFollow exercises the log writer and reader without containers.
func TestLogsRotateTailFollow(t *testing.T) {
	base := t.TempDir()
	r, err := New(Config{Root: filepath.Join(base, "c"), RunRoot: filepath.Join(base, "run")})
	if err != nil {
		t.Fatal(err)
	}
	id := NewID()
	if err := os.MkdirAll(r.dir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(r.dir(id), "config.json"), ContainerConfig{ID: id, Name: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(r.dir(id), "state.json"), State{Status: StatusExited}); err != nil {
		t.Fatal(err)
	}
	w, err := monitor.OpenLogWriter(filepath.Join(r.dir(id), "log"), 1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		w.Write(monitor.FrameStdout, []byte("out line "+itoa3(i)+"\n"))
	}
	w.Write(monitor.FrameStderr, []byte("err part"))
	w.Write(monitor.FrameStderr, []byte("ial\nno newline"))
	w.Close()
	if _, err := os.Stat(filepath.Join(r.dir(id), "log.1")); err != nil {
		t.Errorf("no rotation: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r.dir(id), "log.2")); err == nil {
		t.Errorf("kept more than 2 files")
	}
	var buf bytes.Buffer
	ctx := context.Background()
	if err := r.Logs(ctx, id, LogOptions{Tail: 3}, &buf); err != nil {
		t.Fatal(err)
	}
	if want := "out line 099\nerr partial\nno newline"; buf.String() != want {
		t.Errorf("tail 3 = %q, want %q", buf.String(), want)
	}
	buf.Reset()
	if err := r.Logs(ctx, id, LogOptions{Tail: -1, Stderr: true}, &buf); err != nil {
		t.Fatal(err)
	}
	if want := "err partial\nno newline"; buf.String() != want {
		t.Errorf("stderr only = %q", buf.String())
	}
	buf.Reset()
	if err := r.Logs(ctx, id, LogOptions{Tail: -1, Since: time.Now().Add(time.Hour)}, &buf); err != nil || buf.Len() != 0 {
		t.Errorf("since future = %q, %v", buf.String(), err)
	}
	// Follow on a stopped container returns after the existing lines.
	buf.Reset()
	done := make(chan error, 1)
	go func() { done <- r.Logs(ctx, id, LogOptions{Tail: 1, Follow: true, Timestamps: true}, &buf) }()
	select {
	case err := <-done:
		if err != nil || !strings.HasSuffix(buf.String(), " no newline") {
			t.Errorf("follow = %q, %v", buf.String(), err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow of a stopped container did not return")
	}
}

func itoa3(i int) string {
	s := "00" + strings.TrimSpace(strings.Repeat(" ", 0)) + string(rune('0'+i/100)) + string(rune('0'+i/10%10)) + string(rune('0'+i%10))
	return s[len(s)-3:]
}

func TestResolveAndNames(t *testing.T) {
	base := t.TempDir()
	r, err := New(Config{Root: filepath.Join(base, "c"), RunRoot: filepath.Join(base, "run")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids := []string{"aa" + NewID()[2:], "ab" + NewID()[2:]}
	for i, id := range ids {
		os.MkdirAll(r.dir(id), 0o700)
		writeJSON(filepath.Join(r.dir(id), "config.json"), ContainerConfig{ID: id, Name: "n" + string(rune('0'+i))})
		writeJSON(filepath.Join(r.dir(id), "state.json"), State{Status: StatusCreated})
	}
	if got, err := r.Resolve(ctx, "n1"); err != nil || got != ids[1] {
		t.Errorf("by name = %v, %v", got, err)
	}
	if got, err := r.Resolve(ctx, ids[0][:5]); err != nil || got != ids[0] {
		t.Errorf("by prefix = %v, %v", got, err)
	}
	if _, err := r.Resolve(ctx, "a"); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("ambiguous err = %v", err)
	}
	if _, err := r.Resolve(ctx, "zz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing err = %v", err)
	}
	if err := r.Rename(ctx, ids[0], "n1"); !errors.Is(err, ErrNameConflict) {
		t.Errorf("rename conflict err = %v", err)
	}
	if err := r.Remove(ctx, NewID(), false); err != nil {
		t.Errorf("remove missing = %v", err)
	}
}

func TestVolumesPure(t *testing.T) {
	v, err := NewVolumes(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p1, err := v.Ensure(ctx, "data", map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := v.Ensure(ctx, "data", nil)
	if err != nil || p1 != p2 {
		t.Errorf("second ensure = %q, %v", p2, err)
	}
	if vol, err := v.Inspect(ctx, "data"); err != nil || vol.Labels["k"] != "v" {
		t.Errorf("inspect = %+v, %v", vol, err)
	}
	if _, err := v.Ensure(ctx, "../x", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad name err = %v", err)
	}
	used := v.InUse("data", []Container{{Config: ContainerConfig{Name: "c1", Mounts: []Mount{{Type: "volume", Source: p1, Target: "/d"}}}}})
	if diff := cmp.Diff([]string{"c1"}, used); diff != "" {
		t.Errorf("in use: %s", diff)
	}
	// fillVolumes copies image content into an empty volume once.
	rootfs := t.TempDir()
	os.MkdirAll(filepath.Join(rootfs, "srv/sub"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "srv/sub/f"), []byte("x"), 0o640)
	os.Symlink("sub/f", filepath.Join(rootfs, "srv/link"))
	if err := fillVolumes(rootfs, []Mount{{Type: "volume", Source: p1, Target: "/srv"}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(p1, "link")); string(b) != "x" {
		t.Errorf("copied content = %q", b)
	}
	os.Remove(filepath.Join(p1, "link"))
	fillVolumes(rootfs, []Mount{{Type: "volume", Source: p1, Target: "/srv"}})
	if _, err := os.Lstat(filepath.Join(p1, "link")); err == nil {
		t.Errorf("volume filled twice")
	}
	if err := v.Remove(ctx, "data"); err != nil {
		t.Fatal(err)
	}
	if err := v.Remove(ctx, "data"); err != nil {
		t.Errorf("remove missing = %v", err)
	}
}

// The monitor (package runtime/monitor) writes state.json with its own encoder: what it writes
// must be exactly what encoding/json makes of State, and what it reads must be all of State.
func TestMonitorStateEncoding(t *testing.T) {
	ts := time.Date(2026, 3, 4, 5, 6, 7, 890123, time.UTC)
	for _, st := range []State{
		{Status: StatusCreated},
		{Status: StatusRunning, Pid: 4242, StartedAt: ts, MonitorPid: 4241, Health: &Health{Status: HealthStarting}},
		{Status: StatusExited, ExitCode: 137, OOMKilled: true, Error: "start: <bad> & \"quoted\"\n\x01 \u2028",
			StartedAt: ts, FinishedAt: ts.Add(time.Minute), RestartCount: 5, StoppedByUser: true, MonitorPid: 7,
			Health: &Health{Status: HealthUnhealthy, FailingStreak: 3, Log: []HealthResult{
				{Start: ts, End: ts.Add(time.Millisecond), ExitCode: 1, Output: "fail\nnö ✓"},
				{Start: ts.Add(time.Second), End: ts.Add(2 * time.Second), ExitCode: -1, Output: ""},
			}}},
		{Status: StatusRestarting, ExitCode: -1, RestartCount: 1},
	} {
		want, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		ms := toMonitorState(st)
		if got := ms.AppendJSON(nil); string(got) != string(want) {
			t.Errorf("monitor encoding:\n got %s\nwant %s", got, want)
		}
		var back State
		if err := json.Unmarshal(ms.AppendJSON(nil), &back); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st, back); diff != "" {
			t.Errorf("round trip through the monitor's encoder: %s", diff)
		}
		parsed, err := monitor.ParseState(want)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st, fromMonitorState(parsed)); diff != "" {
			t.Errorf("the monitor's decoder: %s", diff)
		}
	}
	// A new field of State must be taught to the monitor (runtime/monitor/state.go).
	for _, c := range []struct {
		v    any
		want int
	}{{State{}, 11}, {Health{}, 3}, {HealthResult{}, 4}} {
		if n := reflect.TypeOf(c.v).NumField(); n != c.want {
			t.Errorf("%T has %d fields, the monitor knows %d", c.v, n, c.want)
		}
	}
}

// TestMonitorConfigFields checks that the config.json members the monitor reads exist.
func TestMonitorConfigFields(t *testing.T) {
	tags := func(v any) map[string]bool {
		m := map[string]bool{}
		typ := reflect.TypeOf(v)
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
			m[name] = true
		}
		return m
	}
	cfg, hc := tags(ContainerConfig{}), tags(Healthcheck{})
	for _, k := range []string{"tty", "openStdin", "restart", "healthcheck", "logMaxSize", "logMaxFiles", "autoRemove", "autoRemoveCmd"} {
		if !cfg[k] {
			t.Errorf("ContainerConfig has no %q: update runtime/monitor/state.go", k)
		}
	}
	for _, k := range []string{"test", "interval", "timeout", "startPeriod", "startInterval", "retries"} {
		if !hc[k] {
			t.Errorf("Healthcheck has no %q: update runtime/monitor/state.go", k)
		}
	}
}

func toMonitorState(s State) monitor.State {
	m := monitor.State{Status: s.Status, Pid: s.Pid, ExitCode: s.ExitCode, OOMKilled: s.OOMKilled, Error: s.Error,
		StartedAt: s.StartedAt, FinishedAt: s.FinishedAt, RestartCount: s.RestartCount,
		StoppedByUser: s.StoppedByUser, MonitorPid: s.MonitorPid}
	if s.Health != nil {
		m.Health = &monitor.Health{Status: s.Health.Status, FailingStreak: s.Health.FailingStreak}
		for _, r := range s.Health.Log {
			m.Health.Log = append(m.Health.Log, monitor.HealthResult{Start: r.Start, End: r.End, ExitCode: r.ExitCode, Output: r.Output})
		}
	}
	return m
}

func fromMonitorState(m monitor.State) State {
	s := State{Status: m.Status, Pid: m.Pid, ExitCode: m.ExitCode, OOMKilled: m.OOMKilled, Error: m.Error,
		StartedAt: m.StartedAt, FinishedAt: m.FinishedAt, RestartCount: m.RestartCount,
		StoppedByUser: m.StoppedByUser, MonitorPid: m.MonitorPid}
	if m.Health != nil {
		s.Health = &Health{Status: m.Health.Status, FailingStreak: m.Health.FailingStreak}
		for _, r := range m.Health.Log {
			s.Health.Log = append(s.Health.Log, HealthResult{Start: r.Start, End: r.End, ExitCode: r.ExitCode, Output: r.Output})
		}
	}
	return s
}
