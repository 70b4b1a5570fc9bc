package storage

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// writebackMin is the smallest file whose writeback extractOptions.Writeback starts at once;
// smaller ones (most files, few bytes) are left to the final sync, which batches them.
const writebackMin = 64 << 10

// DefaultMaxEntrySize bounds the size a single tar entry may declare (64 GiB).
const DefaultMaxEntrySize int64 = 64 << 30

// extractOptions control extractLayer.
type extractOptions struct {
	MaxEntrySize int64 // 0: DefaultMaxEntrySize
	// Writeback starts writing each large regular file out as soon as it is complete (no
	// wait), so that the disk works while the layer is unpacked and the sync before the layer
	// is committed finds little left to do.
	Writeback bool
	// Split, when set, records what the tree does not keep (headers, padding) as tar-split
	// entries while unpacking, so that the tar can be rebuilt from the tree (see splitRecorder).
	Split *splitRecorder
}

// extractLayer unpacks an uncompressed layer tar into dir (an existing, private, empty
// directory), converting OCI whiteouts into overlayfs ones. Image content is untrusted: every
// path is resolved inside dir (symlinks included, with openat2 RESOLVE_IN_ROOT), ".." escapes
// and hardlinks out of the layer are rejected with ErrUnsafeLayer, device nodes are skipped,
// and entries declaring more than MaxEntrySize bytes are rejected. It returns the content size.
// The caller syncs the result (syncLayer) before committing it.
func extractLayer(ctx context.Context, r io.Reader, dir string, opt extractOptions) (int64, error) {
	if opt.MaxEntrySize <= 0 {
		opt.MaxEntrySize = DefaultMaxEntrySize
	}
	rootfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open layer dir: %w", err)
	}
	defer unix.Close(rootfd)
	x := &extractor{root: rootfd, isRoot: os.Geteuid() == 0, buf: make([]byte, 256<<10), umask: processUmask(), writeback: opt.Writeback}
	var rst unix.Stat_t
	// New files belong to 0:0 already when root creates them, unless a setgid directory
	// passes its group on (directories made here are never setgid until the very end).
	x.createdAsRoot = x.isRoot && os.Getegid() == 0 && unix.Fstat(rootfd, &rst) == nil && rst.Mode&unix.S_ISGID == 0
	rec := opt.Split
	if rec != nil {
		rec.r = r
		r = rec
	}
	tr := tar.NewReader(r)
	var size int64
	type dirMeta struct {
		name string
		hdr  *tar.Header
	}
	var dirs []dirMeta
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("read layer tar: %w", err)
		}
		name, err := cleanEntryName(hdr.Name)
		if err != nil {
			return 0, err
		}
		if name == "" {
			continue // the root itself
		}
		if hdr.Size < 0 || hdr.Size > opt.MaxEntrySize {
			return 0, fmt.Errorf("layer entry %q declares %d bytes (limit %d): %w", hdr.Name, hdr.Size, opt.MaxEntrySize, ErrUnsafeLayer)
		}
		// A regular file's content stays in the tree; tar-split records where it goes.
		file := rec != nil && hdr.Size > 0 && (hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA) && !strings.HasPrefix(path.Base(name), ".wh.")
		if file {
			rec.beginFile(hdr)
		}
		if err := x.entry(tr, hdr, name); err != nil {
			return 0, fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
		if file {
			rec.endFile(hdr)
			if !x.isRoot && hdr.Mode&0o400 == 0 {
				rec.fail("a file is not readable without root")
			}
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirMeta{name, hdr})
		}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA {
			size += hdr.Size
		}
	}
	// Directory modes and times last: adding children changes mtime, and a read-only directory
	// must stay writable until its contents are in.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		pfd, base, err := x.parent(d.name, false)
		if err != nil {
			continue // replaced by a later entry
		}
		var st unix.Stat_t
		if unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			x.meta(pfd, base, -1, d.hdr, false)
			if rec != nil && !x.isRoot && d.hdr.Mode&0o500 != 0o500 {
				rec.fail("a directory is not searchable without root")
			}
		}
		unix.Close(pfd)
	}
	if rec != nil && x.replaced {
		// An earlier file (or a directory of them) is gone: its content cannot be read back.
		rec.fail("an entry replaced an earlier file or directory")
	}
	return size, nil
}

// cleanEntryName turns a tar name into a clean relative path; "" is the root. Absolute names
// are taken relative to the layer root; names that climb out with ".." are rejected.
func cleanEntryName(n string) (string, error) {
	if strings.IndexByte(n, 0) >= 0 {
		return "", fmt.Errorf("layer entry %q: NUL in name: %w", n, ErrUnsafeLayer)
	}
	c := path.Clean(strings.TrimLeft(n, "/"))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("layer entry %q escapes the layer: %w", n, ErrUnsafeLayer)
	}
	if c == "." {
		return "", nil
	}
	return c, nil
}

