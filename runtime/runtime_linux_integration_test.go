//go:build linux && integration

package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if Reexec() {
		return
	}
	if v := os.Getenv("BERTH_TEST_START"); v != "" {
		f := strings.Split(v, "|")
		r, err := New(Config{Root: f[0], RunRoot: f[1]})
		if err == nil {
			err = r.Start(context.Background(), f[2])
		}
		if err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if shimDir != "" {
		os.RemoveAll(shimDir)
	}
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// busyboxRootfs makes a minimal rootfs with busybox and its applets.
func busyboxRootfs(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static)")
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "root", "data"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "tmp"), 0o1777)
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range strings.Fields(string(out)) {
		if name == "busybox" {
			continue
		}
		_ = os.Symlink("busybox", filepath.Join(root, "bin", name))
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\nextra:x:2000:app\n"), 0o644)
	os.WriteFile(filepath.Join(root, "data/seed"), []byte("from-image\n"), 0o644)
	return root
}

type testEnv struct {
	r      *Runtime
	rootfs string
	root   string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	requireRoot(t)
	base := t.TempDir()
	r, err := New(Config{Root: filepath.Join(base, "containers"), RunRoot: filepath.Join(base, "run")})
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{r: r, rootfs: busyboxRootfs(t), root: base}
}

// create makes a container and registers its forced removal.
func (e *testEnv) create(t *testing.T, mod func(*ContainerConfig)) string {
	t.Helper()
	id := NewID()
	c := ContainerConfig{ID: id, Name: "t-" + id[:8], Rootfs: e.rootfs, Args: []string{"true"}}
	if mod != nil {
		mod(&c)
	}
	if err := e.r.Create(context.Background(), c); err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := e.r.Remove(ctx, id, true); err != nil {
			t.Errorf("cleanup remove: %v", err)
		}
	})
	return id
}

