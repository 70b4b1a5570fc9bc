package build

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// copyOp is one COPY or ADD with its arguments expanded.
type copyOp struct {
	add   bool
	srcs  []string
	dest  string // absolute (WORKDIR applied), trailing "/" kept
	from  string // "" = the build context
	chown string
	chmod string
	// inline holds heredoc sources ("<<NAME" words): NAME -> content.
	inline map[string]string
}

// layerEntry is one entry of a layer being made.
type layerEntry struct {
	hdr     *tar.Header
	host    string // regular file content, or the archive to expand (archive set)
	archive bool   // ADD: expand the archive at host under hdr.Name (a directory)
	data    []byte // inline content (heredoc), instead of host
}

// layerPlan is the content of a new layer, keyed by path.
type layerPlan struct {
	entries map[string]*layerEntry
}

func newLayerPlan() *layerPlan { return &layerPlan{entries: map[string]*layerEntry{}} }

func (p *layerPlan) sorted() []*layerEntry {
	names := make([]string, 0, len(p.entries))
	for n := range p.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*layerEntry, len(names))
	for i, n := range names {
		out[i] = p.entries[n]
	}
	return out
}

// ensureParents adds directory entries for every ancestor of rel: the existing directory's
// metadata when the tree has it, else a new 0755 directory owned by uid:gid.
func (p *layerPlan) ensureParents(dst tree, rel string, uid, gid int) error {
	parts := splitPath(rel)
	for i := 1; i < len(parts); i++ {
		dir := strings.Join(parts[:i], "/")
		if err := p.ensureDir(dst, dir, uid, gid, 0o755, time.Unix(0, 0)); err != nil {
			return err
		}
	}
	return nil
}

func (p *layerPlan) ensureDir(dst tree, dir string, uid, gid int, mode fs.FileMode, mtime time.Time) error {
	if _, ok := p.entries[dir]; ok {
		return nil
	}
	if _, fi, err := dst.lookup(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("/%s exists and is not a directory", dir)
		}
		ou, og := owner(fi)
		p.entries[dir] = &layerEntry{hdr: dirHeader(dir, ou, og, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), fi.ModTime())}
		return nil
	}
	p.entries[dir] = &layerEntry{hdr: dirHeader(dir, uid, gid, mode, mtime)}
	return nil
}

func dirHeader(name string, uid, gid int, mode fs.FileMode, mtime time.Time) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: tarMode(mode), Uid: uid, Gid: gid, ModTime: mtime, Format: tar.FormatPAX}
}

func tarMode(m fs.FileMode) int64 {
	v := int64(m & fs.ModePerm)
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return v
}

func hasMeta(s string) bool { return strings.ContainsAny(s, "*?[") }

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "git@") || strings.HasPrefix(s, "git://")
}

// sourceTree is where a COPY reads from: the context (with its ignore rules) or a root
// filesystem (another stage or an image).
type sourceTree struct {
	t   tree
	ctx *buildContext // set for the build context
}

func (s sourceTree) excluded(rel string) bool { return s.ctx != nil && s.ctx.excluded(rel) }

// glob expands a pattern component by component (a * never crosses a /), skipping excluded
// paths. Results are resolved-free relative paths, sorted.
func (s sourceTree) glob(pattern string) ([]string, error) {
	parts := splitPath(pattern)
	cur := []string{""}
	for i, part := range parts {
		var next []string
		for _, base := range cur {
			if !hasMeta(part) {
				rel := path.Join(base, part)
				if _, _, err := s.t.lookup(rel); err == nil || i < len(parts)-1 {
					next = append(next, rel)
				}
				continue
			}
			rb, err := s.t.resolve(base, true)
			if err != nil {
				continue
			}
			ents, err := s.t.readDir(rb)
			if err != nil {
				continue
			}
			for _, e := range ents {
				ok, err := path.Match(part, e.name)
				if err != nil {
					return nil, fmt.Errorf("pattern %q: %w", pattern, err)
				}
				if ok && !s.excluded(path.Join(base, e.name)) {
					next = append(next, path.Join(base, e.name))
				}
			}
		}
		cur = next
	}
	var out []string
	for _, c := range cur {
		if _, _, err := s.t.lookup(c); err == nil {
			out = append(out, c)
		}
	}
	sort.Strings(out)
	return out, nil
}

