package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/opencontainers/runc/libcontainer/configs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Namespace modes of ContainerConfig.PIDMode and IPCMode.
const (
	NSPrivate   = "private"
	NSHost      = "host"
	NSShareable = "shareable" // IPC only
	NSNone      = "none"      // IPC only
	nsContainer = "container:"
)

// nsMode is a parsed PIDMode or IPCMode: kind is "" (private), "host", "shareable", "none" or
// "container" (then ref names the container).
type nsMode struct {
	kind, ref string
}

// parseNSMode parses a PIDMode (ipc false) or IPCMode (ipc true).
func parseNSMode(v string, ipc bool) (nsMode, error) {
	key, valid := "pid", `"host" or "container:NAME"`
	if ipc {
		key, valid = "ipc", `"private", "shareable", "none", "host" or "container:NAME"`
	}
	switch {
	case v == "" || v == NSPrivate:
		return nsMode{}, nil
	case v == NSHost:
		return nsMode{kind: NSHost}, nil
	case ipc && (v == NSShareable || v == NSNone):
		return nsMode{kind: v}, nil
	case strings.HasPrefix(v, nsContainer) && len(v) > len(nsContainer):
		return nsMode{kind: "container", ref: v[len(nsContainer):]}, nil
	}
	return nsMode{}, fmt.Errorf("%s mode %q: use %s: %w", key, v, valid, ErrInvalid)
}

// resolveNamespaceModes checks PIDMode and IPCMode, resolves a container reference to its full
// ID (stored back into c) and refuses combinations that cannot work. It runs at Create.
func (r *Runtime) resolveNamespaceModes(c *ContainerConfig) error {
	for _, f := range []struct {
		ipc bool
		v   *string
	}{{false, &c.PIDMode}, {true, &c.IPCMode}} {
		m, err := parseNSMode(*f.v, f.ipc)
		if err != nil {
			return err
		}
		if m.kind != "container" {
			continue
		}
		id, err := r.Resolve(context.Background(), m.ref)
		if err != nil {
			return fmt.Errorf("%s container:%s: %w", nsKey(f.ipc), m.ref, err)
		}
		if id == c.ID {
			return fmt.Errorf("%s container:%s: a container cannot join itself: %w", nsKey(f.ipc), m.ref, ErrInvalid)
		}
		*f.v = nsContainer + id
	}
	return nil
}

func nsKey(ipc bool) string {
	if ipc {
		return "ipc"
	}
	return "pid"
}

