package storage

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// mountRecord is mounts/<containerID>/mount.json: which image (and so which layers) a
// container's writable layer sits on. GC never removes layers named here.
type mountRecord struct {
	ContainerID string   `json:"containerID"`
	ImageID     string   `json:"imageID"`
	ChainIDs    []string `json:"chainIDs"`
}

func validContainerID(id string) error {
	if id == "" || len(id) > 128 || id == "." || id == ".." {
		return fmt.Errorf("container ID %q: %w", id, ErrInvalidRef)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("container ID %q: %w", id, ErrInvalidRef)
		}
	}
	return nil
}

func (s *Store) mountDir(containerID string) string {
	return filepath.Join(s.root, "mounts", containerID)
}

// UpperDir returns the overlay upper directory (the writable layer) of a container.
func (s *Store) UpperDir(containerID string) string {
	return filepath.Join(s.mountDir(containerID), "upper")
}

// RootFS returns where Mount mounts a container's root filesystem.
func (s *Store) RootFS(containerID string) string {
	return filepath.Join(s.mountDir(containerID), "merged")
}

func (s *Store) readMountRecord(containerID string) (mountRecord, error) {
	var rec mountRecord
	if err := validContainerID(containerID); err != nil {
		return rec, err
	}
	b, err := os.ReadFile(filepath.Join(s.mountDir(containerID), "mount.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return rec, fmt.Errorf("container layer %s: %w", containerID, ErrNotFound)
	}
	if err != nil {
		return rec, fmt.Errorf("container layer %s: %w", containerID, err)
	}
	return rec, json.Unmarshal(b, &rec)
}

// Mount mounts the image's layers with the container's writable layer on top (overlayfs) and
// returns the root filesystem path. The writable layer is created on first use and kept across
// Unmount/Mount until RemoveContainerLayer. Mounting a mounted container returns the same path.
// A container's layer belongs to one image: mounting it on another image is ErrConflict.
func (s *Store) Mount(ctx context.Context, containerID, imageID string) (string, error) {
	if err := validContainerID(containerID); err != nil {
		return "", err
	}
	unlock, err := s.ingestLock(false)
	if err != nil {
		return "", err
	}
	defer unlock()
	img, err := s.Resolve(ctx, imageID)
	if err != nil {
		return "", fmt.Errorf("mount %s: %w", containerID, err)
	}
	dir := s.mountDir(containerID)
	merged := filepath.Join(dir, "merged")
	if rec, err := s.readMountRecord(containerID); err == nil && rec.ImageID != img.ID {
		return "", fmt.Errorf("mount %s: its writable layer belongs to image %s, not %s; remove the container layer first: %w", containerID, rec.ImageID, img.ID, ErrConflict)
	}
	// A pulled image's layers are unpacked on first use.
	if err := s.unpackImage(ctx, img); err != nil {
		return "", fmt.Errorf("mount %s: %w", containerID, err)
	}
	for _, d := range []string{"upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return "", fmt.Errorf("mount %s: %w", containerID, err)
		}
	}
	os.Chmod(dir, 0o700)
	cunlock, err := s.lockFile(filepath.Join("mounts", containerID, "lock"), unix.LOCK_EX)
	if err != nil {
		return "", fmt.Errorf("mount %s: %w", containerID, err)
	}
	defer cunlock()
	rb, _ := json.Marshal(mountRecord{ContainerID: containerID, ImageID: img.ID, ChainIDs: img.ChainIDs})
	if err := writeFileAtomic(filepath.Join(dir, "mount.json"), rb, 0o600); err != nil {
		return "", err
	}
	if ok, err := isMountPoint(merged); err != nil {
		return "", err
	} else if ok {
		return merged, nil
	}
	var lowers []string
	for i := len(img.ChainIDs) - 1; i >= 0; i-- {
		lowers = append(lowers, img.ChainIDs[i])
	}
	if err := s.mountOverlay(lowers, containerID, merged); err != nil {
		return "", fmt.Errorf("mount %s: %w", containerID, err)
	}
	return merged, nil
}