// planCopy works out the layer a COPY/ADD makes on top of dst.
func planCopy(op copyOp, src sourceTree, dst tree) (*layerPlan, error) {
	uid, gid := 0, 0
	if op.chown != "" {
		var err error
		if uid, gid, err = parseChown(op.chown, dst); err != nil {
			return nil, err
		}
	}
	var chmod fs.FileMode
	hasChmod := op.chmod != ""
	if hasChmod {
		v, err := strconv.ParseUint(op.chmod, 8, 32)
		if err != nil || v > 0o7777 {
			return nil, fmt.Errorf("--chmod=%s: want an octal mode such as 0755: %w", op.chmod, ErrSyntax)
		}
		chmod = fs.FileMode(v&0o777) | modeBits(v)
	}
	what := "COPY"
	if op.add {
		what = "ADD"
	}
	// Sources.
	var matches []string
	wild := false
	var inline []string
	for _, s := range op.srcs {
		if name, ok := heredocName(s); ok {
			if _, ok := op.inline[name]; ok {
				inline = append(inline, name)
				continue
			}
		}
		if isURL(s) {
			return nil, fmt.Errorf("%s from a URL (%s) is not supported; download it into the build context or in a RUN step: %w", what, s, ErrUnsupported)
		}
		if src.ctx != nil {
			c := path.Clean(s)
			if c == ".." || strings.HasPrefix(c, "../") {
				return nil, fmt.Errorf("source %q is outside the build context: %w", s, ErrSource)
			}
		}
		rel := strings.TrimPrefix(path.Clean("/"+s), "/")
		if hasMeta(rel) {
			wild = true
			m, err := src.glob(rel)
			if err != nil {
				return nil, err
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("no source files match %q%s: %w", s, src.where(), ErrSource)
			}
			matches = append(matches, m...)
			continue
		}
		if src.excluded(rel) {
			return nil, fmt.Errorf("source %q is excluded by %s: %w", s, src.ctx.ignName, ErrSource)
		}
		r, err := src.t.resolve(rel, true)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", s, err)
		}
		if _, _, err := src.t.lookup(r); err != nil {
			return nil, fmt.Errorf("source %q not found%s: %w", s, src.where(), ErrSource)
		}
		matches = append(matches, rel)
	}
	// Destination.
	destDir := strings.HasSuffix(op.dest, "/") || strings.HasSuffix(op.dest, "/.")
	rdest, err := dst.resolve(op.dest, true)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", op.dest, err)
	}
	if _, fi, err := dst.lookup(rdest); err == nil && fi.IsDir() {
		destDir = true
	}
	if rdest == "" {
		destDir = true
	}
	if (len(matches)+len(inline) > 1 || wild && len(op.srcs) > 1) && !destDir {
		return nil, fmt.Errorf("with several sources the destination must be a directory ending in /, e.g. %s/: %w", op.dest, ErrSyntax)
	}
	plan := newLayerPlan()
	for _, name := range inline {
		target := rdest
		if destDir {
			target = path.Join(rdest, name)
		}
		if target == "" {
			return nil, fmt.Errorf("destination %s: cannot replace the root directory: %w", op.dest, ErrSyntax)
		}
		if err := plan.ensureParents(dst, target, uid, gid); err != nil {
			return nil, err
		}
		mode := fs.FileMode(0o644)
		if hasChmod {
			mode = chmod
		}
		data := []byte(op.inline[name])
		plan.entries[target] = &layerEntry{data: data, hdr: &tar.Header{
			Typeflag: tar.TypeReg, Name: target, Mode: tarMode(mode), Uid: uid, Gid: gid,
			Size: int64(len(data)), ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		}}
	}
	for _, m := range matches {
		r, err := src.t.resolve(m, true)
		if err != nil {
			return nil, err
		}
		host, fi, err := src.t.lookup(r)
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", m, ErrSource)
		}
		switch {
		case fi.IsDir():
			if rdest != "" {
				if err := plan.ensureParents(dst, rdest, uid, gid); err != nil {
					return nil, err
				}
				mode := fi.Mode() & fs.ModePerm
				if hasChmod {
					mode = chmod
				}
				if err := plan.ensureDir(dst, rdest, uid, gid, mode, fi.ModTime()); err != nil {
					return nil, err
				}
			}
			if err := plan.addTree(src, r, m, rdest, uid, gid, chmod, hasChmod, op.chown != ""); err != nil {
				return nil, err
			}
		case op.add && fi.Mode().IsRegular() && isArchive(host):
			if rdest != "" {
				if err := plan.ensureParents(dst, rdest, uid, gid); err != nil {
					return nil, err
				}
				if err := plan.ensureDir(dst, rdest, uid, gid, 0o755, time.Unix(0, 0)); err != nil {
					return nil, err
				}
			}
			key := path.Join(rdest, "\x00archive:"+m)
			plan.entries[key] = &layerEntry{hdr: &tar.Header{Name: rdest, Uid: uid, Gid: gid}, host: host, archive: true}
		default:
			target := rdest
			if destDir {
				target = path.Join(rdest, path.Base(m))
			}
			if target == "" {
				return nil, fmt.Errorf("destination %s: cannot replace the root directory: %w", op.dest, ErrSyntax)
			}
			if err := plan.ensureParents(dst, target, uid, gid); err != nil {
				return nil, err
			}
			u, g := uid, gid
			if op.chown == "" && src.ctx == nil {
				u, g = owner(fi)
			}
			if err := plan.addFile(host, fi, target, u, g, chmod, hasChmod, true); err != nil {
				return nil, err
			}
		}
	}
	return plan, nil
}

