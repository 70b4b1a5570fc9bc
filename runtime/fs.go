package runtime

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Errors of container file access (cp); test with errors.Is. Missing paths wrap fs.ErrNotExist.
var (
	ErrReadOnlyPath = errors.New("path is on a read-only file system")
	ErrNotDir       = errors.New("not a directory")
	ErrIsDir        = errors.New("cannot overwrite a directory with a non-directory")
)

// FSMount is one mount of a container's file system view: the host directory (or file)
// Source appears at Target inside the container.
type FSMount struct {
	Target   string // absolute, in the container
	Source   string // host path
	ReadOnly bool
}

// ContainerFS is a container's file system as the host sees it: the rootfs directory plus the
// bind and volume mounts over it. Every path is a path inside the container and is resolved
// inside it: symlinks (absolute or with ..) are followed relative to the container's root and
// can never lead out of it. Each system call reaches its file through a directory opened with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS) from the mount that holds it, so a container
// that swaps a directory for a symlink while a copy runs makes the copy fail, not escape.
//
// NewContainerFS("/", nil) is the host's own file system with the usual path semantics.
type ContainerFS struct {
	root     string
	readOnly bool
	mounts   []FSMount // longest target first
	// noWrite, when set, is why nothing can be written into this view.
	noWrite string
}

// NewContainerFS returns the view of rootfs with mounts over it.
func NewContainerFS(rootfs string, readOnly bool, mounts []FSMount) *ContainerFS {
	ms := make([]FSMount, 0, len(mounts))
	for _, m := range mounts {
		m.Target = path.Clean("/" + m.Target)
		if m.Target == "/" || m.Source == "" {
			continue
		}
		ms = append(ms, m)
	}
	sort.SliceStable(ms, func(i, j int) bool { return len(ms[i].Target) > len(ms[j].Target) })
	return &ContainerFS{root: rootfs, readOnly: readOnly, mounts: ms}
}

// FS returns the file system view of a container. Its rootfs must be mounted (for a stopped
// container the caller mounts it, e.g. with storage's Mount). Bind mounts, volumes and the
// runtime-provided /etc/hosts, /etc/resolv.conf and /etc/hostname are part of the view; tmpfs
// mounts, which exist only inside a running container, are not.
func (r *Runtime) FS(ctx context.Context, id string) (*ContainerFS, error) {
	c, err := r.config(id)
	if err != nil {
		return nil, err
	}
	if c.Rootfs == "" {
		return nil, fmt.Errorf("container %s has no rootfs: %w", c.Name, ErrInvalid)
	}
	var ms []FSMount
	for _, f := range []struct{ name, target, content string }{
		{"hosts", "/etc/hosts", c.Hosts},
		{"resolv.conf", "/etc/resolv.conf", c.ResolvConf},
		{"hostname", "/etc/hostname", hostnameFile(&c)},
	} {
		if f.content != "" {
			ms = append(ms, FSMount{Target: f.target, Source: filepath.Join(r.dir(id), f.name)})
		}
	}
	for _, m := range c.Mounts {
		if m.Type == "tmpfs" {
			continue
		}
		ro := m.ReadOnly
		for _, o := range m.Options {
			if o == "ro" || o == "readonly" {
				ro = true
			}
		}
		ms = append(ms, FSMount{Target: m.Target, Source: m.Source, ReadOnly: ro})
	}
	f := NewContainerFS(c.Rootfs, c.ReadOnly, ms)
	if on, _ := usernsEnabled(c.UsernsMode); on {
		// Its rootfs and volumes are ID-mapped mounts in which host root has no ID: creating a
		// file there fails with EOVERFLOW. Say so instead.
		f.noWrite = "copying into a container with userns_mode " + c.UsernsMode + " is not supported yet (copying out is)"
	}
	return f, nil
}

// locate maps a clean, symlink-free container path to the mount that holds it: the host base
// and the path relative to it ("." for the base itself).
func (f *ContainerFS) locate(p string) (base, rel string, ro bool) {
	for _, m := range f.mounts {
		if p == m.Target {
			return m.Source, ".", m.ReadOnly
		}
		if strings.HasPrefix(p, m.Target+"/") {
			return m.Source, strings.TrimPrefix(p, m.Target+"/"), m.ReadOnly
		}
	}
	if p == "/" {
		return f.root, ".", f.readOnly
	}
	return f.root, strings.TrimPrefix(p, "/"), f.readOnly
}

