package runtime

// User namespaces ("userns_mode: auto", `--userns=auto`, after Podman's mode of the same
// name): the container's user and group IDs 0-65535 are a range of unprivileged host IDs
// that no other container of this berth uses, so root in the container is nobody on the host.
//
// Files keep their IDs on disk: the container's root filesystem is its own overlay mount of
// the image's layers and its writable layer, each layer an ID-mapped mount (open_tree +
// mount_setattr(MOUNT_ATTR_IDMAP), Linux 5.19+ for overlay over ID-mapped layers), and
// volumes and bind mounts are ID-mapped bind mounts. overlayfs itself refuses
// MOUNT_ATTR_IDMAP, so the merged directory cannot simply be ID-mapped.
//
// Ranges come from the "berth" entry of /etc/subuid and /etc/subgid when both have one,
// else from a built-in pool of 4096 ranges starting at host ID 1073741824 (2^30).

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// User namespace modes of ContainerConfig.UsernsMode.
const (
	UsernsHost = "host"
	UsernsAuto = "auto"
)

const (
	usernsSize        = 65536
	defaultSubIDStart = 1 << 30
	defaultSubIDCount = usernsSize * 4096
	subIDUser         = "berth"
)

// ErrUserns is returned when the kernel cannot give a container a user namespace with an
// ID-mapped root filesystem.
var ErrUserns = errors.New("user namespace not supported")

// usernsEnabled parses a UsernsMode.
func usernsEnabled(mode string) (bool, error) {
	switch mode {
	case "", UsernsHost:
		return false, nil
	case UsernsAuto:
		return true, nil
	}
	return false, fmt.Errorf("userns mode %q: use %q (no user namespace, the default) or %q (a private range of host IDs): %w",
		mode, UsernsHost, UsernsAuto, ErrInvalid)
}

// subIDRange returns the first range of user in a /etc/subuid-style file.
func subIDRange(path, user string) (start, count uint32, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(parts) != 3 || parts[0] != user {
			continue
		}
		s, err1 := strconv.ParseUint(parts[1], 10, 32)
		n, err2 := strconv.ParseUint(parts[2], 10, 32)
		if err1 == nil && err2 == nil && n >= usernsSize {
			return uint32(s), uint32(n), true
		}
	}
	return 0, 0, false
}

// idPool is where container ranges are taken from.
type idPool struct {
	uid, gid, count uint32
}

func defaultIDPool(subuid, subgid string) idPool {
	us, un, ok1 := subIDRange(subuid, subIDUser)
	gs, gn, ok2 := subIDRange(subgid, subIDUser)
	if ok1 && ok2 {
		return idPool{uid: us, gid: gs, count: min(un, gn)}
	}
	return idPool{uid: defaultSubIDStart, gid: defaultSubIDStart, count: defaultSubIDCount}
}

// allocIDMap picks the first range of the pool that no container in used has.
func allocIDMap(pool idPool, used []ContainerConfig) (IDMap, error) {
	taken := map[uint32]bool{}
	for _, c := range used {
		if c.IDMap != nil {
			taken[c.IDMap.HostUID] = true
		}
	}
	for off := uint32(0); uint64(off)+usernsSize <= uint64(pool.count); off += usernsSize {
		if !taken[pool.uid+off] {
			return IDMap{HostUID: pool.uid + off, HostGID: pool.gid + off, Size: usernsSize}, nil
		}
	}
	return IDMap{}, fmt.Errorf("user namespace: all %d ID ranges of %d IDs are in use; remove containers or give user %q a larger range in /etc/subuid and /etc/subgid: %w",
		pool.count/usernsSize, usernsSize, subIDUser, ErrInvalid)
}

// newUserns returns a handle on a new user namespace with mapping m. A child is started in
// the namespace, stopped before it runs anything (ptrace stops it at exec), and killed once
// its namespace is open.
func newUserns(m IDMap) (*os.File, error) {
	proc, err := os.StartProcess("/proc/self/exe", []string{"berth-userns"}, &os.ProcAttr{
		Sys: &syscall.SysProcAttr{
			Cloneflags:  unix.CLONE_NEWUSER,
			UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m.HostUID), Size: int(m.Size)}},
			GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(m.HostGID), Size: int(m.Size)}},
			Ptrace:      true,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("user namespace: %w", err)
	}
	defer func() {
		_ = proc.Kill()
		_, _ = proc.Wait()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", proc.Pid))
	if err != nil {
		return nil, fmt.Errorf("user namespace: %w", err)
	}
	return f, nil
}

// overlayLayers reads the layers of the overlay mounted at dir from /proc/self/mountinfo.
func overlayLayers(dir string) (IDMappedRootfs, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return IDMappedRootfs{}, fmt.Errorf("read mountinfo: %w", err)
	}
	return parseOverlayLayers(string(b), dir)
}

