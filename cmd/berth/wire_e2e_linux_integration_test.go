//go:build linux && integration

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
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
		dir, err := os.MkdirTemp("", "berth-e2e-bin")
		if err != nil {
			wireBinErr = err
			return
		}
		wireBin = filepath.Join(dir, "berth")
		cmd := exec.Command("go", "build", "-tags", "seccomp,osusergo,netgo", "-o", wireBin, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		wireBinOut, wireBinErr = cmd.CombinedOutput()
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
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "e2e", scenario, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "compose.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	e.importBusybox("bb:latest")
	t.Cleanup(func() {
		out, err := e.berth("down", "-v", "-t", "0", "--remove-orphans")
		if err != nil {
			t.Logf("cleanup down: %v\n%s", err, out)
		}
		os.RemoveAll(runRoot)
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
	if ents, _ := os.ReadDir(filepath.Join(e.root, "containers")); len(ents) > 1 {
		t.Errorf("container state left after down: %v", ents)
	}
	if out, _ := exec.Command("ip", "-o", "link", "show", "type", "bridge").CombinedOutput(); strings.Contains(string(out), "e2ebasic") {
		t.Errorf("bridge left after down:\n%s", out)
	}
}
