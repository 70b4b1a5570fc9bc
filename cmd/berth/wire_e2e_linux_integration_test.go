//go:build linux && integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/storage"
)

// End-to-end tests: they build the berth binary, give each test its own roots, import a
// busybox image and drive `berth` like a user would. Fixtures: testdata/e2e/<scenario>/.

func wireRequireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox (busybox-static)")
	}
}

var (
	wireBinOnce sync.Once
	wireBin     string
	wireBinErr  error
	wireBinOut  []byte
)

// wireBuildBinary builds berth once per test process.
func wireBuildBinary(t *testing.T) string {
	t.Helper()
	wireBinOnce.Do(func() {
		// One fixed place, overwritten by every run, so that nothing accumulates in /tmp.
		dir := filepath.Join(os.TempDir(), "berth-e2e-bin")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			wireBinErr = err
			return
		}
		// As `make build` does: berth, and the static berth-shim, berth-monitor and berth-seccomp beside it,
		// where the runtime looks for them (container init, exec, the init: true reaper; the
		// per-container monitors).
		wireBin = filepath.Join(dir, "berth")
		const tags = "seccomp,osusergo,netgo,runc_nocriu"
		cmd := exec.Command("go", "build", "-tags", tags, "-o", wireBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if wireBinOut, wireBinErr = cmd.CombinedOutput(); wireBinErr != nil {
			return
		}
		cmd = exec.Command("go", "build", "-tags", tags, "-ldflags", "-s -w -extldflags=-static",
			"-o", filepath.Join(dir, "berth-shim"), "../../runtime/shim")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if wireBinOut, wireBinErr = cmd.CombinedOutput(); wireBinErr != nil {
			return
		}
		// The small per-container monitor, found beside berth-shim.
		cmd = exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w",
			"-o", filepath.Join(dir, "berth-monitor"), "../../runtime/monitor/berth-monitor")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if wireBinOut, wireBinErr = cmd.CombinedOutput(); wireBinErr != nil {
			return
		}
		// The C loader of precompiled seccomp programs.
		wireBinOut, wireBinErr = exec.Command("cc", "-static", "-O2", "-o", filepath.Join(dir, "berth-seccomp"), "../../runtime/loader/berth-seccomp.c").CombinedOutput()
	})
	if wireBinErr != nil {
		t.Fatalf("build berth: %v\n%s", wireBinErr, wireBinOut)
	}
	return wireBin
}

// wireBusyboxApplets are linked into the test image.
var wireBusyboxApplets = []string{"sh", "echo", "cat", "sleep", "httpd", "wget", "mkdir", "ls", "nslookup",
	"hostname", "true", "false", "test", "nc", "touch", "rm", "env", "ps", "kill", "id", "seq", "date", "grep"}

// wireEnv is one test's berth installation: roots, a compose project directory and the binary.
type wireEnv struct {
	t       *testing.T
	bin     string
	root    string
	runRoot string
	dir     string // project directory
	env     []string
}

func newWireEnv(t *testing.T, scenario string) *wireEnv {
	wireRequireRoot(t)
	bin := wireBuildBinary(t)
	// Short run root: unix socket paths under it must stay below 108 bytes.
	runRoot, err := os.MkdirTemp("/run", "bt")
	if err != nil {
		t.Fatal(err)
	}
	e := &wireEnv{t: t, bin: bin, root: t.TempDir(), runRoot: runRoot, dir: t.TempDir()}
	// The fixture directory (compose.yaml, build contexts...) becomes the project directory.
	if err := os.CopyFS(e.dir, os.DirFS(filepath.Join("..", "..", "testdata", "e2e", scenario))); err != nil {
		t.Fatal(err)
	}
	e.importBusybox("bb:latest")
	projectDir := e.dir
	t.Cleanup(func() {
		e.dir = projectDir
		out, err := e.berth("down", "-v", "-t", "0", "--remove-orphans")
		if err != nil {
			t.Logf("cleanup down: %v\n%s", err, out)
		}
		// netns keeps <run root>/netns as a shared bind mount for the namespaces' mounts.
		_ = syscall.Unmount(filepath.Join(runRoot, "netns"), syscall.MNT_DETACH)
		if err := os.RemoveAll(runRoot); err != nil {
			t.Logf("cleanup run root: %v", err)
		}
	})
	return e
}

// importBusybox stores a one-layer image with /bin/busybox and applet links as ref.
func (e *wireEnv) importBusybox(ref string) {
	t := e.t
	rootfs := t.TempDir()
	bin := filepath.Join(rootfs, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range wireBusyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(bin, a)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc", "tmp", "proc", "sys", "dev", "root"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := storage.Open(filepath.Join(e.root, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.ImportDir(context.Background(), rootfs, storage.ImportOptions{Ref: ref,
		Changes: []string{"ENV PATH=/bin", `CMD ["sh"]`}}); err != nil {
		t.Fatalf("import busybox: %v", err)
	}
}

