//go:build linux && integration

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EFiles mounts a file secret, an environment secret and a content config into a
// service's container and checks that down leaves nothing behind.
func TestE2EFiles(t *testing.T) {
	e := newWireEnv(t, "secrets")
	e.env = append(e.env, "E2E_FILES_TOKEN=env-secret-value")
	e.mustBerth("up", "-d")
	e.eventually(20*time.Second, func() string {
		out, _ := e.berth("logs", "app")
		if !strings.Contains(out, "started") {
			return "app never started; logs:\n" + out
		}
		return ""
	})
	for _, tc := range []struct{ path, want string }{
		{"/run/secrets/db_password", "file-secret-value"},
		{"/run/secrets/token", "env-secret-value"},
		{"/etc/app.conf", "greeting=hello-config"},
	} {
		if out := e.mustBerth("exec", "-T", "app", "cat", tc.path); !strings.Contains(out, tc.want) {
			t.Errorf("cat %s = %q, want %q", tc.path, out, tc.want)
		}
	}
	// Secrets are read-only in the container, and the token has the mode asked for.
	if out, err := e.berth("exec", "-T", "app", "sh", "-c", "echo x > /run/secrets/token"); err == nil {
		t.Errorf("writing a secret succeeded: %s", out)
	}
	if out := e.mustBerth("exec", "-T", "app", "ls", "-l", "/run/secrets/token"); !strings.HasPrefix(strings.TrimSpace(out), "-r--------") {
		t.Errorf("ls -l token = %q, want mode 0400", out)
	}
	filesDirs := func() string {
		out, _ := exec.Command("find", filepath.Join(e.root, "storage"), "-name", "berth-files").CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	if filesDirs() == "" {
		t.Errorf("no berth-files directory under %s while the container exists", filepath.Join(e.root, "storage"))
	}
	e.mustBerth("down", "-t", "0")
	if ps := e.mustBerth("ps", "-a"); strings.Contains(ps, "e2esecrets") {
		t.Errorf("containers left after down:\n%s", ps)
	}
	if left := wireContainerDirs(e.root); len(left) > 0 {
		t.Errorf("container state left after down: %v", left)
	}
	// The written secret files lived in the container's writable-layer directory.
	if left := filesDirs(); left != "" {
		t.Errorf("secret files left after down:\n%s", left)
	}
	// The file secret's source is untouched.
	if b, err := os.ReadFile(filepath.Join(e.dir, "db_password.txt")); err != nil || !strings.Contains(string(b), "file-secret-value") {
		t.Errorf("file secret source: %q, %v", b, err)
	}
}

// TestE2EFilesErrors: an external secret and a missing secret file fail up with an error that
// names the service and the secret, and make nothing.
func TestE2EFilesErrors(t *testing.T) {
	e := newWireEnv(t, "secrets")
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"external.yaml", []string{"service app", `secret "ext"`, "external secrets are not supported by berth; use file:"}},
		{"missing.yaml", []string{"service app", `secret "gone"`, "no-such-secret.txt"}},
	} {
		out, err := e.berth("-f", tc.file, "up", "-d")
		if err == nil {
			t.Errorf("up -f %s succeeded:\n%s", tc.file, out)
			continue
		}
		t.Logf("up -f %s: %s", tc.file, strings.TrimSpace(out))
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("up -f %s: output does not mention %q:\n%s", tc.file, w, out)
			}
		}
		if left := wireContainerDirs(e.root); len(left) > 0 {
			t.Errorf("up -f %s left containers: %v", tc.file, left)
		}
	}
}