const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// openParent opens the directory holding the clean, symlink-free container path p and returns
// it with p's last element; for a mount's root (and /) that is the host directory above it,
// which berth chose and trusts.
func (f *ContainerFS) openParent(p string) (int, string, error) {
	base, rel, _ := f.locate(p)
	if rel == "." {
		fd, err := unix.Open(filepath.Dir(base), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, "", &fs.PathError{Op: "open", Path: p, Err: err}
		}
		name := filepath.Base(base)
		if base == "/" {
			name = "."
		}
		return fd, name, nil
	}
	bfd, err := unix.Open(base, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(bfd)
	dir := path.Dir(rel)
	fd, err := unix.Openat2(bfd, dir, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
	if err != nil {
		return -1, "", &fs.PathError{Op: "open", Path: path.Dir(p), Err: err}
	}
	return fd, path.Base(rel), nil
}

// Lstat returns the attributes of the container path p (clean, symlink-free up to its last
// element) without following a final symlink.
func (f *ContainerFS) lstat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	dfd, name, err := f.openParent(p)
	if err != nil {
		return st, err
	}
	defer unix.Close(dfd)
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return st, &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	return st, nil
}

func (f *ContainerFS) readlink(p string) (string, error) {
	dfd, name, err := f.openParent(p)
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	buf := make([]byte, 4096)
	n, err := unix.Readlinkat(dfd, name, buf)
	if err != nil {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: err}
	}
	return string(buf[:n]), nil
}

// Resolve returns the container path p with every symlink resolved inside the container, the
// last element's too when followLast. The result is clean and absolute; components that do not
// exist are kept as written (with .. never going above /).
func (f *ContainerFS) Resolve(p string, followLast bool) (string, error) {
	cur := "/"
	rest := p
	links := 0
	for {
		rest = strings.TrimLeft(rest, "/")
		if rest == "" {
			return cur, nil
		}
		comp, tail, _ := strings.Cut(rest, "/")
		rest = tail
		switch comp {
		case ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, comp)
		if strings.TrimLeft(rest, "/") == "" && !followLast {
			return next, nil
		}
		st, err := f.lstat(next)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
				cur = next // missing: the rest is taken as written
				continue
			}
			return "", err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", &fs.PathError{Op: "resolve", Path: p, Err: unix.ELOOP}
		}
		target, err := f.readlink(next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		rest = target + "/" + rest
	}
}

// Stat reports whether the container path p (resolved, following a final symlink when
// followLast) exists and is a directory.
func (f *ContainerFS) Stat(p string, followLast bool) (resolved string, isDir bool, err error) {
	r, err := f.Resolve(p, followLast)
	if err != nil {
		return "", false, err
	}
	st, err := f.lstat(r)
	if err != nil {
		return r, false, err
	}
	return r, st.Mode&unix.S_IFMT == unix.S_IFDIR, nil
}

// EntryFunc receives one file of a walk: its tar header (Name relative to the copy's top) and,
// for regular files, its content.
type EntryFunc func(hdr *tar.Header, content io.Reader) error

// Walk calls fn for the resolved container path p and, when it is a directory, everything
// below it (mounts included), parents before children, never following symlinks. Names start
// with name; name "." omits p itself and names its children directly.
func (f *ContainerFS) Walk(ctx context.Context, p, name string, fn EntryFunc) error {
	links := map[[2]uint64]string{}
	return f.walk(ctx, p, name, links, fn)
}