// mountOverlay mounts overlay on target with the given lower layers (top first). It uses the
// new mount API with one "lowerdir+" per layer (no option-length limit, Linux 6.8+) and falls
// back to mount(2) with short relative lowerdir paths from a thread that chdir'd to the root.
func (s *Store) mountOverlay(lowerChains []string, containerID, target string) error {
	lowerPaths := make([]string, 0, len(lowerChains))
	for _, c := range lowerChains {
		lowerPaths = append(lowerPaths, s.LayerPath(c))
	}
	if len(lowerPaths) == 0 {
		empty := filepath.Join(s.root, "empty")
		if err := os.MkdirAll(empty, 0o755); err != nil {
			return err
		}
		lowerPaths = []string{empty}
	}
	upper, work := filepath.Join(s.mountDir(containerID), "upper"), filepath.Join(s.mountDir(containerID), "work")
	err := mountOverlayFsconfig(lowerPaths, upper, work, target)
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrOverlay) {
		return err
	}
	// Legacy mount(2): the option string must fit in a page.
	var rel []string
	for _, c := range lowerChains {
		m, err := s.readLayerMeta(c)
		if err != nil {
			return err
		}
		rel = append(rel, "l/"+m.Short)
	}
	if len(rel) == 0 {
		rel = []string{"empty"}
	}
	opts := "lowerdir=" + strings.Join(rel, ":") + ",upperdir=mounts/" + containerID + "/upper,workdir=mounts/" + containerID + "/work"
	if len(opts) >= os.Getpagesize() {
		return fmt.Errorf("overlay: %d layers need a %d-byte option string (limit %d) and this kernel lacks lowerdir+ (%v): %w", len(rel), len(opts), os.Getpagesize(), err, ErrOverlay)
	}
	if merr := mountInDir(s.root, opts, target); merr != nil {
		if errors.Is(merr, unix.ENODEV) {
			return fmt.Errorf("overlay: the kernel has no overlay filesystem (modprobe overlay): %w", ErrOverlay)
		}
		return fmt.Errorf("overlay mount (%v; fsconfig: %v): %w", merr, err, ErrOverlay)
	}
	return nil
}

func mountOverlayFsconfig(lowers []string, upper, work, target string) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("overlay: the kernel has no overlay filesystem (modprobe overlay): %w", ErrOverlay)
		}
		return fmt.Errorf("fsopen overlay: %w", err)
	}
	defer unix.Close(fd)
	fail := func(what string, err error) error {
		return fmt.Errorf("overlay %s: %w%s", what, err, fsLog(fd))
	}
	for _, l := range lowers {
		if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
			return fail("lowerdir+ "+l, err)
		}
	}
	if err := unix.FsconfigSetString(fd, "upperdir", upper); err != nil {
		return fail("upperdir", err)
	}
	if err := unix.FsconfigSetString(fd, "workdir", work); err != nil {
		return fail("workdir", err)
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("overlay refused the mount (%d lower layers): %w%s: %w", len(lowers), err, fsLog(fd), ErrOverlay)
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fail("fsmount", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move overlay mount to %s: %w: %w", target, err, ErrOverlay)
	}
	return nil
}

// fsLog drains the kernel's messages about an fs context.
func fsLog(fd int) string {
	var msgs []string
	buf := make([]byte, 512)
	for i := 0; i < 16; i++ {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (" + strings.Join(msgs, "; ") + ")"
}

// mountInDir runs mount(2) from a dedicated OS thread whose working directory is dir, so
// relative option paths resolve there without changing the process's directory.
func mountInDir(dir, opts, target string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: it exits with the goroutine, taking its private fs state.
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare fs: %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("overlay", target, "overlay", 0, opts)
	}()
	return <-errc
}

// isMountPoint reports whether p is a mount point in this mount namespace.
func isMountPoint(p string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.SplitN(sc.Text(), " ", 6)
		if len(fields) >= 5 && unescapeMountinfo(fields[4]) == p {
			return true, nil
		}
	}
	return false, sc.Err()
}

func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Unmount unmounts a container's root filesystem, keeping its writable layer. Not mounted is
// not an error.
func (s *Store) Unmount(ctx context.Context, containerID string) error {
	if err := validContainerID(containerID); err != nil {
		return err
	}
	merged := s.RootFS(containerID)
	if _, err := os.Stat(s.mountDir(containerID)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	cunlock, err := s.lockFile(filepath.Join("mounts", containerID, "lock"), unix.LOCK_EX)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // removed meanwhile
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", containerID, err)
	}
	defer cunlock()
	for i := 0; i < 8; i++ {
		ok, err := isMountPoint(merged)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		if err := unix.Unmount(merged, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(merged, unix.MNT_DETACH)
			}
			if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmount %s: %w", merged, err)
			}
		}
	}
	return nil
}

// RemoveContainerLayer unmounts and deletes a container's writable layer. Not found is not an
// error.
func (s *Store) RemoveContainerLayer(ctx context.Context, containerID string) error {
	if err := s.Unmount(ctx, containerID); err != nil {
		return err
	}
	dir := s.mountDir(containerID)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Rename first so a crash mid-delete leaves nothing that looks like a live layer.
	tmp := s.scratch("rm-")
	if err := os.Rename(dir, tmp); err != nil {
		return fmt.Errorf("remove container layer %s: %w", containerID, err)
	}
	removeAllMaybeImmutable(tmp)
	return nil
}

// ContainerLayers lists the container IDs that have a writable layer in the store.
func (s *Store) ContainerLayers(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.root, "mounts"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}
