//go:build linux && integration

package runtime

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPrecompiledSeccomp runs the security probe with a static shim, which loads the cached
// default profile itself: the container and its exec'd processes must be exactly as confined
// as with libcontainer's own seccomp setup.
//
// It runs twice: with the shim alone (its Go loader, mounted at initPath) and with
// berth-seccomp beside it (the C loader, mounted at seccompLoaderPath).
func TestPrecompiledSeccomp(t *testing.T) {
	requireRoot(t)
	shim := filepath.Join(t.TempDir(), "berth-shim")
	cmd := exec.Command("go", "build", "-tags", "seccomp,osusergo,netgo,runc_nocriu",
		"-ldflags", "-extldflags=-static", "-o", shim, "./shim")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot build a static shim here: %v\n%s", err, out)
	}
	t.Run("go-loader", func(t *testing.T) { testPrecompiledSeccomp(t, shim, initPath) })
	withC := filepath.Join(t.TempDir(), "berth-shim")
	if err := os.Link(shim, withC); err != nil {
		t.Fatal(err)
	}
	buildSeccompLoader(t, filepath.Dir(withC))
	t.Run("c-loader", func(t *testing.T) { testPrecompiledSeccomp(t, withC, seccompLoaderPath) })
}

// buildSeccompLoader compiles runtime/loader/berth-seccomp.c, static, into dir.
func buildSeccompLoader(t *testing.T, dir string) {
	t.Helper()
	out, err := exec.Command("cc", "-static", "-O2", "-Wall", "-Werror", "-o", filepath.Join(dir, "berth-seccomp"), "loader/berth-seccomp.c").CombinedOutput()
	if err != nil {
		t.Fatalf("build berth-seccomp: %v\n%s", err, out)
	}
}

func testPrecompiledSeccomp(t *testing.T, shim, loader string) {
	base := t.TempDir()
	r, err := New(Config{Root: filepath.Join(base, "containers"), RunRoot: filepath.Join(base, "run"), Shim: shim})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{r: r, rootfs: busyboxRootfs(t), root: base}
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
	cached, _ := filepath.Glob(filepath.Join(base, "containers", ".seccomp", "*.bpf"))
	if len(cached) != 1 {
		t.Fatalf("cached programs: %v", cached)
	}
	// Started through the loader, filtered once, with no_new_privs.
	code, out = e.run(t, []string{"sh", "-c", "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs):' /proc/self/status | tr -d '\\t'; ls /dev/.berth-*"}, nil)
	if !strings.HasSuffix(out, loader+"\n") {
		t.Errorf("loader: want only %s mounted, got %q", loader, out)
	}
	out = strings.TrimSuffix(out, loader+"\n")
	if code != 0 || out != "NoNewPrivs:1\nSeccomp:2\nSeccomp_filters:1\n" {
		t.Errorf("status: %q (exit %d)", out, code)
	}
	// A command that cannot be found before the start falls back to libcontainer's path and
	// its error.
	id := e.create(t, func(c *ContainerConfig) { c.Args = []string{"/nonexistent"} })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := r.Start(ctx, id); err == nil || !strings.Contains(err.Error(), "nonexistent") {
		t.Errorf("start of a missing command: %v", err)
	}
	// The profile is kept apart from libct.json, which a start decodes every time.
	if b, err := os.ReadFile(filepath.Join(r.dir(id), "libct.json")); err != nil || strings.Contains(string(b), `"seccomp"`) {
		t.Errorf("libct.json still holds the seccomp profile (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(r.dir(id), seccompProfileFile)); err != nil {
		t.Errorf("no separate seccomp profile: %v", err)
	}
	// Exec'd processes load the filter too.
	id = e.create(t, func(c *ContainerConfig) { c.Args = []string{"sleep", "1000"} })
	if err := r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	var xout bytes.Buffer
	code, err = r.Exec(ctx, id, ProcessSpec{Args: []string{"/bin/probe"}}, Stdio{Stdout: &xout, Stderr: &xout})
	if err != nil || code != 0 || !strings.Contains(xout.String(), "keyctl: operation not permitted") || !strings.Contains(xout.String(), "unshare-user: operation not permitted") {
		t.Errorf("exec probe = %d, %v:\n%s", code, err, xout.String())
	}
	xout.Reset()
	code, err = r.Exec(ctx, id, ProcessSpec{Args: []string{"sh", "-c", "grep -E '^Seccomp:' /proc/self/status | tr -d '\\t'"}, Privileged: true}, Stdio{Stdout: &xout})
	if err != nil || code != 0 || xout.String() != "Seccomp:2\n" {
		t.Errorf("privileged exec = %d, %v, %q", code, err, xout.String())
	}
	if _, err := r.Exec(ctx, id, ProcessSpec{Args: []string{"/nonexistent"}}, Stdio{}); err == nil {
		t.Errorf("exec of a missing binary: no error")
	}
	if err := r.Stop(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	// Unconfined and privileged containers do not get it.
	_, out = e.run(t, []string{"/bin/probe"}, func(c *ContainerConfig) { c.SecurityOpt = []string{"seccomp=unconfined"} })
	if !strings.Contains(out, "keyctl: ok") {
		t.Errorf("unconfined probe:\n%s", out)
	}
	_, out = e.run(t, []string{"/bin/probe"}, func(c *ContainerConfig) { c.Privileged = true })
	if !strings.Contains(out, "mount: ok") || !strings.Contains(out, "keyctl: ok") {
		t.Errorf("privileged probe:\n%s", out)
	}
	// no-new-privileges:false keeps libcontainer's seccomp (a filter needs no_new_privs or
	// CAP_SYS_ADMIN to load).
	_, out = e.run(t, []string{"sh", "-c", "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -d '\\t'"}, func(c *ContainerConfig) {
		c.SecurityOpt = []string{"no-new-privileges=false"}
	})
	if out != "NoNewPrivs:0\nSeccomp:2\n" {
		t.Errorf("no-new-privileges=false: %q", out)
	}
}