func (f *ContainerFS) walk(ctx context.Context, p, name string, links map[[2]uint64]string, fn EntryFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dfd, base, err := f.openParent(p)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "lstat", Path: p, Err: err}
	}
	hdr := &tar.Header{
		Name: name, Mode: int64(st.Mode & 0o7777), Uid: int(st.Uid), Gid: int(st.Gid),
		ModTime: time.Unix(int64(st.Mtim.Sec), int64(st.Mtim.Nsec)), Format: tar.FormatPAX,
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if name != "." {
			hdr.Name = name + "/"
			if err := fn(hdr, nil); err != nil {
				return err
			}
		}
		fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: p, Err: err}
		}
		d := os.NewFile(uintptr(fd), p)
		names, err := d.Readdirnames(-1)
		d.Close()
		if err != nil {
			return &fs.PathError{Op: "readdir", Path: p, Err: err}
		}
		sort.Strings(names)
		for _, n := range names {
			child := n
			if name != "." {
				child = name + "/" + n
			}
			if err := f.walk(ctx, path.Join(p, n), child, links, fn); err != nil {
				return err
			}
		}
		return nil
	case unix.S_IFLNK:
		t, err := f.readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, t
		return fn(hdr, nil)
	case unix.S_IFREG:
		key := [2]uint64{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if first, ok := links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				return fn(hdr, nil)
			}
			links[key] = name
		}
		fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return &fs.PathError{Op: "open", Path: p, Err: err}
		}
		file := os.NewFile(uintptr(fd), p)
		defer file.Close()
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		return fn(hdr, io.LimitReader(file, st.Size))
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		return fn(hdr, nil)
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
		return fn(hdr, nil)
	}
	return nil // sockets are not copied
}

// ExtractOptions control how Extract sets owners.
type ExtractOptions struct {
	// Owner, when set, owns every extracted file ({uid, gid}).
	Owner *[2]int
	// KeepOwner uses the archive's owners (ignored with Owner). Without either, files belong
	// to the calling process.
	KeepOwner bool
}

// Extractor writes entries below a directory of a ContainerFS. Every entry's parent is
// resolved inside the container, so a symlink in the archive or in the container can never
// make a write land outside it.
type Extractor struct {
	f       *ContainerFS
	dir     string
	opt     ExtractOptions
	dirTime map[string][2]time.Time
	order   []string
}

// NewExtractor returns an Extractor into the container directory dir (resolved; it must exist
// unless the first entry creates it).
func (f *ContainerFS) NewExtractor(dir string, opt ExtractOptions) (*Extractor, error) {
	if f.noWrite != "" {
		return nil, fmt.Errorf("%s: %w", f.noWrite, ErrUnsupported)
	}
	d, err := f.Resolve(dir, true)
	if err != nil {
		return nil, err
	}
	return &Extractor{f: f, dir: d, opt: opt, dirTime: map[string][2]time.Time{}}, nil
}

// cleanName turns an archive member name into a relative path that cannot climb above the
// extraction directory.
func cleanName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// target resolves where the member rel goes: its parent resolved inside the container.
func (e *Extractor) target(rel string) (string, error) {
	full := path.Join(e.dir, rel)
	if full == e.dir {
		return full, nil
	}
	parent, err := e.f.Resolve(path.Dir(full), true)
	if err != nil {
		return "", err
	}
	if err := e.ensureDir(parent, 0); err != nil {
		return "", err
	}
	return path.Join(parent, path.Base(full)), nil
}

// ensureDir creates the resolved directory p and its missing parents (mode 0755, owned as
// configured), as tar extraction does for members whose directories the archive lacks.
func (e *Extractor) ensureDir(p string, depth int) error {
	if _, err := e.f.lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if depth > 255 {
		return &fs.PathError{Op: "mkdir", Path: p, Err: unix.ENAMETOOLONG}
	}
	parent, err := e.f.Resolve(path.Dir(p), true)
	if err != nil {
		return err
	}
	if err := e.ensureDir(parent, depth+1); err != nil {
		return err
	}
	p = path.Join(parent, path.Base(p))
	if _, _, ro := e.f.locate(p); ro {
		return fmt.Errorf("write %s: %w", p, ErrReadOnlyPath)
	}
	dfd, name, err := e.f.openParent(p)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := unix.Mkdirat(dfd, name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return &fs.PathError{Op: "mkdir", Path: p, Err: err}
	}
	if o := e.opt.Owner; o != nil {
		if err := unix.Fchownat(dfd, name, o[0], o[1], unix.AT_SYMLINK_NOFOLLOW); err != nil && !ignoreChown(err) {
			return &fs.PathError{Op: "chown", Path: p, Err: err}
		}
	}
	return nil
}