type extractor struct {
	root          int
	isRoot        bool
	createdAsRoot bool // files created here are owned by 0:0 (see extractLayer)
	umask         uint32
	buf           []byte
	writeback     bool
	replaced      bool // an entry removed a regular file or a directory unpacked before it
}

// processUmask reads the umask from /proc/self/status (reading it with umask(2) would change
// it for every thread for a moment); 0o777 if unknown, which makes every file get an fchmod.
func processUmask() uint32 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o777
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err != nil {
				return 0o777
			}
			return uint32(m)
		}
	}
	return 0o777
}

// openIn opens p (relative) inside the root, resolving every symlink as if root were "/".
func (x *extractor) openIn(p string) (int, error) {
	if p == "" || p == "." {
		return unix.Dup(x.root)
	}
	return unix.Openat2(x.root, p, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
}

// mkdirAll returns an fd for directory p inside the root, creating missing components.
func (x *extractor) mkdirAll(p string, depth int) (int, error) {
	fd, err := x.openIn(p)
	if err == nil {
		return fd, nil
	}
	if !errors.Is(err, unix.ENOENT) || depth > 4096 {
		if errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("parent %q is not a directory: %w", p, ErrUnsafeLayer)
		}
		return -1, fmt.Errorf("open %q: %w", p, err)
	}
	pfd, err := x.mkdirAll(path.Dir(p), depth+1)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, path.Base(p), 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("mkdir %q: %w", p, err)
	}
	fd, err = x.openIn(p)
	if err != nil {
		return -1, fmt.Errorf("open %q (a dangling symlink?): %v: %w", p, err, ErrUnsafeLayer)
	}
	return fd, nil
}

// parent returns an fd for the parent directory of name and the final component.
func (x *extractor) parent(name string, create bool) (int, string, error) {
	dir, base := path.Dir(name), path.Base(name)
	if create {
		fd, err := x.mkdirAll(dir, 0)
		return fd, base, err
	}
	fd, err := x.openIn(dir)
	return fd, base, err
}

func (x *extractor) entry(r io.Reader, hdr *tar.Header, name string) error {
	base := path.Base(name)
	if strings.HasPrefix(base, ".wh.") {
		return x.whiteout(name)
	}
	pfd, base, err := x.parent(name, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)

	if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeRegA {
		return x.regular(r, hdr, pfd, base)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		if !(hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR) {
			if err := x.remove(pfd, base); err != nil {
				return err
			}
		}
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir: %w", err)
		}
		return nil // metadata applied at the end
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
		return x.meta(pfd, base, -1, hdr, true)
	case tar.TypeLink:
		target, err := cleanEntryName(hdr.Linkname)
		if err != nil || target == "" {
			return fmt.Errorf("hardlink to %q points outside the layer: %w", hdr.Linkname, ErrUnsafeLayer)
		}
		tfd, tbase, err := x.parent(target, false)
		if err != nil {
			return fmt.Errorf("hardlink target %q: %v: %w", hdr.Linkname, err, ErrUnsafeLayer)
		}
		defer unix.Close(tfd)
		if err := unix.Linkat(tfd, tbase, pfd, base, 0); err != nil {
			return fmt.Errorf("hardlink to %q: %v: %w", hdr.Linkname, err, ErrUnsafeLayer)
		}
		return nil
	case tar.TypeFifo:
		if err := unix.Mknodat(pfd, base, unix.S_IFIFO|0o600, 0); err != nil {
			return fmt.Errorf("mkfifo: %w", err)
		}
		return x.meta(pfd, base, -1, hdr, false)
	case tar.TypeChar, tar.TypeBlock:
		return nil // device nodes are never created: the runtime provides /dev
	default:
		return nil // pax globals, GNU long names (already folded in), sockets, unknown: ignore
	}
}