// parseOverlayLayers finds the last mount at dir in mountinfo text and returns its layers.
func parseOverlayLayers(mountinfo, dir string) (IDMappedRootfs, error) {
	var opts string
	found := false
	for line := range strings.SplitSeq(mountinfo, "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 || unescapeMountinfo(f[4]) != dir {
			continue
		}
		found = true
		if g[0] == "overlay" {
			opts = g[2]
		} else {
			opts = ""
		}
	}
	if !found || opts == "" {
		return IDMappedRootfs{}, fmt.Errorf("user namespace: the root filesystem %s is not an overlay mount: %w", dir, ErrUserns)
	}
	out := IDMappedRootfs{Source: dir}
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		v = unescapeMountinfo(v)
		switch k {
		case "lowerdir+":
			out.Lower = append(out.Lower, v)
		case "lowerdir":
			for _, l := range splitLowerdir(v) {
				out.Lower = append(out.Lower, l)
			}
		case "upperdir":
			out.Upper = v
		case "workdir":
			out.Work = v
		case "datadir+":
			return IDMappedRootfs{}, fmt.Errorf("user namespace: overlay data-only layers are not supported: %w", ErrUserns)
		}
	}
	if len(out.Lower) == 0 || out.Upper == "" || out.Work == "" {
		return IDMappedRootfs{}, fmt.Errorf("user namespace: the root filesystem %s has no writable layer: %w", dir, ErrUserns)
	}
	for _, p := range append(slices.Clone(out.Lower), out.Upper, out.Work) {
		if !filepath.IsAbs(p) {
			return IDMappedRootfs{}, fmt.Errorf("user namespace: the root filesystem %s names its layers by relative paths (an overlay mounted without lowerdir+, Linux < 6.8): %w", dir, ErrUserns)
		}
	}
	if filepath.Dir(out.Upper) != filepath.Dir(out.Work) {
		return IDMappedRootfs{}, fmt.Errorf("user namespace: the upper and work directories of %s are not in one directory: %w", dir, ErrUserns)
	}
	return out, nil
}

// splitLowerdir splits a lowerdir= value at unescaped colons.
func splitLowerdir(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v):
			i++
			cur.WriteByte(v[i])
		case v[i] == ':':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}

// idmappedTree returns a detached clone of the mount tree at path, ID-mapped through userns.
func idmappedTree(path string, userns *os.File) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("user namespace: open_tree %s: %w", path, err)
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{
		Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(userns.Fd()),
	}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("user namespace: the kernel refuses an ID-mapped mount of %s (mount_setattr MOUNT_ATTR_IDMAP: %v; needs Linux 5.12+ and a filesystem that supports ID-mapped mounts): %w", path, err, ErrUserns)
	}
	return fd, nil
}

// mountIDMappedRootfs mounts at target an overlay of l's layers, each ID-mapped to m, unless
// target is a mount already. The overlay is created with the credentials of the container's
// root (host IDs m.HostUID/HostGID, all capabilities), so that what the container writes is
// stored with its own IDs in the writable layer.
func mountIDMappedRootfs(l *IDMappedRootfs, m IDMap, target string) error {
	if ok, err := isMountPoint(target); err != nil {
		return fmt.Errorf("user namespace: %w", err)
	} else if ok {
		return nil
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	userns, err := newUserns(m)
	if err != nil {
		return err
	}
	defer userns.Close()
	var fds []int
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	var lowers []int
	for _, p := range l.Lower {
		fd, err := idmappedTree(p, userns)
		if err != nil {
			return err
		}
		fds = append(fds, fd)
		lowers = append(lowers, fd)
	}
	parent, err := idmappedTree(filepath.Dir(l.Upper), userns)
	if err != nil {
		return err
	}
	fds = append(fds, parent)
	upper, err := unix.Openat(parent, filepath.Base(l.Upper), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("user namespace: open %s: %w", l.Upper, err)
	}
	fds = append(fds, upper)
	work, err := unix.Openat(parent, filepath.Base(l.Work), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("user namespace: open %s: %w", l.Work, err)
	}
	fds = append(fds, work)

	// The overlay remembers its creator's credentials: create it from a thread whose
	// filesystem IDs are the container's root. The thread is never unlocked, so Go discards
	// it when the goroutine ends rather than reusing its credentials.
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		errc <- overlayAs(m, lowers, upper, work, target)
	}()
	return <-errc
}