// Add writes one entry.
func (e *Extractor) Add(hdr *tar.Header, content io.Reader) error {
	rel := cleanName(hdr.Name)
	p, err := e.target(rel)
	if err != nil {
		return err
	}
	if _, _, ro := e.f.locate(p); ro {
		return fmt.Errorf("write %s: %w", p, ErrReadOnlyPath)
	}
	dfd, name, err := e.f.openParent(p)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	uid, gid := -1, -1
	switch {
	case e.opt.Owner != nil:
		uid, gid = e.opt.Owner[0], e.opt.Owner[1]
	case e.opt.KeepOwner:
		uid, gid = hdr.Uid, hdr.Gid
	}
	mode := uint32(hdr.Mode & 0o7777)
	var exists, existsDir bool
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		exists, existsDir = true, st.Mode&unix.S_IFMT == unix.S_IFDIR
	}
	pathErr := func(op string, err error) error { return &fs.PathError{Op: op, Path: p, Err: err} }
	if hdr.Typeflag != tar.TypeDir && exists {
		if existsDir {
			return fmt.Errorf("%s: %w", p, ErrIsDir)
		}
		if err := unix.Unlinkat(dfd, name, 0); err != nil {
			return pathErr("remove", err)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if exists && !existsDir {
			if err := unix.Unlinkat(dfd, name, 0); err != nil {
				return pathErr("remove", err)
			}
			exists = false
		}
		if !exists {
			if err := unix.Mkdirat(dfd, name, 0o700); err != nil {
				return pathErr("mkdir", err)
			}
		}
		fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return pathErr("open", err)
		}
		defer unix.Close(fd)
		if err := fchown(fd, uid, gid); err != nil {
			return pathErr("chown", err)
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			return pathErr("chmod", err)
		}
		if _, ok := e.dirTime[p]; !ok {
			e.order = append(e.order, p)
		}
		e.dirTime[p] = [2]time.Time{hdr.AccessTime, hdr.ModTime}
		return nil
	case tar.TypeReg, tar.TypeRegA:
		fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return pathErr("create", err)
		}
		file := os.NewFile(uintptr(fd), p)
		defer file.Close()
		if content != nil {
			if _, err := io.Copy(file, content); err != nil {
				return pathErr("write", err)
			}
		}
		if err := fchown(fd, uid, gid); err != nil {
			return pathErr("chown", err)
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			return pathErr("chmod", err)
		}
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, dfd, name); err != nil {
			return pathErr("symlink", err)
		}
		if uid >= 0 || gid >= 0 {
			if err := unix.Fchownat(dfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !ignoreChown(err) {
				return pathErr("chown", err)
			}
		}
	case tar.TypeLink:
		old, err := e.target(cleanName(hdr.Linkname))
		if err != nil {
			return err
		}
		ofd, oname, err := e.f.openParent(old)
		if err != nil {
			return err
		}
		defer unix.Close(ofd)
		if err := unix.Linkat(ofd, oname, dfd, name, 0); err != nil {
			return pathErr("link", err)
		}
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := uint32(unix.S_IFIFO)
		if hdr.Typeflag == tar.TypeChar {
			typ = unix.S_IFCHR
		} else if hdr.Typeflag == tar.TypeBlock {
			typ = unix.S_IFBLK
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(dfd, name, typ|mode&0o777, dev); err != nil {
			return pathErr("mknod", err)
		}
		if uid >= 0 || gid >= 0 {
			if err := unix.Fchownat(dfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil && !ignoreChown(err) {
				return pathErr("chown", err)
			}
		}
	default:
		return nil // extended headers and the like carry no file
	}
	ts := []unix.Timespec{unix.NsecToTimespec(hdr.AccessTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	if hdr.AccessTime.IsZero() {
		ts[0] = ts[1]
	}
	_ = unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	return nil
}

// Close sets the directories' times, which adding their content changed.
func (e *Extractor) Close() error {
	for i := len(e.order) - 1; i >= 0; i-- {
		p := e.order[i]
		t := e.dirTime[p]
		if t[1].IsZero() {
			continue
		}
		dfd, name, err := e.f.openParent(p)
		if err != nil {
			continue
		}
		at := t[0]
		if at.IsZero() {
			at = t[1]
		}
		ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(t[1].UnixNano())}
		_ = unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW)
		unix.Close(dfd)
	}
	return nil
}

func ignoreChown(err error) bool {
	return os.Geteuid() != 0 && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL))
}