func (e *testEnv) run(t *testing.T, args []string, mod func(*ContainerConfig)) (int, string) {
	t.Helper()
	id := e.create(t, func(c *ContainerConfig) {
		c.Args = args
		if mod != nil {
			mod(c)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	code, err := e.r.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	var buf bytes.Buffer
	if err := e.r.Logs(ctx, id, LogOptions{Tail: -1}, &buf); err != nil {
		t.Fatalf("logs: %v", err)
	}
	return code, buf.String()
}

func TestRunEchoAndExitCode(t *testing.T) {
	e := newTestEnv(t)
	code, out := e.run(t, []string{"sh", "-c", "echo hello; echo err >&2; exit 3"}, nil)
	if code != 3 {
		t.Errorf("exit code = %d, want 3", code)
	}
	if out != "hello\nerr\n" && out != "err\nhello\n" {
		t.Errorf("logs = %q", out)
	}
}

func TestSignalExitCode(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) { c.Args = []string{"sleep", "1000"} })
	ctx := context.Background()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Kill(ctx, id, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	code, err := e.r.Wait(ctx, id)
	if err != nil || code != 137 {
		t.Errorf("wait = %d, %v; want 137", code, err)
	}
}

func TestStopAndState(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) { c.Args = []string{"sleep", "1000"} })
	ctx := context.Background()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, err := e.r.Inspect(ctx, id)
	if err != nil || st.Status != StatusRunning || st.Pid == 0 {
		t.Fatalf("state = %+v, %v", st, err)
	}
	t0 := time.Now()
	// sleep as PID 1 ignores SIGTERM: the stop must fall back to SIGKILL after the timeout.
	if err := e.r.Stop(ctx, id, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("stop took %v", d)
	}
	st, _ = e.r.Inspect(ctx, id)
	if st.Status != StatusExited || st.ExitCode != 137 {
		t.Errorf("after stop: %+v", st)
	}
	if err := e.r.Remove(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Inspect(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("inspect after remove: %v", err)
	}
}

var _ = syscall.SIGTERM

// probeBinary builds testdata/probe statically into the rootfs.
func probeBinary(t *testing.T, rootfs string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-o", filepath.Join(rootfs, "bin/probe"), "./testdata/probe")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	os.MkdirAll(filepath.Join(rootfs, "mnt"), 0o755)
}

func TestSecurityDefaults(t *testing.T) {
	e := newTestEnv(t)
	probeBinary(t, e.rootfs)
	code, out := e.run(t, []string{"/bin/probe"}, nil)
	if code != 0 {
		t.Fatalf("probe exit %d: %s", code, out)
	}
	for _, want := range []string{"unshare-user: operation not permitted", "keyctl: operation not permitted", "mount: operation not permitted", "read-only file system"} {
		if !strings.Contains(out, want) {
			t.Errorf("probe output lacks %q:\n%s", want, out)
		}
	}
	// Only the container's own processes are visible.
	code, out = e.run(t, []string{"sh", "-c", "ls /proc | grep -c '^[0-9]'"}, nil)
	if n := strings.TrimSpace(out); code != 0 || (n != "2" && n != "3") {
		t.Errorf("visible processes: %q (exit %d)", out, code)
	}
	// Privileged lifts the restrictions.
	_, out = e.run(t, []string{"/bin/probe"}, func(c *ContainerConfig) { c.Privileged = true })
	if !strings.Contains(out, "mount: ok") || !strings.Contains(out, "keyctl: ok") {
		t.Errorf("privileged probe:\n%s", out)
	}
	// seccomp=unconfined alone allows keyctl but mount still needs CAP_SYS_ADMIN.
	_, out = e.run(t, []string{"/bin/probe"}, func(c *ContainerConfig) { c.SecurityOpt = []string{"seccomp=unconfined"} })
	if !strings.Contains(out, "keyctl: ok") || strings.Contains(out, "mount: ok") {
		t.Errorf("unconfined probe:\n%s", out)
	}
}

func TestCapsUserHostname(t *testing.T) {
	e := newTestEnv(t)
	code, out := e.run(t, []string{"sh", "-c", "id -u; id -G; hostname; pwd"}, func(c *ContainerConfig) {
		c.User = "app"
		c.GroupAdd = []string{"extra"}
		c.Hostname = "box1"
		c.WorkingDir = "/work/dir"
	})
	want := "1000\n1000 2000\nbox1\n/work/dir\n"
	if code != 0 || out != want {
		t.Errorf("got %q (exit %d), want %q", out, code, want)
	}
	// cap_drop NET_RAW/CHOWN: chown fails.
	code, _ = e.run(t, []string{"chown", "1000", "/tmp"}, func(c *ContainerConfig) { c.CapDrop = []string{"CHOWN", "DAC_OVERRIDE", "FOWNER"} })
	if code == 0 {
		t.Errorf("chown succeeded without CAP_CHOWN")
	}
	code, out = e.run(t, []string{"sh", "-c", "grep CapEff /proc/self/status"}, nil)
	if !strings.Contains(out, "00000000a80425fb") {
		t.Errorf("default caps: %q", out)
	}
}

func TestReadOnlyTmpfsShm(t *testing.T) {
	e := newTestEnv(t)
	code, out := e.run(t, []string{"sh", "-c", "touch /x 2>/dev/null && echo rootfs-writable; touch /scratch/y && echo tmpfs-ok; df -k /dev/shm | tail -1 | awk '{print $2}'"}, func(c *ContainerConfig) {
		c.ReadOnly = true
		c.Tmpfs = map[string]string{"/scratch": "size=1m,mode=1777"}
		c.ShmSize = 8 << 20
	})
	if code != 0 || out != "tmpfs-ok\n8192\n" {
		t.Errorf("got %q (exit %d)", out, code)
	}
}

func TestUlimitsClampedAndSysctl(t *testing.T) {
	e := newTestEnv(t)
	var hard syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &hard)
	code, out := e.run(t, []string{"sh", "-c", "ulimit -n; ulimit -Hn; cat /proc/sys/net/ipv4/ip_forward"}, func(c *ContainerConfig) {
		c.Ulimits = []Ulimit{{Name: "nofile", Soft: 1024, Hard: int64(hard.Max) + 1000}}
		c.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
	})
	want := "1024\n" + itoa(int(hard.Max)) + "\n1\n"
	if code != 0 || out != want {
		t.Errorf("got %q (exit %d), want %q", out, code, want)
	}
}