// berth runs the binary in the project directory with the test's roots.
func (e *wireEnv) berth(args ...string) (string, error) {
	return e.berthCtx(context.Background(), args...)
}

func (e *wireEnv) berthCtx(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	full := append([]string{"--root", e.root, "--run-root", e.runRoot, "--progress", "plain"}, args...)
	cmd := exec.CommandContext(ctx, e.bin, full...)
	cmd.Dir = e.dir
	cmd.Env = append(os.Environ(), e.env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

func (e *wireEnv) mustBerth(args ...string) string {
	e.t.Helper()
	out, err := e.berth(args...)
	if err != nil {
		e.t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// eventually polls fn until it returns "" or the timeout passes, then fails with its last
// message.
func (e *wireEnv) eventually(timeout time.Duration, fn func() string) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	var msg string
	for time.Now().Before(deadline) {
		if msg = fn(); msg == "" {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatal(msg)
}

func TestE2EBasic(t *testing.T) {
	e := newWireEnv(t, "basic")
	e.mustBerth("up", "-d")

	ps := e.mustBerth("ps")
	for _, name := range []string{"e2ebasic-web-1", "e2ebasic-client-1"} {
		if !strings.Contains(ps, name) {
			t.Errorf("ps does not show %s:\n%s", name, ps)
		}
	}
	// The client reaches the web service by its service name.
	e.eventually(20*time.Second, func() string {
		out, _ := e.berth("logs", "client")
		if !strings.Contains(out, "client got hello-from-web") {
			return "client never reached web; logs:\n" + out
		}
		return ""
	})
	logs := e.mustBerth("logs", "web")
	if !strings.Contains(logs, "web-1  | web starting") {
		t.Errorf("logs web:\n%s", logs)
	}
	// exec runs in the service's container; run makes a one-off container and removes it.
	if out := e.mustBerth("exec", "-T", "web", "cat", "/www/index.html"); !strings.Contains(out, "hello-from-web") {
		t.Errorf("exec web cat: %q", out)
	}
	if out := e.mustBerth("run", "--rm", "-T", "client", "sh", "-c", "wget -q -O - http://web:8080/index.html; echo one-off $$"); !strings.Contains(out, "hello-from-web") || !strings.Contains(out, "one-off") {
		t.Errorf("run --rm client: %q", out)
	}
	if out, err := e.berth("exec", "-T", "web", "sh", "-c", "exit 7"); err == nil {
		t.Errorf("exec exit 7 succeeded: %s", out)
	} else if ee := (*exec.ExitError)(nil); errors.As(err, &ee) && ee.ExitCode() != 7 {
		t.Errorf("exec exit code = %d, want 7", ee.ExitCode())
	}
	if ps := e.mustBerth("ps", "-a"); strings.Contains(ps, "-run-") {
		t.Errorf("run --rm left its container:\n%s", ps)
	}
	// A second up has nothing to do.
	plan := e.mustBerth("up", "--dry-run")
	if strings.TrimSpace(plan) != "nothing to do" {
		t.Errorf("no-op up plans:\n%s", plan)
	}
	e.mustBerth("down", "-t", "1")
	ps = e.mustBerth("ps", "-a")
	if strings.Contains(ps, "e2ebasic") {
		t.Errorf("containers left after down:\n%s", ps)
	}
	if left := wireContainerDirs(e.root); len(left) > 0 {
		t.Errorf("container state left after down: %v", left)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "type", "bridge").CombinedOutput(); strings.Contains(string(out), "e2ebasic") {
		t.Errorf("bridge left after down:\n%s", out)
	}
}

// wirePsRow is one line of `ps --format json`.
type wirePsRow struct {
	ID, Name, Service, State, Health string
	ExitCode                         int
}

func (e *wireEnv) ps(args ...string) []wirePsRow {
	e.t.Helper()
	out := e.mustBerth(append([]string{"ps", "--format", "json"}, args...)...)
	var rows []wirePsRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r wirePsRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			e.t.Fatalf("ps json %q: %v", line, err)
		}
		rows = append(rows, r)
	}
	return rows
}

func wireIDs(rows []wirePsRow) map[string]string {
	out := map[string]string{}
	for _, r := range rows {
		out[r.Name] = r.ID
	}
	return out
}

func TestE2EDependsOnConditions(t *testing.T) {
	e := newWireEnv(t, "depends")
	start := time.Now()
	e.mustBerth("up", "-d")
	// web starts only after init completed and db is healthy (db needs ~2s).
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("up returned after %v, before db could be healthy", d)
	}
	rows := e.ps("-a")
	state := map[string]wirePsRow{}
	for _, r := range rows {
		state[r.Service] = r
	}
	if r := state["init"]; r.State != "exited" || r.ExitCode != 0 {
		t.Errorf("init = %+v, want exited 0", r)
	}
	if r := state["db"]; r.State != "running" || r.Health != "healthy" {
		t.Errorf("db = %+v, want running healthy", r)
	}
	e.eventually(10*time.Second, func() string {
		out, _ := e.berth("logs", "web")
		if !strings.Contains(out, "init done") || !strings.Contains(out, "web saw db") {
			return "web logs:\n" + out
		}
		return ""
	})
}

func TestE2EScaleAndRecreate(t *testing.T) {
	e := newWireEnv(t, "scale")
	e.mustBerth("up", "-d")
	first := wireIDs(e.ps())
	if len(first) != 1 || first["e2escale-web-1"] == "" {
		t.Fatalf("after up: %v", first)
	}
	// Scaling up adds replicas and never recreates the existing one.
	e.mustBerth("up", "-d", "--scale", "web=3")
	got := wireIDs(e.ps())
	if len(got) != 3 || got["e2escale-web-1"] != first["e2escale-web-1"] {
		t.Fatalf("after scale 3: %v (web-1 was %s)", got, first["e2escale-web-1"])
	}
	// Nothing changed: nothing recreated.
	e.mustBerth("up", "-d", "--scale", "web=3")
	if again := wireIDs(e.ps()); len(again) != 3 || again["e2escale-web-3"] != got["e2escale-web-3"] {
		t.Fatalf("no-op up changed containers: %v -> %v", got, again)
	}
	// Scaling down removes the highest numbers.
	e.mustBerth("scale", "web=1")
	down := wireIDs(e.ps("-a"))
	if len(down) != 1 || down["e2escale-web-1"] != first["e2escale-web-1"] {
		t.Fatalf("after scale 1: %v", down)
	}
	// A config change recreates.
	e.env = []string{"E2E_VALUE=two"}
	e.mustBerth("up", "-d")
	re := wireIDs(e.ps())
	if len(re) != 1 || re["e2escale-web-1"] == "" || re["e2escale-web-1"] == first["e2escale-web-1"] {
		t.Fatalf("after config change: %v (was %v)", re, first)
	}
	e.eventually(10*time.Second, func() string {
		out, _ := e.berth("logs", "web")
		if !strings.Contains(out, "value=two") {
			return "logs after recreate:\n" + out
		}
		return ""
	})
}

func TestE2EVolumesPersist(t *testing.T) {
	e := newWireEnv(t, "volumes")
	e.mustBerth("up", "-d")
	e.eventually(10*time.Second, func() string {
		if out, _ := e.berth("logs", "app"); !strings.Contains(out, "none") {
			return "first run logs:\n" + out
		}
		return ""
	})
	e.mustBerth("down", "-t", "1")
	e.mustBerth("up", "-d")
	e.eventually(10*time.Second, func() string {
		if out, _ := e.berth("logs", "app"); !strings.Contains(out, "app-1  | run") {
			return "second run did not see the first run's data:\n" + out
		}
		return ""
	})
	vol := filepath.Join(e.root, "volumes", "e2evol_data")
	if _, err := os.Stat(vol); err != nil {
		t.Fatalf("volume: %v", err)
	}
	e.mustBerth("down", "-v", "-t", "1")
	if _, err := os.Stat(vol); !os.IsNotExist(err) {
		t.Errorf("down -v left the volume: %v", err)
	}
}

func TestE2EPublishedPort(t *testing.T) {
	e := newWireEnv(t, "ports")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	e.env = []string{fmt.Sprintf("E2E_PORT=%d", port)}
	// A taken port is an error before anything is created.
	if out, err := e.berth("up", "-d"); err == nil || !strings.Contains(out, "already allocated") {
		t.Errorf("up with the port taken: err = %v\n%s", err, out)
	}
	if rows := e.ps("-a"); len(rows) != 0 {
		t.Errorf("containers created although the port was taken: %+v", rows)
	}
	l.Close()
	e.mustBerth("up", "-d")
	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
	e.eventually(15*time.Second, func() string {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return "GET " + url + ": " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "published-ok") {
			return "GET " + url + ": " + string(b)
		}
		return ""
	})
	if out := e.mustBerth("port", "web", "8080"); strings.TrimSpace(out) != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("port web 8080 = %q", out)
	}
	// down works without the compose file, by project name.
	func() {
		dir := e.dir
		defer func() { e.dir = dir }()
		e.dir = t.TempDir()
		e.mustBerth("--project-name", "e2eports", "down", "-t", "0")
	}()
	if ps := e.mustBerth("ps", "-a"); strings.Contains(ps, "e2eports-web-1") {
		t.Errorf("down -p left the container:\n%s", ps)
	}
	c := http.Client{Timeout: time.Second}
	if resp, err := c.Get(url); err == nil {
		resp.Body.Close()
		t.Errorf("port still answers after down")
	}
}

