//go:build linux && integration

package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// startLong creates and starts a container running args and returns its ID and host PID.
func (e *testEnv) startLong(t *testing.T, args []string, mod func(*ContainerConfig)) (string, int) {
	t.Helper()
	id := e.create(t, func(c *ContainerConfig) {
		c.Args = args
		if mod != nil {
			mod(c)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	st, err := e.r.Inspect(ctx, id)
	if err != nil || st.Pid <= 0 {
		t.Fatalf("inspect %s: %+v %v", id[:12], st, err)
	}
	return id, st.Pid
}

func TestVolumesFromContainer(t *testing.T) {
	e := newTestEnv(t)
	v, err := NewVolumes(filepath.Join(e.root, "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	vol, err := v.Ensure(context.Background(), "shared", nil)
	if err != nil {
		t.Fatal(err)
	}
	bind := filepath.Join(e.root, "bind")
	if err := os.MkdirAll(bind, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(bind, "g"), []byte("b\n"), 0o644)
	code, out := e.run(t, []string{"sh", "-c", "echo written > /data/f"}, func(c *ContainerConfig) {
		c.Name = "vf-source"
		c.Mounts = []Mount{
			{Type: "volume", Source: vol, Target: "/data"},
			{Type: "bind", Source: bind, Target: "/b", ReadOnly: true},
			{Type: "tmpfs", Target: "/t"},
		}
	})
	if code != 0 {
		t.Fatalf("source: exit %d: %s", code, out)
	}
	// The source is stopped: volumes_from does not need it running. /b was read-only in the
	// source and stays so; /data becomes read-only with :ro; the tmpfs is not inherited.
	script := "cat /data/f /b/g; touch /data/x 2>/dev/null || echo data-ro; touch /b/x 2>/dev/null || echo b-ro; grep -c ' /t ' /proc/mounts"
	code, out = e.run(t, []string{"sh", "-c", script}, func(c *ContainerConfig) {
		c.VolumesFrom = []string{"vf-source:ro"}
	})
	if want := "written\nb\ndata-ro\nb-ro\n0\n"; out != want {
		t.Errorf("volumes_from :ro: got %q (exit %d), want %q", out, code, want)
	}
	// Default mode: the source's (rw for /data); the container's own mount at /b wins.
	own := filepath.Join(e.root, "own")
	code, out = e.run(t, []string{"sh", "-c", "echo again >> /data/f && cat /data/f; ls /b"}, func(c *ContainerConfig) {
		c.Mounts = []Mount{{Type: "bind", Source: own, Target: "/b"}}
		c.VolumesFrom = []string{"vf-source"}
	})
	if want := "written\nagain\n"; code != 0 || out != want {
		t.Errorf("volumes_from rw: got %q (exit %d), want %q", out, code, want)
	}
	// The stored config names the source by ID and lists the inherited mounts.
	all, _ := e.r.List(context.Background())
	var got ContainerConfig
	for _, c := range all {
		if len(c.Config.VolumesFrom) > 0 && strings.HasSuffix(c.Config.VolumesFrom[0], ":ro") {
			got = c.Config
		}
	}
	if len(got.VolumesFrom) != 1 || !validID(strings.TrimSuffix(got.VolumesFrom[0], ":ro")) || len(got.Mounts) != 2 {
		t.Errorf("stored config: volumesFrom %q, mounts %+v", got.VolumesFrom, got.Mounts)
	}
	// An unknown source is refused at create.
	if err := e.r.Create(context.Background(), ContainerConfig{ID: NewID(), Rootfs: e.rootfs, Args: []string{"true"}, VolumesFrom: []string{"nope"}}); err == nil {
		t.Error("volumes_from an unknown container: no error")
	}
}

func TestPIDNamespaceModes(t *testing.T) {
	e := newTestEnv(t)
	a, _ := e.startLong(t, []string{"sleep", "300"}, func(c *ContainerConfig) { c.Name = "pid-a" })
	// Joining a's namespace: a's sleep is PID 1 there, and this container's ps is beside it.
	code, out := e.run(t, []string{"sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo"}, func(c *ContainerConfig) {
		c.PIDMode = "container:pid-a"
	})
	if code != 0 || strings.TrimSpace(out) != "sleep 300" {
		t.Errorf("pid container:a: got %q (exit %d)", out, code)
	}
	// The host's namespace: this test process is visible.
	code, out = e.run(t, []string{"sh", "-c", fmt.Sprintf("test -d /proc/%d && echo host", os.Getpid())}, func(c *ContainerConfig) {
		c.PIDMode = "host"
	})
	if code != 0 || out != "host\n" {
		t.Errorf("pid host: got %q (exit %d)", out, code)
	}
	// A stopped target is refused with a clear error.
	if err := e.r.Stop(context.Background(), a, time.Second); err != nil {
		t.Fatal(err)
	}
	err := e.r.Create(context.Background(), ContainerConfig{ID: NewID(), Rootfs: e.rootfs, Args: []string{"true"}, PIDMode: "container:pid-a"})
	if err == nil || !strings.Contains(err.Error(), "start it first") {
		t.Errorf("pid of a stopped container: %v", err)
	}
}

func TestIPCNamespaceModes(t *testing.T) {
	e := newTestEnv(t)
	// Runs after every container's removal: Remove leaves a shareable /dev/shm for the next
	// Create to sweep.
	t.Cleanup(e.r.sweepShm)
	a, apid := e.startLong(t, []string{"sh", "-c", "echo shared > /dev/shm/x; exec sleep 300"}, func(c *ContainerConfig) {
		c.Name = "ipc-a"
		c.IPCMode = "shareable"
	})
	aNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/ipc", apid))
	if err != nil {
		t.Fatal(err)
	}
	waitFile(t, filepath.Join(e.r.shmDir(a), "x"))
	code, out := e.run(t, []string{"sh", "-c", "readlink /proc/self/ns/ipc; cat /dev/shm/x"}, func(c *ContainerConfig) {
		c.IPCMode = "container:ipc-a"
	})
	if want := aNS + "\nshared\n"; code != 0 || out != want {
		t.Errorf("ipc container:a: got %q (exit %d), want %q", out, code, want)
	}
	hostNS, _ := os.Readlink("/proc/self/ns/ipc")
	code, out = e.run(t, []string{"sh", "-c", "readlink /proc/self/ns/ipc"}, func(c *ContainerConfig) { c.IPCMode = "host" })
	if code != 0 || out != hostNS+"\n" {
		t.Errorf("ipc host: got %q, want %q", out, hostNS)
	}
	code, out = e.run(t, []string{"sh", "-c", "grep -c ' /dev/shm ' /proc/mounts"}, func(c *ContainerConfig) { c.IPCMode = "none" })
	if out != "0\n" {
		t.Errorf("ipc none: /dev/shm mounts %q (exit %d)", out, code)
	}
	// Removing the shareable container releases its /dev/shm the next time one is made.
	if err := e.r.Remove(context.Background(), a, true); err != nil {
		t.Fatal(err)
	}
	e.create(t, func(c *ContainerConfig) { c.IPCMode = "shareable" })
	if _, err := os.Stat(e.r.shmDir(a)); !os.IsNotExist(err) {
		t.Errorf("shm of a removed container: %v", err)
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not appear", path)
}

// overlayRootfs mounts an overlay of lower with a fresh writable layer, as storage does, and
// returns the merged directory and the upper directory.
func overlayRootfs(t *testing.T, lower string) (merged, upper string) {
	t.Helper()
	dir := t.TempDir()
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		t.Skipf("no overlay: %v", err)
	}
	defer unix.Close(fd)
	for _, kv := range [][2]string{{"lowerdir+", lower}, {"upperdir", upper}, {"workdir", work}} {
		if err := unix.FsconfigSetString(fd, kv[0], kv[1]); err != nil {
			t.Skipf("overlay %s: %v", kv[0], err)
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		t.Fatal(err)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, merged, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(merged, unix.MNT_DETACH) })
	return merged, upper
}

// searchable lets other users search every directory from dir up to the temporary directory,
// as a user namespace's root must reach its root filesystem.
func searchable(t *testing.T, dir string) {
	t.Helper()
	top := filepath.Clean(os.TempDir())
	for d := dir; strings.HasPrefix(d, top+"/"); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUsernsAuto(t *testing.T) {
	e := newTestEnv(t)
	searchable(t, filepath.Join(e.root, "containers"))
	merged, upper := overlayRootfs(t, e.rootfs)
	v, err := NewVolumes(filepath.Join(e.root, "volumes"))
	if err != nil {
		t.Fatal(err)
	}
	vol, err := v.Ensure(context.Background(), "uvol", nil)
	if err != nil {
		t.Fatal(err)
	}
	script := "cat /proc/self/uid_map /proc/self/gid_map; id -u; stat -c '%u %U' /etc/passwd /; " +
		"echo root > /rootfile && echo etc > /etc/new && echo vol > /vol/f && echo vol-ok; cat /vol/seed"
	var cfg ContainerConfig
	id := e.create(t, func(c *ContainerConfig) {
		c.Rootfs = merged
		c.Args = []string{"sh", "-c", script}
		c.UsernsMode = UsernsAuto
		c.Mounts = []Mount{{Type: "volume", Source: vol, Target: "/vol"}}
	})
	os.WriteFile(filepath.Join(vol, "seed"), []byte("seed\n"), 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if c, err := e.r.Get(ctx, id); err == nil {
		cfg = c.Config
	}
	if cfg.IDMap == nil || cfg.IDMap.Size != 65536 || cfg.IDMap.HostUID == 0 {
		t.Fatalf("IDMap = %+v", cfg.IDMap)
	}
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatalf("start: %v", err)
	}
	code, _ := e.r.Wait(ctx, id)
	var buf strings.Builder
	_ = e.r.Logs(ctx, id, LogOptions{Tail: -1}, &buf)
	m := fmt.Sprintf("%10d %10d %10d", 0, cfg.IDMap.HostUID, 65536)
	g := fmt.Sprintf("%10d %10d %10d", 0, cfg.IDMap.HostGID, 65536)
	want := m + "\n" + g + "\n0\n0 root\n0 root\nvol-ok\nseed\n"
	if code != 0 || buf.String() != want {
		t.Errorf("userns auto: exit %d, output\n%s\nwant\n%s", code, buf.String(), want)
	}
	// What the container wrote is stored with its own IDs: root is 0 on disk.
	for _, p := range []string{filepath.Join(upper, "rootfile"), filepath.Join(upper, "etc/new"), filepath.Join(vol, "f")} {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil || st.Uid != 0 || st.Gid != 0 {
			t.Errorf("%s: uid %d gid %d (%v), want 0 0", p, st.Uid, st.Gid, err)
		}
	}
	// A second container gets another range.
	id2 := e.create(t, func(c *ContainerConfig) {
		r2, _ := overlayRootfs(t, e.rootfs)
		c.Rootfs = r2
		c.UsernsMode = UsernsAuto
	})
	c2, _ := e.r.Get(ctx, id2)
	if c2.Config.IDMap == nil || c2.Config.IDMap.HostUID == cfg.IDMap.HostUID {
		t.Errorf("second container's range %+v, first %+v", c2.Config.IDMap, cfg.IDMap)
	}
	// In a network namespace the host owns (as a bridge network's), /sys is the host's, bound
	// read-only, since only the namespace's owner may mount sysfs.
	_, apid := e.startLong(t, []string{"sleep", "300"}, nil)
	r3, _ := overlayRootfs(t, e.rootfs)
	code, out := e.run(t, []string{"sh", "-c", "ls /sys/class/net; touch /sys/x 2>/dev/null || echo sys-ro; id -u"}, func(c *ContainerConfig) {
		c.Rootfs = r3
		c.UsernsMode = UsernsAuto
		c.NetNSPath = fmt.Sprintf("/proc/%d/ns/net", apid)
	})
	if code != 0 || !strings.Contains(out, "lo\n") || !strings.HasSuffix(out, "sys-ro\n0\n") {
		t.Errorf("userns in a joined network namespace: exit %d, %q", code, out)
	}
	// After a reboot (the mount is gone), prepareStart mounts it again from the recorded layers.
	if err := unix.Unmount(cfg.Rootfs, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.prepareStart(&cfg, &configs.Config{}); err != nil {
		t.Fatalf("prepareStart: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.Rootfs, "rootfile")); err != nil || string(b) != "root\n" {
		t.Errorf("remounted rootfs: %q, %v", b, err)
	}
	// Remove unmounts the container's own root filesystem.
	if err := e.r.Remove(ctx, id, true); err != nil {
		t.Fatal(err)
	}
	if ok, _ := isMountPoint(cfg.Rootfs); ok {
		t.Errorf("%s still mounted after remove", cfg.Rootfs)
	}
	// Bad combinations fail clearly.
	err = e.r.Create(ctx, ContainerConfig{ID: NewID(), Rootfs: merged, Args: []string{"true"}, UsernsMode: "keep-id"})
	if err == nil || !strings.Contains(err.Error(), `"auto"`) {
		t.Errorf("userns keep-id: %v", err)
	}
}

// prepareStart finds a joined container again after it restarted, and remounts what a reboot
// takes away.
func TestPrepareStart(t *testing.T) {
	e := newTestEnv(t)
	t.Cleanup(e.r.sweepShm)
	ctx := context.Background()
	a, pid1 := e.startLong(t, []string{"sleep", "300"}, func(c *ContainerConfig) {
		c.Name = "ps-a"
		c.IPCMode = "shareable"
	})
	b := e.create(t, func(c *ContainerConfig) {
		c.PIDMode = "container:ps-a"
		c.IPCMode = "container:ps-a"
	})
	if err := e.r.Stop(ctx, a, time.Second); err != nil {
		t.Fatal(err)
	}
	// Like a reboot: a's /dev/shm is gone.
	if err := unix.Unmount(e.r.shmDir(a), unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Start(ctx, a); err != nil {
		t.Fatal(err)
	}
	st, _ := e.r.Inspect(ctx, a)
	if st.Pid == pid1 {
		t.Fatalf("a kept PID %d across a restart", pid1)
	}
	bc, err := e.r.config(b)
	if err != nil {
		t.Fatal(err)
	}
	var lc configs.Config
	if err := readJSON(filepath.Join(e.r.dir(b), "libct.json"), &lc); err != nil {
		t.Fatal(err)
	}
	got, err := e.r.prepareStart(&bc, &lc)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []configs.NamespaceType{configs.NEWPID, configs.NEWIPC} {
		want := fmt.Sprintf("/proc/%d/ns/%s", st.Pid, map[configs.NamespaceType]string{configs.NEWPID: "pid", configs.NEWIPC: "ipc"}[ns])
		if p := got.Namespaces.PathOf(ns); p != want {
			t.Errorf("%s path %q, want %q", ns, p, want)
		}
		if p := lc.Namespaces.PathOf(ns); p != fmt.Sprintf("/proc/%d/ns/%s", pid1, map[configs.NamespaceType]string{configs.NEWPID: "pid", configs.NEWIPC: "ipc"}[ns]) {
			t.Errorf("prepareStart changed its input: %s path %q", ns, p)
		}
	}
	// a's own start does not remount its /dev/shm (the monitor does not call prepareStart
	// yet); prepareStart on a does.
	ac, _ := e.r.config(a)
	var alc configs.Config
	_ = readJSON(filepath.Join(e.r.dir(a), "libct.json"), &alc)
	if _, err := e.r.prepareStart(&ac, &alc); err != nil {
		t.Fatal(err)
	}
	if ok, _ := isMountPoint(e.r.shmDir(a)); !ok {
		t.Error("prepareStart did not remount a's /dev/shm")
	}
	// A joined container that is not running is an error naming it.
	if err := e.r.Stop(ctx, a, time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.r.prepareStart(&bc, &lc); err == nil || !strings.Contains(err.Error(), "ps-a") {
		t.Errorf("prepareStart with a stopped target: %v", err)
	}
}