func itoa(n int) string { return strings.TrimSpace(fmtInt(n)) }

func fmtInt(n int) string {
	b := []byte{}
	if n == 0 {
		return "0"
	}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func TestOOMKilled(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) {
		c.Args = []string{"sh", "-c", "x=a; while true; do x=$x$x; done"}
		c.Resources.Memory = 16 << 20
		c.Resources.MemorySwap = 16 << 20
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	code, err := e.r.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := e.r.Inspect(ctx, id)
	if code != 137 || !st.OOMKilled {
		t.Errorf("exit %d, state %+v; want 137 and OOMKilled", code, st)
	}
}

func TestPidsLimit(t *testing.T) {
	e := newTestEnv(t)
	code, out := e.run(t, []string{"sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1; echo done"}, func(c *ContainerConfig) {
		c.Resources.PidsLimit = 5
	})
	if !strings.Contains(out, "can't fork") {
		t.Errorf("pids limit not enforced: exit %d, %q", code, out)
	}
}

func TestRestartOnFailure(t *testing.T) {
	e := newTestEnv(t)
	code, out := e.run(t, []string{"sh", "-c", "echo run; exit 2"}, func(c *ContainerConfig) { c.Restart = "on-failure:2" })
	if code != 2 || strings.Count(out, "run\n") != 3 {
		t.Errorf("exit %d, logs %q; want 3 runs", code, out)
	}
}

func TestRestartAlwaysThenStop(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) { c.Args = []string{"sh", "-c", "echo run; exit 0"}; c.Restart = "always" })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _ := e.r.Inspect(ctx, id)
		if st.RestartCount >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no restarts: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := e.r.Stop(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	st, _ := e.r.Inspect(ctx, id)
	if st.Status != StatusExited {
		t.Errorf("after stop: %+v", st)
	}
}

func TestHealthTransitions(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) {
		c.Args = []string{"sh", "-c", "sleep 1; touch /tmp/ok; sleep 2; rm /tmp/ok; sleep 1000"}
		c.Healthcheck = &Healthcheck{Test: []string{"CMD", "test", "-e", "/tmp/ok"}, Interval: 200 * time.Millisecond, Timeout: time.Second, Retries: 2,
			StartPeriod: 2 * time.Second, StartInterval: 200 * time.Millisecond}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	var seen []string
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		st, _ := e.r.Inspect(ctx, id)
		if st.Health != nil && (len(seen) == 0 || seen[len(seen)-1] != st.Health.Status) {
			seen = append(seen, st.Health.Status)
		}
		if len(seen) > 0 && seen[len(seen)-1] == HealthUnhealthy {
			if len(st.Health.Log) == 0 || len(st.Health.Log) > 5 {
				t.Errorf("health log: %+v", st.Health.Log)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Join(seen, ",") != "starting,healthy,unhealthy" {
		t.Errorf("health transitions = %v", seen)
	}
}

func TestLogRotation(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) {
		c.Args = []string{"sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done"}
		c.LogMaxSize = 16 << 10
		c.LogMaxFiles = 2
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.Wait(ctx, id); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(e.r.dir(id), "log*"))
	if len(files) != 2 {
		t.Errorf("log files = %v, want log and log.1", files)
	}
	for _, f := range files {
		if st, _ := os.Stat(f); st.Size() > 17<<10 {
			t.Errorf("%s is %d bytes", f, st.Size())
		}
	}
	var buf bytes.Buffer
	if err := e.r.Logs(ctx, id, LogOptions{Tail: 3}, &buf); err != nil {
		t.Fatal(err)
	}
	if buf.String() != "line-1997\nline-1998\nline-1999\n" {
		t.Errorf("tail 3 = %q", buf.String())
	}
}

func TestExec(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) { c.Args = []string{"sleep", "1000"}; c.Env = []string{"A=1"} })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := e.r.Exec(ctx, id, ProcessSpec{Args: []string{"sh", "-c", "echo $A$B; cat; exit 4"}, Env: []string{"B=2"}},
		Stdio{Stdin: strings.NewReader("in\n"), Stdout: &out, Stderr: &out})
	if err != nil || code != 4 || out.String() != "12\nin\n" {
		t.Errorf("exec = %d, %v, %q", code, err, out.String())
	}
	// A tty exec gets a real terminal.
	out.Reset()
	code, err = e.r.Exec(ctx, id, ProcessSpec{Args: []string{"sh", "-c", "test -t 0 && echo tty"}, Tty: true}, Stdio{Stdout: &out})
	if err != nil || code != 0 || !strings.Contains(out.String(), "tty") {
		t.Errorf("tty exec = %d, %v, %q", code, err, out.String())
	}
}