func fchown(fd, uid, gid int) error {
	if uid < 0 && gid < 0 {
		return nil
	}
	if err := unix.Fchown(fd, uid, gid); err != nil && !ignoreChown(err) {
		return err
	}
	return nil
}

// ExtractTar writes the archive r below the container directory dir (which must exist and be a
// directory).
func (f *ContainerFS) ExtractTar(ctx context.Context, r io.Reader, dir string, opt ExtractOptions) error {
	d, isDir, err := f.Stat(dir, true)
	if err != nil {
		return err
	}
	if !isDir {
		return fmt.Errorf("%s: %w", dir, ErrNotDir)
	}
	e, err := f.NewExtractor(d, opt)
	if err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if err := e.Add(hdr, tr); err != nil {
			return err
		}
	}
	return e.Close()
}

// WriteTar writes p (a container path, resolved inside the container; a final symlink is
// followed only with followLast) as a tar stream whose top entry is named name ("." for p's
// content only).
func (f *ContainerFS) WriteTar(ctx context.Context, w io.Writer, p, name string, followLast bool) error {
	r, err := f.Resolve(p, followLast)
	if err != nil {
		return err
	}
	if _, err := f.lstat(r); err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	err = f.Walk(ctx, r, name, func(hdr *tar.Header, content io.Reader) error {
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if content != nil {
			if _, err := io.Copy(tw, content); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// CopyOptions are `cp`'s flags.
type CopyOptions struct {
	FollowLink bool // -L: follow a symlink given as the source
	Extract    ExtractOptions
}

// Copy copies src in from to dst in to with `docker cp`'s rules: a source ending in "/." copies
// a directory's content; an existing destination directory receives the source under its
// own name; a missing destination is created with the source's content (its parent must
// exist); a destination ending in "/" must be a directory.
func Copy(ctx context.Context, from *ContainerFS, src string, to *ContainerFS, dst string, opt CopyOptions) error {
	contentOnly := strings.HasSuffix(src, "/.") || src == "."
	follow := opt.FollowLink || strings.HasSuffix(src, "/") || contentOnly
	srcR, srcDir, err := from.Stat(src, follow)
	if err != nil {
		return err
	}
	if strings.HasSuffix(src, "/") && !srcDir {
		return fmt.Errorf("source %s: %w", src, ErrNotDir)
	}
	if contentOnly && !srcDir {
		contentOnly = false
	}
	srcName := path.Base(path.Clean("/" + src))
	if srcName == "/" {
		contentOnly = true
	}
	dstR, dstDir, err := to.Stat(dst, true)
	var dir, name string
	switch {
	case err == nil && dstDir:
		dir, name = dstR, srcName
		if contentOnly {
			name = "."
		}
	case err == nil:
		if srcDir {
			return fmt.Errorf("cannot copy directory %s onto file %s: %w", src, dst, ErrNotDir)
		}
		dir, name = path.Dir(dstR), path.Base(dstR)
	case errors.Is(err, fs.ErrNotExist):
		if strings.HasSuffix(dst, "/") && !srcDir {
			return fmt.Errorf("destination directory %s does not exist: %w", dst, fs.ErrNotExist)
		}
		parent, pdir, perr := to.Stat(path.Dir(dstR), true)
		if perr != nil {
			return fmt.Errorf("destination %s: %w", dst, perr)
		}
		if !pdir {
			return fmt.Errorf("destination parent of %s: %w", dst, ErrNotDir)
		}
		dir, name = parent, path.Base(dstR)
	default:
		return err
	}
	e, err := to.NewExtractor(dir, opt.Extract)
	if err != nil {
		return err
	}
	if err := from.Walk(ctx, srcR, name, e.Add); err != nil {
		return err
	}
	return e.Close()
}