// overlayAs creates and attaches the overlay with the calling thread's filesystem IDs set to
// m's root; the caller has locked the thread and never unlocks it.
func overlayAs(m IDMap, lowers []int, upper, work int, target string) error {
	unix.Setfsgid(int(m.HostGID))
	unix.Setfsuid(int(m.HostUID))
	// Changing the fsuid away from 0 clears the file capabilities from the effective set;
	// raise them again (they are still permitted) for the overlay's own work directory.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("user namespace: capget: %w", err)
	}
	data[0].Effective, data[1].Effective = data[0].Permitted, data[1].Permitted
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("user namespace: capset: %w", err)
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("user namespace: fsopen overlay: %w", err)
	}
	defer unix.Close(fsfd)
	for _, fd := range lowers {
		if err := unix.FsconfigSetFd(fsfd, "lowerdir+", fd); err != nil {
			return fmt.Errorf("user namespace: the kernel refuses an overlay layer given by file descriptor: %v: %w", err, ErrUserns)
		}
	}
	if err := unix.FsconfigSetFd(fsfd, "upperdir", upper); err != nil {
		return fmt.Errorf("user namespace: overlay upperdir: %v: %w", err, ErrUserns)
	}
	if err := unix.FsconfigSetFd(fsfd, "workdir", work); err != nil {
		return fmt.Errorf("user namespace: overlay workdir: %v: %w", err, ErrUserns)
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("user namespace: the kernel refuses an overlay of ID-mapped layers: %v: %w", err, ErrUserns)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("user namespace: fsmount overlay: %w", err)
	}
	defer unix.Close(mfd)
	// Overlay falls back to a read-only mount when it cannot use its work directory.
	var st unix.Statfs_t
	if err := unix.Fstatfs(mfd, &st); err == nil && st.Flags&unix.ST_RDONLY != 0 {
		return fmt.Errorf("user namespace: the ID-mapped overlay came up read-only (see dmesg): %w", ErrUserns)
	}
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("user namespace: attach root filesystem at %s: %w", target, err)
	}
	return nil
}

// checkReachable reports the first directory above path that host IDs uid/gid cannot search.
func checkReachable(path string, uid, gid uint32) error {
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("user namespace: %s: %w", d, err)
		}
		ok := st.Mode&0o001 != 0 || (st.Uid == uid && st.Mode&0o100 != 0) || (st.Gid == gid && st.Mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("user namespace: the container's root user (host ID %d) cannot reach its root filesystem: %s has mode %04o; allow searching it (chmod o+x %s): %w",
				uid, d, st.Mode&0o7777, d, ErrInvalid)
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// applyUserns gives the spec a user namespace for c (UsernsMode "auto"), remounts the root
// filesystem ID-mapped under dir and ID-maps the bind mounts. It runs last in libctConfig,
// so that nothing after it fails with the new mount in place.
func (r *Runtime) applyUserns(c *ContainerConfig, s *specs.Spec, dir string) error {
	on, err := usernsEnabled(c.UsernsMode)
	if err != nil || !on {
		return err
	}
	pid, _ := parseNSMode(c.PIDMode, false)
	ipc, _ := parseNSMode(c.IPCMode, true)
	switch {
	case c.Privileged:
		return fmt.Errorf("userns mode %q cannot be combined with privileged: %w", c.UsernsMode, ErrInvalid)
	case c.NetNSPath == "host":
		return fmt.Errorf("userns mode %q cannot be combined with the host network: %w", c.UsernsMode, ErrInvalid)
	case pid.kind == NSHost || pid.kind == "container":
		return fmt.Errorf("userns mode %q cannot be combined with pid %q: %w", c.UsernsMode, c.PIDMode, ErrInvalid)
	case ipc.kind == NSHost || ipc.kind == "container":
		return fmt.Errorf("userns mode %q cannot be combined with ipc %q: %w", c.UsernsMode, c.IPCMode, ErrInvalid)
	}
	if c.IDMap == nil {
		all, err := r.configs()
		if err != nil {
			return err
		}
		m, err := allocIDMap(defaultIDPool("/etc/subuid", "/etc/subgid"), all)
		if err != nil {
			return err
		}
		c.IDMap = &m
	}
	m := *c.IDMap
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: m.HostUID, Size: m.Size}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: m.HostGID, Size: m.Size}}
	for i := range s.Mounts {
		sm := &s.Mounts[i]
		switch {
		case sm.Type == "bind" && sm.Destination != initPath && sm.Destination != seccompLoaderPath && sm.Destination != "/dev/shm":
			sm.Options = append(sm.Options, "idmap")
		case sm.Type == "sysfs" && c.NetNSPath != "":
			// sysfs can only be mounted by the owner of the network namespace, and a joined
			// one belongs to the host: bind the host's /sys read-only, as rootless runc does.
			*sm = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "nosuid", "noexec", "nodev", "ro", "rprivate"}}
		}
	}

	// Root filesystem: the container's own overlay of ID-mapped layers at dir/rootfs; Remove
	// unmounts it since it lies under the container's directory. The storage's overlay of the
	// same layers is unmounted: two overlays must not share a writable layer.
	layers, err := overlayLayers(c.Rootfs)
	if err != nil {
		return err
	}
	// Fill empty volumes now, from the image as stored (Create's fill would see shifted IDs).
	if err := fillVolumes(c.Rootfs, c.Mounts); err != nil {
		return err
	}
	target := filepath.Join(dir, "rootfs")
	// Only the container's root group may enter the container's directory.
	if err := os.Chown(dir, 0, int(m.HostGID)); err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		return fmt.Errorf("user namespace: %w", err)
	}
	if err := checkReachable(target, m.HostUID, m.HostGID); err != nil {
		return err
	}
	if err := unix.Unmount(c.Rootfs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("user namespace: unmount %s: %w", c.Rootfs, err)
	}
	if err := mountIDMappedRootfs(&layers, m, target); err != nil {
		_ = os.Remove(target)
		return err
	}
	c.IDMappedRootfs = &layers
	c.Rootfs = target
	s.Root.Path = target
	return nil
}