func TestRunAttachedTty(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) {
		c.Args = []string{"sh", "-c", "test -t 0 && echo tty; read x; echo got $x"}
		c.Tty = true
		c.OpenStdin = true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	pr, pw := io.Pipe()
	go func() { time.Sleep(300 * time.Millisecond); pw.Write([]byte("hi\n")) }()
	code, err := e.r.Run(ctx, id, Stdio{Stdin: pr, Stdout: &out})
	pw.Close()
	if err != nil || code != 0 || !strings.Contains(out.String(), "tty") || !strings.Contains(out.String(), "got hi") {
		t.Errorf("run = %d, %v, %q", code, err, out.String())
	}
}

func TestRunAttachedPipes(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) {
		c.Args = []string{"sh", "-c", "echo start; cat; echo end >&2; exit 5"}
		c.OpenStdin = true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	code, err := e.r.Run(ctx, id, Stdio{Stdin: strings.NewReader("payload\n"), Stdout: &out, Stderr: &errOut})
	if err != nil || code != 5 || out.String() != "start\npayload\n" || errOut.String() != "end\n" {
		t.Errorf("run = %d, %v, out %q, err %q", code, err, out.String(), errOut.String())
	}
}

func TestVolumes(t *testing.T) {
	e := newTestEnv(t)
	v, err := NewVolumes(filepath.Join(e.root, "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	path, err := v.Ensure(ctx, "vol1", map[string]string{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	bindDir := filepath.Join(e.root, "bind", "missing")
	code, out := e.run(t, []string{"sh", "-c", "cat /data/seed; echo new > /data/f; echo b > /b/x; touch /ro/y 2>/dev/null || echo ro; df /t | tail -1 | awk '{print $2}'"}, func(c *ContainerConfig) {
		c.Mounts = []Mount{
			{Type: "volume", Source: path, Target: "/data"},
			{Type: "bind", Source: bindDir, Target: "/b", Options: []string{"z"}},
			{Type: "bind", Source: bindDir, Target: "/ro", ReadOnly: true},
			{Type: "tmpfs", Target: "/t", Options: []string{"size=2m"}},
		}
	})
	if code != 0 || out != "from-image\nro\n2048\n" {
		t.Errorf("got %q (exit %d)", out, code)
	}
	if b, _ := os.ReadFile(filepath.Join(path, "f")); string(b) != "new\n" {
		t.Errorf("volume content %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(bindDir, "x")); string(b) != "b\n" {
		t.Errorf("bind content %q", b)
	}
	// The volume persists across containers and is not refilled.
	os.Remove(filepath.Join(path, "seed"))
	_, out = e.run(t, []string{"sh", "-c", "ls /data"}, func(c *ContainerConfig) {
		c.Mounts = []Mount{{Type: "volume", Source: path, Target: "/data"}}
	})
	if out != "f\n" {
		t.Errorf("second use: %q", out)
	}
	vols, _ := v.List(ctx)
	if len(vols) != 1 || vols[0].Labels["a"] != "b" {
		t.Errorf("list = %+v", vols)
	}
	if err := v.Remove(ctx, "vol1"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Inspect(ctx, "vol1"); !errors.Is(err, ErrNoVolume) {
		t.Errorf("inspect removed: %v", err)
	}
}

func TestMonitorKilled(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) { c.Args = []string{"sleep", "1000"} })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, _ := e.r.Inspect(ctx, id)
	if st.MonitorPid == 0 {
		t.Fatalf("no monitor pid: %+v", st)
	}
	syscall.Kill(st.MonitorPid, syscall.SIGKILL)
	for i := 0; i < 100 && e.r.monitorAlive(id); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	st, _ = e.r.Inspect(ctx, id)
	if st.Status != StatusRunning || st.Error == "" {
		t.Errorf("orphan state: %+v", st)
	}
	if err := e.r.Stop(ctx, id, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	st, _ = e.r.Inspect(ctx, id)
	if st.Status != StatusExited {
		t.Errorf("after stop: %+v", st)
	}
}

// TestMonitorSurvivesCLIExit starts a container from a separate short-lived process.
func TestMonitorSurvivesCLIExit(t *testing.T) {
	e := newTestEnv(t)
	id := e.create(t, func(c *ContainerConfig) { c.Args = []string{"sleep", "1000"} })
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), "BERTH_TEST_START="+e.r.root+"|"+e.r.runRoot+"|"+id)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	st, err := e.r.Inspect(context.Background(), id)
	if err != nil || st.Status != StatusRunning {
		t.Errorf("after the starting process exited: %+v, %v", st, err)
	}
}

// TestInitReaperWithShim builds the static berth-shim and berth-monitor and runs containers
// with Init through them: the shim is then libcontainer's init and PID 1 of the container.
func TestInitReaperWithShim(t *testing.T) {
	requireRoot(t)
	shim := buildShim(t)
	base := t.TempDir()
	r, err := New(Config{Root: filepath.Join(base, "containers"), RunRoot: filepath.Join(base, "run"), Shim: shim})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{r: r, rootfs: busyboxRootfs(t), root: base}
	code, out := e.run(t, []string{"sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; (sleep 0.1 &); exit 7"}, func(c *ContainerConfig) { c.Init = true })
	if code != 7 || !strings.Contains(out, initArg) {
		t.Errorf("exit %d, out %q", code, out)
	}
	// The reaper forwards SIGTERM to the command, which then dies at once.
	id := e.create(t, func(c *ContainerConfig) { c.Args = []string{"sleep", "1000"}; c.Init = true })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	// Exec goes through the shim too.
	var xout bytes.Buffer
	code, err = r.Exec(ctx, id, ProcessSpec{Args: []string{"sh", "-c", "cat; echo $E; exit 3"}, Env: []string{"E=x"}},
		Stdio{Stdin: strings.NewReader("in\n"), Stdout: &xout, Stderr: &xout})
	if err != nil || code != 3 || xout.String() != "in\nx\n" {
		t.Errorf("exec via shim = %d, %v, %q", code, err, xout.String())
	}
	if _, err := r.Exec(ctx, id, ProcessSpec{Args: []string{"/nonexistent"}}, Stdio{}); err == nil {
		t.Errorf("exec of a missing binary: no error")
	}
	t0 := time.Now()
	if err := r.Stop(ctx, id, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	st, _ := r.Inspect(ctx, id)
	if st.ExitCode != 143 || time.Since(t0) > 10*time.Second {
		t.Errorf("stop through init: exit %d after %v", st.ExitCode, time.Since(t0))
	}
}

var (
	shimOnce sync.Once
	shimDir  string
	shimOut  []byte
	shimErr  error
)

// buildShim builds the static berth-shim and, beside it, berth-monitor and berth-seccomp, once per test process
// (TestMain removes the directory).
func buildShim(t *testing.T) string {
	t.Helper()
	shimOnce.Do(func() {
		shimDir, shimErr = os.MkdirTemp("", "berth-test-shim-")
		if shimErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-tags", "seccomp,osusergo,netgo,runc_nocriu",
			"-ldflags", "-extldflags=-static", "-o", filepath.Join(shimDir, "berth-shim"), "./shim")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if shimOut, shimErr = cmd.CombinedOutput(); shimErr != nil {
			return
		}
		cmd = exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w",
			"-o", filepath.Join(shimDir, "berth-monitor"), "./monitor/berth-monitor")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if shimOut, shimErr = cmd.CombinedOutput(); shimErr != nil {
			return
		}
		shimOut, shimErr = exec.Command("cc", "-static", "-O2", "-o", filepath.Join(shimDir, "berth-seccomp"), "loader/berth-seccomp.c").CombinedOutput()
	})
	if shimErr != nil {
		t.Skipf("cannot build a static shim here: %v\n%s", shimErr, shimOut)
	}
	return filepath.Join(shimDir, "berth-shim")
}

