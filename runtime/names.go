package runtime

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Container names are indexed under <RunRoot>/names: one symlink per name whose target is the
// ID of the container that owns it. Claiming, checking and resolving a name then reads one link
// and at most one config instead of every container's config, so creating N containers costs
// O(N), not O(N²), and the names lock is held only for the claim itself.
//
// The index lives on the run root (a tmpfs): it never needs an fsync, and after a reboot it is
// gone and rebuilt from the configs on first use. The configs stay the truth: a link counts only
// while its container exists and still carries the name (or is still being created by a live
// process, see createLock), so a link left behind by a crash never blocks a name.

func (r *Runtime) namesDir() string { return filepath.Join(r.runRoot, "names") }

// validName reports whether name can be a container name: Docker's rule,
// [a-zA-Z0-9][a-zA-Z0-9_.-]*, which also keeps it a safe file name for the index.
func validName(name string) bool {
	if name == "" || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case i > 0 && (c == '_' || c == '.' || c == '-'):
		default:
			return false
		}
	}
	return true
}

// checkName rejects a name validName refuses, saying what a name may be.
func checkName(name string) error {
	if !validName(name) {
		return fmt.Errorf("%q is not a valid container name (letters, digits, '_', '.' and '-', starting with a letter or digit): %w", name, ErrInvalid)
	}
	return nil
}

// ensureNameIndex builds the index from the configs when it does not exist yet (first use,
// after a reboot, or after an older berth). The caller holds the names lock.
func (r *Runtime) ensureNameIndex() error {
	dir := r.namesDir()
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	tmp := dir + ".new-" + strconv.Itoa(os.Getpid())
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("index container names: %w", err)
	}
	all, err := r.configs()
	if err != nil {
		os.RemoveAll(tmp)
		return err
	}
	for _, c := range all {
		if !validName(c.Name) {
			continue // made by a berth that did not check names; found by the slow path
		}
		if err := os.Symlink(c.ID, filepath.Join(tmp, c.Name)); err != nil && !errors.Is(err, fs.ErrExist) {
			os.RemoveAll(tmp)
			return fmt.Errorf("index container names: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("index container names: %w", err)
	}
	return nil
}

// nameOwner returns the ID of the container that owns name according to the index, or "" when
// the name is free. ok is false when the index cannot answer (it does not exist, or the name is
// not one it can hold) and the caller must scan the configs.
func (r *Runtime) nameOwner(name string) (id string, ok bool) {
	if !validName(name) {
		return "", false
	}
	if _, err := os.Stat(r.namesDir()); err != nil {
		return "", false
	}
	owner, err := os.Readlink(filepath.Join(r.namesDir(), name))
	if err != nil {
		return "", true
	}
	if !validID(owner) || !r.holdsName(owner, name) {
		return "", true
	}
	return owner, true
}

// holdsName reports whether container id exists and carries name: its config says so, or it
// has no config yet because a live process is still creating it.
func (r *Runtime) holdsName(id, name string) bool {
	c, err := r.config(id)
	if err == nil {
		return c.Name == name
	}
	if !errors.Is(err, ErrNotFound) {
		return true // unreadable right now (being rewritten): do not steal the name
	}
	return r.beingCreated(id)
}

// claimName points name at id, failing with ErrNameConflict when another container holds it.
// The caller holds the names lock.
func (r *Runtime) claimName(name, id string) error {
	if err := r.ensureNameIndex(); err != nil {
		return err
	}
	if owner, _ := r.nameOwner(name); owner != "" && owner != id {
		return fmt.Errorf("name %q is used by %s: %w", name, owner[:12], ErrNameConflict)
	}
	link := filepath.Join(r.namesDir(), name)
	// "~" cannot start a name, so the temporary link never collides with one.
	tmp := filepath.Join(r.namesDir(), "~"+id)
	_ = os.Remove(tmp)
	if err := os.Symlink(id, tmp); err != nil {
		return fmt.Errorf("claim name %q: %w", name, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("claim name %q: %w", name, err)
	}
	return nil
}

// releaseName drops name from the index when it still points at id. The caller holds the
// names lock.
func (r *Runtime) releaseName(name, id string) {
	if !validName(name) {
		return
	}
	link := filepath.Join(r.namesDir(), name)
	if owner, err := os.Readlink(link); err == nil && owner == id {
		_ = os.Remove(link)
	}
}

// createLock marks container id as being created by this process until the returned function
// is called: an exclusive flock on its directory, which the kernel drops if the process dies,
// so that a directory a killed `create` left behind without a config holds no name.
func (r *Runtime) createLock(id string) (func(), error) {
	fd, err := unix.Open(r.dir(id), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", id, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create %s: %w", id, err)
	}
	return func() { unix.Close(fd) }, nil
}

// beingCreated reports whether a live process holds container id's create lock.
func (r *Runtime) beingCreated(id string) bool {
	fd, err := unix.Open(r.dir(id), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	return false
}

// trimName is the name a reference means when it is a name: Docker accepts "/name".
func trimName(ref string) string { return strings.TrimPrefix(ref, "/") }

// reserve claims name for a new container id and makes its directory, locked against the
// stale-name check until the returned function is called (when the create is over, whether it
// succeeded or not). The names lock is held only for the claim.
func (r *Runtime) reserve(name, id string) (func(), error) {
	unlock, err := r.lockNames()
	if err != nil {
		return nil, err
	}
	defer unlock()
	dir := r.dir(id)
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("create %s: %w", id, ErrExists)
	}
	if err := r.claimName(name, id); err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	if err := os.MkdirAll(dir, 0o710); err != nil {
		r.releaseName(name, id)
		return nil, fmt.Errorf("create %s: %w", name, err)
	}
	done, err := r.createLock(id)
	if err != nil {
		os.RemoveAll(dir)
		r.releaseName(name, id)
		return nil, err
	}
	return done, nil
}

// unreserve undoes reserve after a failed create.
func (r *Runtime) unreserve(name, id string) {
	if unlock, err := r.lockNames(); err == nil {
		r.releaseName(name, id)
		defer unlock()
	}
	os.RemoveAll(r.dir(id))
}
