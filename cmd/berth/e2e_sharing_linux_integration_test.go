//go:build linux && integration

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/spec"
)

// End-to-end checks of volumes_from, pid, ipc and userns_mode (issue 4), through the CLI's
// container commands and through up.

// sharingSearchable lets a user namespace's root (an unprivileged host user) reach the
// container directories under the test's root, which t.TempDir makes 0700.
func sharingSearchable(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	top := filepath.Clean(os.TempDir())
	for d := dir; strings.HasPrefix(d, top+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

// sharingSweep checks that the next create releases the /dev/shm of removed shareable
// containers (Remove leaves it to the next Create until it releases it itself).
func sharingSweep(e *wireEnv) {
	e.t.Helper()
	if id, err := e.berth("container", "create", "bb:latest", "true"); err == nil {
		_, _ = e.berth("container", "rm", strings.TrimSpace(id))
	}
	if ents, _ := os.ReadDir(filepath.Join(e.root, "containers", ".shm")); len(ents) > 0 {
		e.t.Errorf("shareable /dev/shm left behind: %v", ents)
	}
}

func TestE2ESharingContainerFlags(t *testing.T) {
	e := newWireEnv(t, "sharing")
	t.Cleanup(func() {
		for _, n := range []string{"sh-src", "sh-ipc", "sh-userns"} {
			_, _ = e.berth("container", "rm", "-f", "-v", n)
		}
		_, _ = e.berth("volume", "rm", "shvol")
		sharingSweep(e)
	})
	e.mustBerth("container", "run", "-d", "--name", "sh-src", "-v", "shvol:/data", "bb:latest",
		"sh", "-c", "echo from-src > /data/f; exec sleep 300")
	// Running, its file written and its shell replaced by sleep (what --pid sees below).
	e.eventually(20*time.Second, func() string {
		if e.morePid("sh-src") == 0 {
			return "sh-src is not running"
		}
		out, _ := e.berth("container", "exec", "sh-src", "sh", "-c", "cat /data/f; cat /proc/1/comm")
		if out != "from-src\nsleep\n" {
			return fmt.Sprintf("sh-src not ready: %q", out)
		}
		return ""
	})
	out := e.mustBerth("container", "run", "--rm", "--volumes-from", "sh-src:ro", "bb:latest",
		"sh", "-c", "cat /data/f; touch /data/x 2>/dev/null || echo ro")
	if out != "from-src\nro\n" {
		t.Errorf("--volumes-from sh-src:ro: %q", out)
	}
	out = e.mustBerth("container", "run", "--rm", "--pid", "container:sh-src", "bb:latest", "cat", "/proc/1/comm")
	if out != "sleep\n" {
		t.Errorf("--pid container:sh-src: %q", out)
	}
	e.mustBerth("container", "run", "-d", "--name", "sh-ipc", "--ipc", "shareable", "bb:latest",
		"sh", "-c", "echo shm > /dev/shm/s; exec sleep 300")
	e.eventually(10*time.Second, func() string {
		out, _ := e.berth("container", "run", "--rm", "--ipc", "container:sh-ipc", "bb:latest", "cat", "/dev/shm/s")
		if out != "shm\n" {
			return fmt.Sprintf("--ipc container:sh-ipc: %q", out)
		}
		return ""
	})
	sharingSearchable(t, filepath.Join(e.root, "containers"))
	out = e.mustBerth("container", "run", "--rm", "--userns", "auto", "-v", "shvol:/vol", "bb:latest",
		"sh", "-c", "id -u; echo x > /rootfile && echo x > /vol/u && echo ok")
	if out != "0\nok\n" {
		t.Errorf("--userns auto: %q", out)
	}
	// exec joins the user namespace too.
	e.mustBerth("container", "run", "-d", "--name", "sh-userns", "--userns", "auto", "bb:latest", "sleep", "300")
	out = e.mustBerth("container", "exec", "sh-userns", "sh", "-c", "id -u; cat /proc/self/uid_map")
	if !strings.HasPrefix(out, "0\n") || !strings.Contains(out, "65536") {
		t.Errorf("exec in a user namespace: %q", out)
	}
	if out, err := e.berth("container", "run", "--rm", "--userns", "keep-id", "bb:latest", "true"); err == nil || !strings.Contains(out, `"auto"`) {
		t.Errorf("--userns keep-id: %v\n%s", err, out)
	}
}

// TestE2ESharingUp runs the sharing fixture with up. It needs cmd/berth/wire.go to pass the
// service's volumes_from, pid, ipc and userns_mode to the runtime (see the issue 4 report).
func TestE2ESharingUp(t *testing.T) {
	w := wireContainerConfig(engine.ContainerConfig{Service: spec.Service{PID: "host", IPC: "host", UsernsMode: "auto", VolumesFrom: []string{"x"}}})
	if w.PIDMode == "" || w.IPCMode == "" || w.UsernsMode == "" || len(w.VolumesFrom) == 0 {
		t.Skip("wireContainerConfig does not pass volumes_from, pid, ipc and userns_mode to the runtime yet")
	}
	e := newWireEnv(t, "sharing")
	t.Cleanup(func() {
		if out, err := e.berth("down", "-v", "-t", "0"); err != nil {
			t.Logf("down: %v\n%s", err, out)
		}
		sharingSweep(e)
	})
	sharingSearchable(t, filepath.Join(e.root, "containers"))
	e.moreUp("-d")
	out := e.moreLogsHave(15*time.Second, "b", "b-done")
	for _, want := range []string{"from-a\n", "data-ro\n", "shm-of-a\n", "pid1-is-sleep\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("b's logs lack %q:\n%s", want, out)
		}
	}
	out = e.moreLogsHave(15*time.Second, "u", "u-done")
	if !strings.Contains(out, "65536") || !strings.Contains(out, "\n0\n") {
		t.Errorf("u's logs:\n%s", out)
	}
	// A second up keeps everything: the rewritten references do not change the config hash.
	out = e.moreUp("-d")
	if strings.Contains(out, "Recreate") {
		t.Errorf("second up recreated:\n%s", out)
	}
}
