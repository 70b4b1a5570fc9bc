package spec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSharingValues checks the values of pid, ipc, userns_mode and volumes_from at load time.
func TestSharingValues(t *testing.T) {
	tests := []struct {
		name, service, path, msg, hint string
	}{
		{name: "ok", service: "    pid: service:db\n    ipc: shareable\n    userns_mode: host\n    volumes_from: [db, \"db:ro\", \"container:x\", \"container:x:rw\"]\n"},
		{name: "userns-auto", service: "    userns_mode: auto\n    network_mode: service:db\n"},
		{name: "userns", service: "    userns_mode: keep-id\n", path: "services.web.userns_mode", msg: `"keep-id" is not a user namespace mode`, hint: `"auto"`},
		{name: "userns-host-pid", service: "    userns_mode: auto\n    pid: host\n", path: "services.web.userns_mode", msg: `combined with pid: "host"`, hint: "remove one"},
		{name: "userns-ipc", service: "    userns_mode: auto\n    ipc: service:db\n", path: "services.web.userns_mode", msg: `combined with ipc`, hint: "remove one"},
		{name: "userns-privileged", service: "    userns_mode: auto\n    privileged: true\n", path: "services.web.userns_mode", msg: "privileged", hint: "userns_mode: host"},
		{name: "pid", service: "    pid: private\n", path: "services.web.pid", msg: `"private" is not a PID namespace mode`, hint: "service:NAME"},
		{name: "ipc", service: "    ipc: public\n", path: "services.web.ipc", msg: `"public" is not an IPC namespace mode`, hint: "shareable"},
		{name: "volumes-from", service: "    volumes_from: [\"db:rx\"]\n", path: "services.web.volumes_from[0]", msg: `"db:rx"`, hint: "SERVICE:ro"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			body := "services:\n  db:\n    image: busybox\n  web:\n    image: busybox\n" + tt.service
			if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := Load(context.Background(), Options{WorkingDir: dir, ProjectDir: dir, Environ: []string{}})
			if tt.path == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Load: %v, want a *spec.Error", err)
			}
			if e.Path != tt.path || !strings.Contains(e.Msg, tt.msg) || !strings.Contains(e.Hint, tt.hint) || !errors.Is(err, ErrInvalid) {
				t.Errorf("got path %q msg %q hint %q; want %q, %q, %q", e.Path, e.Msg, e.Hint, tt.path, tt.msg, tt.hint)
			}
		})
	}
}
