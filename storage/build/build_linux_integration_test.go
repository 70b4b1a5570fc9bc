//go:build linux && integration

package build

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/storage"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// chrootRunner runs RUN steps with chroot(2) into the mounted rootfs: a real process on a
// real overlay mount, without the runtime (which storage/build may not import).
type chrootRunner struct{ calls int }

func (r *chrootRunner) Run(ctx context.Context, spec RunSpec) (int, error) {
	r.calls++
	cmd := exec.CommandContext(ctx, spec.Args[0], spec.Args[1:]...)
	cmd.Path = spec.Args[0] // resolved inside the chroot by the kernel
	cmd.Env, cmd.Dir = spec.Env, spec.WorkingDir
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: spec.Rootfs}
	if spec.User != "" {
		uid, err := strconv.Atoi(strings.Split(spec.User, ":")[0])
		if err != nil {
			return -1, err
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

func busyboxContext(t *testing.T) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs /bin/busybox (Debian busybox-static)")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func mountsUnder(t *testing.T, root string) []string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 4 && strings.HasPrefix(fs[4], root) {
			out = append(out, fs[4])
		}
	}
	return out
}

const busyboxDockerfile = `FROM scratch AS base
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]

FROM base AS tools
ARG NAME=world
ENV GREETING="hello $NAME"
WORKDIR /app
RUN echo "$GREETING" > greeting && mkdir -p /var/tmp && echo gone > /var/tmp/f
RUN rm /var/tmp/f && rm /bin/vi && test "$(pwd)" = /app
USER 1000
RUN test "$(id -u)" = 1000

FROM scratch
COPY --from=tools /app/greeting /greeting
`

func TestBuildBusyboxRunSteps(t *testing.T) {
	requireRoot(t)
	dir := busyboxContext(t)
	os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(busyboxDockerfile), 0o644)
	root := t.TempDir()
	s, err := storage.Open(filepath.Join(root, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	r := &chrootRunner{}
	var out bytes.Buffer
	ctx := context.Background()
	id, err := Build(ctx, s, r, Options{ContextDir: dir, Progress: &out, Tags: []string{"bbtest:1"}, Args: map[string]string{"NAME": "berth"}})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if r.calls != 4 {
		t.Errorf("runner calls = %d, want 4", r.calls)
	}
	img, _ := s.Resolve(ctx, id)
	if got, _ := readImageFile(t, s, img, "/greeting"); got != "hello berth\n" {
		t.Errorf("/greeting = %q", got)
	}
	// The tools stage: deleted files are whited out, the writable layer's mount points are not
	// in the layers.
	tools, err := Build(ctx, s, r, Options{ContextDir: dir, Target: "tools", Args: map[string]string{"NAME": "berth"}})
	if err != nil {
		t.Fatal(err)
	}
	timg, _ := s.Resolve(ctx, tools)
	for p, want := range map[string]bool{"/var/tmp/f": false, "/bin/vi": false, "/bin/ls": true, "/app/greeting": true, "/proc": false, "/etc/resolv.conf": false} {
		if got := imageHas(t, s, timg, p); got != want {
			t.Errorf("tools %s present = %v, want %v", p, got, want)
		}
	}
	if r.calls != 4 {
		t.Errorf("target build re-ran steps: calls = %d", r.calls)
	}
	if m := mountsUnder(t, root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "storage", "mounts")); len(ents) != 0 {
		t.Errorf("container layers left: %d", len(ents))
	}
}

func TestBuildFailingRunStep(t *testing.T) {
	requireRoot(t)
	dir := busyboxContext(t)
	df := "FROM scratch\nCOPY busybox /bin/busybox\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\nRUN echo building; echo oops >&2; exit 3\nLABEL never=1\n"
	root := t.TempDir()
	s, err := storage.Open(filepath.Join(root, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var out bytes.Buffer
	ctx := context.Background()
	_, err = Build(ctx, s, &chrootRunner{}, Options{ContextDir: dir, DockerfileInline: df, Progress: &out, Tags: []string{"fail:1"}})
	var be *Error
	if !errors.As(err, &be) || be.ExitCode != 3 || be.Line != 4 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "oops") || !strings.Contains(out.String(), "building") {
		t.Errorf("output missing: %v\n%s", err, out.String())
	}
	if _, err := s.Resolve(ctx, "fail:1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("failed build tagged: %v", err)
	}
	imgs, _ := s.List(ctx)
	for _, img := range imgs {
		if img.Config.Labels["never"] != "" {
			t.Errorf("half image left: %s", img.ID)
		}
	}
	if m := mountsUnder(t, root); len(m) != 0 {
		t.Errorf("mounts left: %v", m)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "storage", "mounts")); len(ents) != 0 {
		t.Errorf("container layers left: %d", len(ents))
	}
}