func modeBits(v uint64) fs.FileMode {
	var m fs.FileMode
	if v&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if v&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if v&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func (s sourceTree) where() string {
	if s.ctx != nil {
		if s.ctx.ignore != nil {
			return " in the build context (or excluded by " + s.ctx.ignName + ")"
		}
		return " in the build context"
	}
	return ""
}

// addTree adds the contents of source directory r (named m in the source) under target.
func (p *layerPlan) addTree(src sourceTree, r, m, target string, uid, gid int, chmod fs.FileMode, hasChmod, chown bool) error {
	ents, err := src.t.readDir(r)
	if err != nil {
		return err
	}
	for _, e := range ents {
		srel := path.Join(m, e.name)
		if src.excluded(srel) && (src.ctx.ignore == nil || !src.ctx.ignore.Exclusions() || !e.fi.IsDir()) {
			continue
		}
		name := path.Join(target, e.name)
		if e.fi.IsDir() {
			u, g := uid, gid
			if !chown {
				u, g = 0, 0
				if src.ctx == nil {
					u, g = owner(e.fi)
				}
			}
			mode := e.fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
			if hasChmod {
				mode = chmod
			}
			before := len(p.entries)
			p.entries[name] = &layerEntry{hdr: dirHeader(name, u, g, mode, e.fi.ModTime())}
			if err := p.addTree(src, path.Join(r, e.name), srel, name, uid, gid, chmod, hasChmod, chown); err != nil {
				return err
			}
			if src.excluded(srel) && len(p.entries) == before+1 {
				delete(p.entries, name) // excluded, and nothing under it re-included
			}
			continue
		}
		u, g := uid, gid
		if !chown && src.ctx == nil {
			u, g = owner(e.fi)
		}
		if err := p.addFile(e.host, e.fi, name, u, g, chmod, hasChmod, true); err != nil {
			return err
		}
	}
	return nil
}

// addFile adds a regular file, symlink or fifo. Without chown, files from the context are
// owned by root.
func (p *layerPlan) addFile(host string, fi fs.FileInfo, name string, uid, gid int, chmod fs.FileMode, hasChmod, keepOwner bool) error {
	if !keepOwner {
		uid, gid = 0, 0
	}
	mode := fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
	if hasChmod {
		mode = chmod
	}
	hdr := &tar.Header{Name: name, Mode: tarMode(mode), Uid: uid, Gid: gid, ModTime: fi.ModTime(), Format: tar.FormatPAX}
	switch {
	case fi.Mode().IsRegular():
		hdr.Typeflag, hdr.Size = tar.TypeReg, fi.Size()
	case fi.Mode()&fs.ModeSymlink != 0:
		l, err := os.Readlink(host)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, l, 0o777
	case fi.Mode()&fs.ModeNamedPipe != 0:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets and devices are not copied
	}
	p.entries[name] = &layerEntry{hdr: hdr, host: host}
	return nil
}

// hash returns a digest of the plan's content: names, types, modes, owners, link targets and
// file contents; not times. fh may be nil.
func (p *layerPlan) hash(fh *fileHasher) (string, error) {
	h := sha256.New()
	for _, e := range p.sorted() {
		hd := e.hdr
		fmt.Fprintf(h, "%s\x00%c\x00%o\x00%d:%d\x00%s\x00%t\x00", hd.Name, hd.Typeflag, hd.Mode, hd.Uid, hd.Gid, hd.Linkname, e.archive)
		if e.data != nil {
			d := sha256.Sum256(e.data)
			h.Write(d[:])
		}
		if e.host != "" && (hd.Typeflag == tar.TypeReg || e.archive) {
			sum, err := fh.sum(e.host)
			if err != nil {
				return "", err
			}
			h.Write(sum)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// write writes the plan as an uncompressed layer tar.
func (p *layerPlan) write(ctx context.Context, w io.Writer) error {
	tw := tar.NewWriter(w)
	buf := make([]byte, 1<<20)
	for i, e := range p.sorted() {
		if i%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if e.archive {
			if err := expandArchive(tw, e.host, e.hdr.Name, e.hdr.Uid, e.hdr.Gid, buf); err != nil {
				return err
			}
			continue
		}
		if err := tw.WriteHeader(e.hdr); err != nil {
			return fmt.Errorf("layer %s: %w", e.hdr.Name, err)
		}
		if e.data != nil {
			if _, err := tw.Write(e.data); err != nil {
				return err
			}
			continue
		}
		if e.hdr.Typeflag == tar.TypeReg && e.hdr.Size > 0 {
			f, err := os.Open(e.host)
			if err != nil {
				return err
			}
			n, err := io.CopyBuffer(tw, io.LimitReader(f, e.hdr.Size), buf)
			f.Close()
			if err == nil && n != e.hdr.Size {
				err = fmt.Errorf("file changed size while copying")
			}
			if err != nil {
				return fmt.Errorf("copy %s: %w", e.host, err)
			}
		}
	}
	return tw.Close()
}

// isArchive reports whether a file is a tar archive, plain, gzip or bzip2 compressed.
func isArchive(p string) bool {
	f, err := os.Open(p)
	if err != nil {
		return false
	}
	defer f.Close()
	r, done, err := decompressReader(f)
	if err != nil {
		return false
	}
	defer done()
	head := make([]byte, 512)
	n, _ := io.ReadFull(r, head)
	return n == 512 && looksLikeTar(head)
}

// decompressReader undoes gzip or bzip2 compression; xz is refused.
func decompressReader(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<16)
	magic, _ := br.Peek(6)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case len(magic) >= 3 && string(magic[:3]) == "BZh":
		return bzip2.NewReader(br), func() {}, nil
	case len(magic) >= 6 && bytes.Equal(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return nil, nil, fmt.Errorf("xz archives are not supported: %w", ErrUnsupported)
	}
	return br, func() {}, nil
}

// expandArchive copies the entries of the tar archive at p under dir (ADD's auto-extraction),
// keeping them inside dir. uid/gid (from --chown) replace the owners when not zero.
func expandArchive(tw *tar.Writer, p, dir string, uid, gid int, buf []byte) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	r, done, err := decompressReader(f)
	if err != nil {
		return err
	}
	defer done()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ADD %s: %w", p, err)
		}
		name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
		if name == "" || strings.HasPrefix(path.Base(name), ".wh.") {
			continue
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeRegA, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo:
		default:
			continue
		}
		out := *hdr
		out.Name = path.Join(dir, name)
		if hdr.Typeflag == tar.TypeDir {
			out.Name += "/"
		}
		if hdr.Typeflag == tar.TypeLink {
			out.Linkname = path.Join(dir, strings.TrimPrefix(path.Clean("/"+hdr.Linkname), "/"))
		}
		if hdr.Typeflag == tar.TypeRegA {
			out.Typeflag = tar.TypeReg
		}
		if uid != 0 || gid != 0 {
			out.Uid, out.Gid = uid, gid
		}
		out.Uname, out.Gname, out.Format = "", "", tar.FormatPAX
		out.PAXRecords = nil
		if err := tw.WriteHeader(&out); err != nil {
			return err
		}
		if out.Typeflag == tar.TypeReg {
			if _, err := io.CopyBuffer(tw, tr, buf); err != nil {
				return err
			}
		}
	}
}

// parseChown resolves "user[:group]" (names or numbers) against the root filesystem's
// /etc/passwd and /etc/group. A user without a group uses the user's primary group, or the
// same number when the user is numeric.
func parseChown(spec string, root tree) (int, int, error) {
	u, g, hasGroup := strings.Cut(spec, ":")
	uid, primary, err := lookupID(root, "etc/passwd", u)
	if err != nil {
		return 0, 0, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	if !hasGroup {
		return uid, primary, nil
	}
	gid, _, err := lookupID(root, "etc/group", g)
	if err != nil {
		return 0, 0, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	return uid, gid, nil
}

// lookupID maps a name or number to an ID using a passwd or group file. For passwd it also
// returns the primary group.
func lookupID(root tree, file, name string) (int, int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, n, nil
	}
	b, err := root.readFile(file)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot resolve %q: no /%s in the image: %w", name, file, ErrSource)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || f[0] != name {
			continue
		}
		id, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		pg := id
		if len(f) >= 4 {
			if g, err := strconv.Atoi(f[3]); err == nil {
				pg = g
			}
		}
		return id, pg, nil
	}
	return 0, 0, fmt.Errorf("%q not found in /%s: %w", name, file, ErrSource)
}
