package build

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// tree is a read-only view of a root filesystem made of unpacked layer directories (top
// first), with overlayfs whiteouts (0:0 character devices) and opaque directories, read
// without mounting anything. A build context is a tree of one directory. Paths are clean and
// relative to the root ("" is the root); symlinks are resolved inside the root.
type tree struct {
	dirs []string
}

// layerTree returns the tree of an image's layers (chain IDs, base first).
func layerTree(s Store, chains []string) tree {
	t := tree{}
	for i := len(chains) - 1; i >= 0; i-- {
		t.dirs = append(t.dirs, s.LayerPath(chains[i]))
	}
	return t
}

func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 || fi.Mode()&fs.ModeDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

func isOpaque(p string) bool {
	buf := make([]byte, 4)
	n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

// blocks reports whether layer dir d hides what lower layers have at rel: an ancestor (or rel
// itself) is a whiteout or not a directory, or an ancestor or rel is an opaque directory.
func blocks(d, rel string) bool {
	if rel == "" {
		return false
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := filepath.Join(d, filepath.FromSlash(strings.Join(parts[:i+1], "/")))
		fi, err := os.Lstat(p)
		if err != nil {
			return false
		}
		if isWhiteout(fi) || !fi.IsDir() {
			return i < len(parts)-1 || isWhiteout(fi)
		}
		if isOpaque(p) {
			return true
		}
	}
	return false
}

// lookup finds the visible entry at rel (not following a final symlink; rel's parents must be
// free of symlinks). It returns the host path and its info, or fs.ErrNotExist.
func (t tree) lookup(rel string) (string, fs.FileInfo, error) {
	for _, d := range t.dirs {
		p := filepath.Join(d, filepath.FromSlash(rel))
		fi, err := os.Lstat(p)
		if err == nil {
			if isWhiteout(fi) {
				break
			}
			return p, fi, nil
		}
		if blocks(d, rel) {
			break
		}
	}
	return "", nil, fmt.Errorf("%s: %w", "/"+rel, fs.ErrNotExist)
}

// resolve resolves symlinks in p (absolute or relative to the root) inside the tree. With
// followLast the last component is resolved too. Components that do not exist are kept as
// they are, so the result also names paths to create.
func (t tree) resolve(p string, followLast bool) (string, error) {
	rest := splitPath(p)
	cur := ""
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = parentOf(cur)
			continue
		}
		next := path.Join(cur, c)
		if len(rest) == 0 && !followLast {
			return next, nil
		}
		host, fi, err := t.lookup(next)
		if err != nil {
			cur = next // missing: keep it, and resolve the rest lexically below it
			continue
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many levels of symbolic links", "/"+next)
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = ""
		}
		rest = append(splitPath(target), rest...)
	}
	return cur, nil
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func parentOf(p string) string {
	d := path.Dir(p)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// dirEntry is one visible entry of a directory in a tree.
type dirEntry struct {
	name string
	host string
	fi   fs.FileInfo
}

// readDir lists the visible entries of directory rel (resolved), sorted by name.
func (t tree) readDir(rel string) ([]dirEntry, error) {
	seen := map[string]bool{}
	var out []dirEntry
	found := false
	for _, d := range t.dirs {
		p := filepath.Join(d, filepath.FromSlash(rel))
		fi, err := os.Lstat(p)
		if err == nil && fi.IsDir() {
			found = true
			f, err := os.Open(p)
			if err != nil {
				return nil, err
			}
			names, err := f.Readdirnames(-1)
			f.Close()
			if err != nil {
				return nil, err
			}
			for _, n := range names {
				if seen[n] {
					continue
				}
				seen[n] = true
				cfi, err := os.Lstat(filepath.Join(p, n))
				if err != nil {
					return nil, err
				}
				if isWhiteout(cfi) {
					continue
				}
				out = append(out, dirEntry{name: n, host: filepath.Join(p, n), fi: cfi})
			}
		} else if err == nil {
			break // a file or a whiteout hides the lower layers
		}
		if blocks(d, rel) {
			break
		}
	}
	if !found {
		return nil, fmt.Errorf("%s: %w", "/"+rel, fs.ErrNotExist)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// readFile reads a file (symlinks followed) from the tree; fs.ErrNotExist if missing.
func (t tree) readFile(p string) ([]byte, error) {
	rel, err := t.resolve(p, true)
	if err != nil {
		return nil, err
	}
	host, fi, err := t.lookup(rel)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", p)
	}
	return os.ReadFile(host)
}

// owner returns the uid and gid to record for a file read from a layer. Layers unpacked by a
// non-root user are owned by that user, who stands for root.
func owner(fi fs.FileInfo) (int, int) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	uid, gid := int(st.Uid), int(st.Gid)
	if euid := os.Geteuid(); euid != 0 {
		if uid == euid {
			uid = 0
		}
		if gid == os.Getegid() {
			gid = 0
		}
	}
	return uid, gid
}
