package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `up --dry-run` and `down --dry-run` work without root and without any berth state: the
// README's first command depends on it.
func TestComposeDryRunWithoutState(t *testing.T) {
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(compose, []byte(`name: dry
services:
  web:
    image: busybox
    depends_on: [db]
    ports: ["8080:80"]
  db:
    image: busybox
    volumes: [data:/data]
volumes:
  data: {}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "no", "such", "root")
	runRoot := filepath.Join(dir, "no", "such", "run")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"up", "--dry-run"}, []string{"EnsureNetwork network:dry_default", "EnsureVolume volume:dry_data",
			"CreateContainer service:db:1", "StartContainer service:web:1"}},
		{[]string{"up", "--dry-run", "--format", "json"}, []string{`"project": "dry"`, `"kind": "CreateContainer"`}},
		{[]string{"up", "--dry-run", "--scale", "web=2", "web"}, []string{"CreateContainer service:web:2"}},
		{[]string{"down", "--dry-run"}, nil},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"-f", compose, "--root", root, "--run-root", runRoot}, tc.args...)
		if code := run(args, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Fatalf("berth %v: exit %d\n%s%s", tc.args, code, stdout.String(), stderr.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("berth %v: output lacks %q:\n%s", tc.args, w, stdout.String())
			}
		}
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("dry run created the state root: %v", err)
	}
	if _, err := os.Stat(runRoot); !os.IsNotExist(err) {
		t.Errorf("dry run created the run root: %v", err)
	}
}

func TestComposeUpNeedsRootMessage(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as a normal user")
	}
	dir := t.TempDir()
	compose := filepath.Join(dir, "compose.yaml")
	os.WriteFile(compose, []byte("name: x\nservices:\n  a:\n    image: busybox\n"), 0o644)
	var stdout, stderr bytes.Buffer
	code := run([]string{"-f", compose, "--root", dir + "/r", "--run-root", dir + "/rr", "up", "-d"}, strings.NewReader(""), &stdout, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "needs root") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}