// regular creates a regular file (replacing whatever is at base) with the entry's content and
// metadata. It is the hot path of every unpack, so it spends few system calls: no stat first
// (O_EXCL finds what is in the way), the final mode at creation when the umask lets it
// through, no chown to 0:0 of a file root just created.
func (x *extractor) regular(r io.Reader, hdr *tar.Header, pfd int, base string) error {
	mode := uint32(hdr.Mode) & 0o7777
	createMode, chmod := uint32(0o600), true
	if mode&^0o777 == 0 && mode&x.umask == 0 {
		createMode, chmod = mode, false
	}
	const flags = unix.O_CREAT | unix.O_EXCL | unix.O_WRONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(pfd, base, flags, createMode)
	if errors.Is(err, unix.EEXIST) {
		if err := x.remove(pfd, base); err != nil {
			return err
		}
		fd, err = unix.Openat(pfd, base, flags, createMode)
	}
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	defer unix.Close(fd)
	for left := hdr.Size; left > 0; {
		b := x.buf
		if int64(len(b)) > left {
			b = b[:left]
		}
		n, rerr := io.ReadFull(r, b)
		for w := b[:n]; len(w) > 0; {
			k, werr := unix.Write(fd, w)
			if werr == unix.EINTR {
				continue
			}
			if werr != nil {
				return fmt.Errorf("write: %w", werr)
			}
			w = w[k:]
		}
		left -= int64(n)
		if rerr != nil {
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("write: %w", rerr)
		}
	}
	if x.writeback && hdr.Size >= writebackMin {
		unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	owned := x.createdAsRoot && hdr.Uid == 0 && hdr.Gid == 0
	return x.metaOpts(pfd, base, fd, hdr, false, !owned, chmod)
}

// meta applies ownership, mode, xattrs and times. fd >= 0 is an open fd for the entry.
func (x *extractor) meta(pfd int, base string, fd int, hdr *tar.Header, symlink bool) error {
	return x.metaOpts(pfd, base, fd, hdr, symlink, true, true)
}

// metaOpts is meta that may skip the chown (the owner is right already) or the chmod (the
// file was created with its mode).
func (x *extractor) metaOpts(pfd int, base string, fd int, hdr *tar.Header, symlink, chown, chmod bool) error {
	if x.isRoot && chown {
		var err error
		if fd >= 0 {
			err = unix.Fchown(fd, hdr.Uid, hdr.Gid)
		} else {
			err = unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if !symlink {
		mode := uint32(hdr.Mode) & 0o7777
		var err error
		switch {
		case !chmod:
		case fd >= 0:
			err = unix.Fchmod(fd, mode)
		default:
			err = unix.Fchmodat(pfd, base, mode, 0)
		}
		if err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
		for k, v := range hdr.PAXRecords {
			attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
			if !ok || !(strings.HasPrefix(attr, "user.") || attr == "security.capability") {
				continue
			}
			if fd >= 0 {
				unix.Fsetxattr(fd, attr, []byte(v), 0)
			}
		}
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.AccessTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if hdr.AccessTime.IsZero() {
		ts[0] = ts[1]
	}
	unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	return nil
}

// whiteout converts an OCI whiteout entry into overlayfs form: ".wh.x" becomes a 0:0
// character device "x"; ".wh..wh..opq" marks the directory opaque.
func (x *extractor) whiteout(name string) error {
	dir, base := path.Dir(name), path.Base(name)
	pfd, err := x.mkdirAll(dir, 0)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if base == ".wh..wh..opq" {
		if err := unix.Fsetxattr(pfd, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			return fmt.Errorf("mark %q opaque: %w", dir, err)
		}
		return nil
	}
	target := strings.TrimPrefix(base, ".wh.")
	if target == "" || target == "." || target == ".." || strings.HasPrefix(target, ".wh.") {
		return fmt.Errorf("bad whiteout %q: %w", name, ErrUnsafeLayer)
	}
	var st unix.Stat_t
	if unix.Fstatat(pfd, target, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		if err := x.remove(pfd, target); err != nil {
			return err
		}
	}
	if err := unix.Mknodat(pfd, target, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("whiteout %q: %w", name, err)
	}
	return nil
}

// remove removes name in directory pfd (see removeAt), noting when that takes away a regular
// file or a directory (and so maybe content an earlier entry unpacked).
func (x *extractor) remove(pfd int, name string) error {
	var st unix.Stat_t
	if unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		if t := st.Mode & unix.S_IFMT; t == unix.S_IFREG || t == unix.S_IFDIR {
			x.replaced = true
		}
	}
	return removeAt(pfd, name)
}

// removeAt removes name in directory dirfd, recursively and without following symlinks.
func removeAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return fmt.Errorf("remove %q: %w", name, err)
	}
	for _, n := range names {
		if err := removeAt(fd, n); err != nil {
			f.Close()
			return err
		}
	}
	f.Close()
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}

// syncLayer flushes a freshly unpacked layer to disk (one syncfs for the whole tree: much
// cheaper than an fsync per file).
func syncLayer(dir string) error { return syncFS(dir) }

// syncFS flushes the whole filesystem that holds dir (syncfs).
func syncFS(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
