package netns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"github.com/vishvananda/netlink"
	vns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const nsfsMagic = 0x6e736673

// SandboxPath is where a container's network namespace is bind-mounted.
func (m *Manager) SandboxPath(containerID string) string {
	return filepath.Join(m.cfg.RunRoot, "netns", containerID)
}

// sandboxMounted reports whether a network namespace is mounted at the container's path.
func (m *Manager) sandboxMounted(containerID string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(m.SandboxPath(containerID), &st); err != nil {
		return false
	}
	return st.Type == nsfsMagic
}

// CreateSandbox creates the container's network namespace (loopback up, nothing else) and
// bind-mounts it at SandboxPath; the runtime joins that path. Idempotent.
func (m *Manager) CreateSandbox(ctx context.Context, containerID string) (string, error) {
	if err := validID(containerID); err != nil {
		return "", err
	}
	path := m.SandboxPath(containerID)
	if m.sandboxMounted(containerID) {
		return path, nil
	}
	if err := m.ensureSharedNetnsDir(); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o444)
	if err != nil {
		return "", fmt.Errorf("create sandbox file: %w", err)
	}
	f.Close()

	// A fresh, locked thread unshares, mounts its namespace and is thrown away afterwards
	// (never unlocked), so no other goroutine ever runs in the new namespace.
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("unshare network namespace: %w", err)
			}
			src := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
			if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind-mount network namespace at %s: %w", path, err)
			}
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return fmt.Errorf("sandbox loopback: %w", err)
			}
			if err := netlink.LinkSetUp(lo); err != nil {
				return fmt.Errorf("sandbox loopback up: %w", err)
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		m.unmountSandbox(containerID)
		return "", err
	}
	return path, nil
}

// ensureSharedNetnsDir makes <run root>/netns a shared mount point (as `ip netns` does with
// /run/netns), so that unmounting a sandbox here also drops copies that mount namespaces
// created later (containers) received.
func (m *Manager) ensureSharedNetnsDir() error {
	dir := filepath.Join(m.cfg.RunRoot, "netns")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if isMountPoint(dir) {
		return nil
	}
	l, lerr := lockFile(filepath.Join(m.cfg.RunRoot, "netns.lock"))
	if lerr != nil {
		return lerr
	}
	defer l.Unlock()
	if isMountPoint(dir) {
		return nil
	}
	if err := unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mount %s on itself: %w", dir, err)
	}
	// A peer group of its own: private first, then shared.
	if err := unix.Mount("", dir, "none", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", dir, err)
	}
	if err := unix.Mount("", dir, "none", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("make %s shared: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether dir is the root of a mount (its mount ID differs from its
// parent's, or the device does).
func isMountPoint(dir string) bool {
	id := func(p string) (uint64, bool) {
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx); err != nil {
			return 0, false
		}
		return stx.Mnt_id, stx.Mask&unix.STATX_MNT_ID != 0
	}
	a, ok1 := id(dir)
	b, ok2 := id(filepath.Dir(dir))
	return ok1 && ok2 && a != b
}

func (m *Manager) unmountSandbox(containerID string) error {
	path := m.SandboxPath(containerID)
	for i := 0; i < 4 && m.sandboxMounted(containerID); i++ {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount sandbox %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove sandbox %s: %w", path, err)
	}
	return nil
}

// RemoveSandbox unpublishes the container's ports, detaches it from every network and removes
// its namespace. Call it once the container's processes are gone: the namespace, and the
// container's end of each veth pair with it, lives as long as a process is in it. A missing
// sandbox is not an error.
func (m *Manager) RemoveSandbox(ctx context.Context, containerID string) error {
	if err := validID(containerID); err != nil {
		return err
	}
	if err := m.Unpublish(ctx, containerID); err != nil {
		return err
	}
	nets, err := m.containerNetworks(containerID)
	if err != nil {
		return err
	}
	// The veth pairs are not deleted one by one: once the namespace is unmounted and the
	// container's processes are gone, the kernel destroys the namespace and every pair with an
	// end in it, in one batch in the background. Deleting each host end instead waits for an
	// RCU grace period under the RTNL lock per pair (~20 ms each here, serialised across
	// parallel removals), which made removing containers the slowest part of `down`. A crash
	// between the unmount and the records below leaves records of a sandbox that is gone,
	// which the next Attach or network removal sweeps (sweepStale).
	if err := m.unmountSandbox(containerID); err != nil {
		return err
	}
	for _, n := range nets {
		if err := m.dropEndpoint(n, containerID); err != nil {
			return err
		}
	}
	return nil
}

// containerNetworks lists the networks with an endpoint record for the container.
func (m *Manager) containerNetworks(containerID string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(m.ipamDir(), "*.json"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range matches {
		name := filepath.Base(p)
		name = name[:len(name)-len(".json")]
		st, err := m.readIPAM(name)
		if err != nil {
			continue
		}
		if _, ok := st.Endpoints[containerID]; ok {
			out = append(out, name)
		}
	}
	return out, nil
}

// ListSandboxes returns the IDs of containers with a mounted sandbox.
func (m *Manager) ListSandboxes(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(m.cfg.RunRoot, "netns"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if m.sandboxMounted(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// inSandbox returns a netlink handle operating inside the container's namespace.
func (m *Manager) sandboxHandle(containerID string) (*netlink.Handle, vns.NsHandle, error) {
	ns, err := vns.GetFromPath(m.SandboxPath(containerID))
	if err != nil {
		return nil, 0, fmt.Errorf("open sandbox of %s: %w", shortID(containerID), err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		return nil, 0, fmt.Errorf("netlink in sandbox of %s: %w", shortID(containerID), err)
	}
	return h, ns, nil
}