func TestE2EExitCodeFrom(t *testing.T) {
	e := newWireEnv(t, "exitcode")
	out, err := e.berth("up", "--exit-code-from", "job", "-t", "1")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("up --exit-code-from job: err = %v, want exit status 3\n%s", err, out)
	}
	for _, want := range []string{"job-1     | job failing", "server-1  | server up", "job-1 exited with code 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, r := range e.ps("-a") {
		if r.State == "running" {
			t.Errorf("%s still running after the run ended", r.Name)
		}
	}
}

func TestE2EFailureReportsLogs(t *testing.T) {
	e := newWireEnv(t, "failing")
	out, err := e.berth("up", "-d")
	if err == nil {
		t.Fatalf("up succeeded with a failing dependency:\n%s", out)
	}
	for _, want := range []string{"bad", "fatal: config file missing"} {
		if !strings.Contains(out, want) {
			t.Errorf("failure output lacks %q:\n%s", want, out)
		}
	}
	// The dependent was never created.
	for _, r := range e.ps("-a") {
		if r.Service == "after" {
			t.Errorf("dependent created after its dependency failed: %+v", r)
		}
	}
}

func TestE2EAttachedInterrupt(t *testing.T) {
	e := newWireEnv(t, "attached")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := []string{"--root", e.root, "--run-root", e.runRoot, "--progress", "plain", "up", "-t", "5"}
	cmd := exec.CommandContext(ctx, e.bin, full...)
	cmd.Dir = e.dir
	var mu sync.Mutex
	var out bytes.Buffer
	w := wireLockedWriter{mu: &mu, b: &out}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	output := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	e.eventually(20*time.Second, func() string {
		if s := output(); !strings.Contains(s, "db-1   | db up") || !strings.Contains(s, "web-1  | web up") {
			return "attached output never showed both services:\n" + s
		}
		return ""
	})
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("berth up after Ctrl-C: %v, want exit 130", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("graceful stop took %v", d)
	}
	s := output()
	for _, want := range []string{"Gracefully stopping", "web got TERM", "db got TERM"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	// web depends on db, so web stops first.
	if i, j := strings.Index(s, "web got TERM"), strings.Index(s, "db got TERM"); i < 0 || j < 0 || i > j {
		t.Errorf("want web stopped before db:\n%s", s)
	}
	for _, r := range e.ps("-a") {
		if r.State != "exited" {
			t.Errorf("%s is %s after Ctrl-C, want exited", r.Name, r.State)
		}
	}
}

type wireLockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w wireLockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestE2ENetworkModeService(t *testing.T) {
	e := newWireEnv(t, "netmode")
	e.mustBerth("up", "-d")
	e.eventually(15*time.Second, func() string {
		out, _ := e.berth("logs", "sidecar")
		if !strings.Contains(out, "sidecar got shared-netns") {
			return "sidecar did not share web's network namespace:\n" + out
		}
		return ""
	})
}

func TestE2EBuild(t *testing.T) {
	e := newWireEnv(t, "build")
	e.mustBerth("up", "-d")
	e.eventually(15*time.Second, func() string {
		if out, _ := e.berth("logs", "app"); !strings.Contains(out, "hello from a built image") {
			return "built service logs:\n" + out
		}
		return ""
	})
	// The image is built once: a second up has nothing to do.
	if plan := e.mustBerth("up", "--dry-run"); !strings.Contains(plan, "nothing to do") && strings.Contains(plan, "Build") {
		t.Errorf("second up rebuilds:\n%s", plan)
	}
	// down --rmi local removes the image built for the service.
	e.mustBerth("down", "-t", "0", "--rmi", "local")
	s, err := storage.Open(filepath.Join(e.root, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Resolve(context.Background(), "e2ebuild-app"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("built image after down --rmi local: %v", err)
	}
	if _, err := s.Resolve(context.Background(), "bb:latest"); err != nil {
		t.Errorf("base image removed by down --rmi local: %v", err)
	}
}

// wireContainerDirs lists the per-container state directories under root; the runtime's own
// files there (locks, the seccomp cache) start with a dot and are not containers.
func wireContainerDirs(root string) []string {
	ents, _ := os.ReadDir(filepath.Join(root, "containers"))
	var ids []string
	for _, en := range ents {
		if !strings.HasPrefix(en.Name(), ".") {
			ids = append(ids, en.Name())
		}
	}
	return ids
}