// nsTargetPid returns the host PID of the init process of running container id, checked
// against the container's cgroup so that a recycled PID is never joined.
func (r *Runtime) nsTargetPid(id string) (int, error) {
	st, err := r.Inspect(context.Background(), id)
	if err != nil {
		return 0, err
	}
	name := id[:min(12, len(id))]
	if c, err := r.config(id); err == nil {
		name = c.Name
	}
	if !st.Running() || st.Pid <= 0 {
		return 0, fmt.Errorf("container %s is %s; start it first: %w", name, st.Status, ErrNotRunning)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", st.Pid))
	if err != nil || !bytes.Contains(cg, []byte("/berth/"+id)) {
		return 0, fmt.Errorf("container %s: its process %d is gone: %w", name, st.Pid, ErrNotRunning)
	}
	return st.Pid, nil
}

// shmDir is where a shareable container's /dev/shm lives on the host, so that containers
// joining its IPC namespace can mount it too. It is outside the container's directory (which
// Remove deletes without looking for mounts); sweepShm releases the ones left behind.
func (r *Runtime) shmDir(id string) string { return filepath.Join(r.root, ".shm", id) }

// applyNamespaces adjusts the spec's namespaces and /dev/shm for PIDMode and IPCMode (already
// resolved by resolveNamespaceModes). warn receives what is degraded rather than refused.
func (r *Runtime) applyNamespaces(c *ContainerConfig, s *specs.Spec, warn func(string)) error {
	r.sweepShm()
	pid, err := parseNSMode(c.PIDMode, false)
	if err != nil {
		return err
	}
	ipc, err := parseNSMode(c.IPCMode, true)
	if err != nil {
		return err
	}
	setNS := func(typ specs.LinuxNamespaceType, m nsMode, file string) error {
		i := slices.IndexFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
		switch m.kind {
		case NSHost:
			if i >= 0 {
				s.Linux.Namespaces = slices.Delete(s.Linux.Namespaces, i, i+1)
			}
		case "container":
			p, err := r.nsTargetPid(m.ref)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			s.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/%s", p, file)
		}
		return nil
	}
	if err := setNS(specs.PIDNamespace, pid, "pid"); err != nil {
		return err
	}
	if err := setNS(specs.IPCNamespace, ipc, "ipc"); err != nil {
		return err
	}
	shm := slices.IndexFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/shm" })
	if shm < 0 {
		return nil
	}
	bind := func(src string) {
		s.Mounts[shm] = specs.Mount{Destination: "/dev/shm", Type: "bind", Source: src,
			Options: []string{"rbind", "nosuid", "noexec", "nodev", "rprivate"}}
	}
	switch ipc.kind {
	case NSNone:
		s.Mounts = slices.Delete(s.Mounts, shm, shm+1)
	case NSHost:
		bind("/dev/shm")
	case NSShareable:
		dir := r.shmDir(c.ID)
		if err := mountShm(dir, shmSize(c)); err != nil {
			return err
		}
		bind(dir)
	case "container":
		dir := r.shmDir(ipc.ref)
		if ok, _ := isMountPoint(dir); ok {
			bind(dir)
		} else if warn != nil {
			warn(fmt.Sprintf("ipc: container %s is not shareable: the IPC namespace is shared but /dev/shm is not (give it ipc: shareable)", ipc.ref[:min(12, len(ipc.ref))]))
		}
	}
	return nil
}

func shmSize(c *ContainerConfig) int64 {
	if c.ShmSize > 0 {
		return c.ShmSize
	}
	return defaultShmSize
}

// mountShm mounts a tmpfs for /dev/shm at dir unless one is there already.
func mountShm(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("shareable /dev/shm: %w", err)
	}
	if ok, err := isMountPoint(dir); err != nil {
		return fmt.Errorf("shareable /dev/shm: %w", err)
	} else if ok {
		return nil
	}
	if err := unix.Mount("shm", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"mode=1777,size="+strconv.FormatInt(size, 10)); err != nil {
		return fmt.Errorf("shareable /dev/shm: mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// sweepShm releases the shareable /dev/shm of containers that no longer exist.
func (r *Runtime) sweepShm() {
	ents, err := os.ReadDir(filepath.Join(r.root, ".shm"))
	if err != nil {
		return
	}
	for _, e := range ents {
		if _, err := os.Stat(r.dir(e.Name())); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		r.releaseShm(e.Name())
	}
}

// releaseShm unmounts and removes a container's shareable /dev/shm; missing is fine.
func (r *Runtime) releaseShm(id string) {
	dir := r.shmDir(id)
	_ = unix.Unmount(dir, unix.MNT_DETACH)
	_ = os.Remove(dir)
}

// isMountPoint reports whether dir is the root of a mount (its device differs from its
// parent's, or it is the root of the same device, as a bind mount of itself is).
func isMountPoint(dir string) (bool, error) {
	var st, pst unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, err
	}
	if err := unix.Lstat(filepath.Dir(dir), &pst); err != nil {
		return false, err
	}
	if st.Dev != pst.Dev {
		return true, nil
	}
	// Same device: a bind mount of a directory of the same filesystem. mountinfo knows.
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMountinfo(f[4]) == dir {
			return true, nil
		}
	}
	return false, nil
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space, ...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// prepareStart brings a created container's libcontainer configuration up to date right
// before a start: the namespaces of other containers it joins are found again through their
// current init process (they may have restarted since Create), and the mounts berth made for
// it outside the container (its ID-mapped rootfs, its shareable /dev/shm) are made again
// after a reboot. startContainer is meant to call it on libct.json before each start.
func (r *Runtime) prepareStart(c *ContainerConfig, lc *configs.Config) (*configs.Config, error) {
	out := *lc
	out.Namespaces = slices.Clone(lc.Namespaces)
	for _, f := range []struct {
		mode string
		ipc  bool
		typ  configs.NamespaceType
		file string
	}{{c.PIDMode, false, configs.NEWPID, "pid"}, {c.IPCMode, true, configs.NEWIPC, "ipc"}} {
		m, err := parseNSMode(f.mode, f.ipc)
		if err != nil {
			return nil, err
		}
		if m.kind != "container" {
			continue
		}
		p, err := r.nsTargetPid(m.ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.file, err)
		}
		for i := range out.Namespaces {
			if out.Namespaces[i].Type == f.typ {
				out.Namespaces[i].Path = fmt.Sprintf("/proc/%d/ns/%s", p, f.file)
			}
		}
	}
	if c.IPCMode == NSShareable {
		if err := mountShm(r.shmDir(c.ID), shmSize(c)); err != nil {
			return nil, err
		}
	}
	if c.IDMappedRootfs != nil && c.IDMap != nil {
		if err := mountIDMappedRootfs(c.IDMappedRootfs, *c.IDMap, c.Rootfs); err != nil {
			return nil, err
		}
	}
	return &out, nil
}