// procStatus returns a field of /proc/PID/status in kB.
func procStatus(t *testing.T, pid int, key string) int {
	t.Helper()
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", key, pid)
	return 0
}

// TestMonitorMemory checks that berth-monitor is the monitor when it lies beside the shim, that
// it runs a container through its whole life, and that an idle one stays within 3 MiB of RSS.
func TestMonitorMemory(t *testing.T) {
	requireRoot(t)
	shim := buildShim(t)
	base := t.TempDir()
	r, err := New(Config{Root: filepath.Join(base, "containers"), RunRoot: filepath.Join(base, "run"), Shim: shim})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{r: r, rootfs: busyboxRootfs(t), root: base}
	// stdout and stderr are separate pipes: their relative order is not kept.
	if code, out := e.run(t, []string{"sh", "-c", "echo out; echo err >&2; exit 5"}, nil); code != 5 || (out != "out\nerr\n" && out != "err\nout\n") {
		t.Errorf("run: exit %d, output %q", code, out)
	}
	id := e.create(t, func(c *ContainerConfig) { c.Args = []string{"sleep", "1000"} })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	st, err := r.Inspect(ctx, id)
	if err != nil || st.MonitorPid == 0 || st.Status != StatusRunning {
		t.Fatalf("inspect: %+v, %v", st, err)
	}
	exe, _ := os.Readlink("/proc/" + strconv.Itoa(st.MonitorPid) + "/exe")
	if filepath.Base(exe) != "berth-monitor" {
		t.Errorf("the monitor runs %s, not berth-monitor", exe)
	}
	time.Sleep(300 * time.Millisecond) // idle
	// Once __start has exited, the container's init is the monitor's child (the monitor is a
	// subreaper).
	if ppid := procStatus(t, st.Pid, "PPid"); ppid != st.MonitorPid {
		t.Errorf("container init's parent is %d, not the monitor %d", ppid, st.MonitorPid)
	}
	rss := procStatus(t, st.MonitorPid, "VmRSS")
	t.Logf("idle monitor: VmRSS %d kB (anon %d kB, file %d kB)", rss,
		procStatus(t, st.MonitorPid, "RssAnon"), procStatus(t, st.MonitorPid, "RssFile"))
	if rss > 3<<10 {
		t.Errorf("idle monitor uses %d kB RSS, more than 3 MiB", rss)
	}
	if err := r.Kill(ctx, id, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code, err := r.Wait(ctx, id); err != nil || code != 137 {
		t.Errorf("after kill -9: exit %d, %v", code, err)
	}
}
