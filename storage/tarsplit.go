package storage

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/vbatts/tar-split/tar/storage"
	"golang.org/x/sys/unix"
)

// An uncompressed layer (import, load of Docker archives, builds, commits) is stored once: as
// its unpacked tree plus a tar-split file, layers/<chain>/tar-split.json.gz, that holds every
// byte of the tar the tree does not (headers, padding, the end blocks) and, for each regular
// file, its name and size. The layer's blob, the tar whose digest is the diff ID, is not kept:
// rebuildBlob concatenates the recorded bytes and the files' contents again when save, push or
// export need it, and checks the result against the diff ID as it streams. The file uses
// tar-split's JSON entry format; file entries carry no CRC64 (computing one costs more than the
// sha256 of the whole stream, which is checked instead).
const tarSplitName = "tar-split.json.gz"

// maxSegment bounds the raw bytes kept between two file contents (headers, long names, PAX
// records, the data of entries the tree does not keep). A layer that needs more keeps its blob.
const maxSegment = 4 << 20

// splitRecorder sits between a layer tar and extractLayer's tar reader and records the stream
// as tar-split entries: extractLayer marks where each regular file's content starts and ends,
// everything else is kept as raw segments. It also finds layers whose tree cannot give the
// content back (an entry that replaced an earlier file, content the tree does not keep as a
// file, files unreadable without root): then ok reports false, and the caller keeps the blob.
type splitRecorder struct {
	r      io.Reader
	f      *os.File
	bw     *bufio.Writer
	zw     *gzip.Writer
	p      storage.Packer
	seg    []byte
	inFile bool
	n      int64 // bytes of the current file's content read so far
	total  int64 // bytes of the stream read so far
	why    string
	err    error
}

// newSplitRecorder records into the file at path (created).
func newSplitRecorder(path string) (*splitRecorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("tar-split: %w", err)
	}
	rec := &splitRecorder{f: f}
	rec.bw = bufio.NewWriterSize(f, 64<<10)
	rec.zw, _ = gzip.NewWriterLevel(rec.bw, gzip.BestSpeed)
	rec.p = storage.NewJSONPacker(rec.zw)
	return rec, nil
}

func (rec *splitRecorder) Read(p []byte) (int, error) {
	n, err := rec.r.Read(p)
	rec.total += int64(n)
	if rec.why == "" && n > 0 {
		if rec.inFile {
			rec.n += int64(n)
		} else if len(rec.seg)+n > maxSegment {
			rec.fail("more than 4 MiB of tar data outside files")
		} else {
			rec.seg = append(rec.seg, p[:n]...)
		}
	}
	return n, err
}

// fail records why the tree cannot rebuild the tar; recording stops.
func (rec *splitRecorder) fail(why string) {
	if rec.why == "" {
		rec.why = why
		rec.seg = nil
	}
}

func (rec *splitRecorder) add(e storage.Entry) {
	if rec.why != "" {
		return
	}
	if _, err := rec.p.AddEntry(e); err != nil {
		if errors.Is(err, storage.ErrDuplicatePath) {
			rec.fail("a file appears twice")
			return
		}
		rec.err = err
		rec.fail("tar-split: " + err.Error())
	}
}

func (rec *splitRecorder) flushSegment() {
	if len(rec.seg) > 0 {
		rec.add(storage.Entry{Type: storage.SegmentType, Payload: rec.seg})
		rec.seg = rec.seg[:0]
	}
}

// beginFile is called after the tar reader returned hdr, a regular file whose content the
// tree keeps, and before its content is read.
func (rec *splitRecorder) beginFile(hdr *tar.Header) {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			rec.fail("a sparse file")
		}
	}
	rec.flushSegment()
	rec.inFile, rec.n = true, 0
}

// endFile is called when the file's content has been read.
func (rec *splitRecorder) endFile(hdr *tar.Header) {
	rec.inFile = false
	if rec.n != hdr.Size {
		rec.fail("a file whose stored size differs from its tar size")
		return
	}
	e := storage.Entry{Type: storage.FileType, Size: hdr.Size}
	e.SetName(hdr.Name)
	rec.add(e)
}

// finish reads the rest of the stream (padding after the end blocks) and completes the file.
// It reports whether the tree can rebuild the tar.
func (rec *splitRecorder) finish() (bool, error) {
	if _, err := io.Copy(io.Discard, rec); err != nil {
		return false, fmt.Errorf("read layer: %w", err)
	}
	rec.flushSegment()
	if rec.err != nil {
		return false, rec.err
	}
	if err := rec.zw.Close(); err != nil {
		return false, fmt.Errorf("tar-split: %w", err)
	}
	if err := rec.bw.Flush(); err != nil {
		return false, fmt.Errorf("tar-split: %w", err)
	}
	return rec.why == "", nil
}

// close closes the file (idempotent); with drop, it also removes it.
func (rec *splitRecorder) close(drop bool) {
	if rec.f != nil {
		rec.f.Close()
		if drop {
			os.Remove(rec.f.Name())
		}
		rec.f = nil
	}
}

// canRebuild reports whether layer chain holds a tar-split for its tree and its diff ID is
// digest (the digest of an uncompressed layer blob is its diff ID).
func (s *Store) canRebuild(chain, digest string) bool {
	if _, err := os.Stat(filepath.Join(s.layerDir(chain), tarSplitName)); err != nil {
		return false
	}
	m, err := s.readLayerMeta(chain)
	return err == nil && m.DiffID == digest
}

// blobAvailable reports whether the blob digest of layer chain can be read: it is stored, or
// the layer's tree can rebuild it.
func (s *Store) blobAvailable(digest, chain string) bool {
	return s.hasBlob(digest) || s.canRebuild(chain, digest)
}

// openLayerBlob opens the blob digest (size bytes) of layer chain: the stored blob, or the tar
// rebuilt from the layer's tree and tar-split (see rebuildBlob).
func (s *Store) openLayerBlob(digest string, size int64, chain string) (io.ReadCloser, error) {
	p, err := s.BlobPath(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err == nil {
		return f, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", digest, err)
	}
	if !s.canRebuild(chain, digest) {
		return nil, fmt.Errorf("blob %s: not stored, and layer %s cannot rebuild it: %w", digest, chain, ErrNotFound)
	}
	return s.rebuildBlob(chain, digest, size)
}

// rebuildBlob returns the tar of layer chain rebuilt from its tree and tar-split. The tree is
// read inside the layer directory only (no symlink leads out). The digest (and size, when not
// negative) are checked as the stream ends: a tree changed since it was unpacked makes the last
// Read fail with ErrDigest instead of io.EOF.
func (s *Store) rebuildBlob(chain, digest string, size int64) (io.ReadCloser, error) {
	dir := s.layerDir(chain)
	f, err := os.Open(filepath.Join(dir, tarSplitName))
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", chain, err)
	}
	zr, err := gzip.NewReader(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("layer %s: tar-split: %w", chain, err)
	}
	root, err := unix.Open(filepath.Join(dir, "diff"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		zr.Close()
		f.Close()
		return nil, fmt.Errorf("layer %s: %w", chain, err)
	}
	return &rebuildReader{chain: chain, want: digest, size: size, split: f, zr: zr, up: storage.NewJSONUnpacker(zr), root: root, h: sha256.New()}, nil
}

// rebuildReader streams a layer tar from tar-split entries and the tree's files.
type rebuildReader struct {
	chain, want string
	size        int64
	split       *os.File
	zr          *gzip.Reader
	up          storage.Unpacker
	root        int // layers/<chain>/diff
	h           hash.Hash
	n           int64
	cur         io.Reader // the current segment or file content
	file        *os.File  // the current file
	name        string    // its tar name
	left        int64     // bytes of it still expected
	err         error
}

func (r *rebuildReader) changed(format string, args ...any) error {
	return fmt.Errorf("layer %s: the unpacked tree no longer matches the layer (changed after it was unpacked?): %s: %w", r.chain, fmt.Sprintf(format, args...), ErrDigest)
}

func (r *rebuildReader) Read(p []byte) (int, error) {
	for r.err == nil {
		if r.cur != nil {
			n, err := r.cur.Read(p)
			if n > 0 {
				r.h.Write(p[:n])
				r.n += int64(n)
				if r.file != nil {
					r.left -= int64(n)
				}
				return n, nil
			}
			if err == io.EOF {
				if r.file != nil && r.left != 0 {
					r.err = r.changed("file %q is shorter than recorded", r.name)
					break
				}
				r.closeFile()
				r.cur = nil
				continue
			}
			if err != nil {
				r.err = fmt.Errorf("layer %s: rebuild blob: %w", r.chain, err)
				break
			}
			continue
		}
		e, err := r.up.Next()
		if err == io.EOF {
			r.err = r.verify()
			break
		}
		if err != nil {
			r.err = fmt.Errorf("layer %s: tar-split: %w", r.chain, err)
			break
		}
		switch e.Type {
		case storage.SegmentType:
			r.cur = bytes.NewReader(e.Payload)
		case storage.FileType:
			if e.Size > 0 {
				r.err = r.openFile(e.GetName(), e.Size)
			}
		default:
			r.err = fmt.Errorf("layer %s: tar-split: unknown entry type %d: %w", r.chain, e.Type, ErrInvalidFormat)
		}
	}
	return 0, r.err
}

// openFile opens the tree's file for the tar name, resolved inside the layer, and checks its size.
func (r *rebuildReader) openFile(name string, size int64) error {
	clean, err := cleanEntryName(name)
	if err != nil || clean == "" {
		return r.changed("bad file name %q", name)
	}
	fd, err := unix.Openat2(r.root, clean, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	})
	if err != nil {
		return r.changed("file %q: %v", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("layer %s: %w", r.chain, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != size {
		f.Close()
		return r.changed("file %q: %d bytes, recorded %d", name, fi.Size(), size)
	}
	r.file, r.name, r.left, r.cur = f, name, size, io.LimitReader(f, size)
	return nil
}

func (r *rebuildReader) closeFile() {
	if r.file != nil {
		r.file.Close()
		r.file = nil
	}
}

func (r *rebuildReader) verify() error {
	got := "sha256:" + hex.EncodeToString(r.h.Sum(nil))
	if got != r.want {
		return r.changed("rebuilt blob has digest %s, want %s", got, r.want)
	}
	if r.size >= 0 && r.n != r.size {
		return r.changed("rebuilt blob has %d bytes, want %d", r.n, r.size)
	}
	return io.EOF
}

func (r *rebuildReader) Close() error {
	r.closeFile()
	if r.root >= 0 {
		unix.Close(r.root)
		r.root = -1
	}
	r.zr.Close()
	if r.err == nil {
		r.err = errors.New("rebuilt blob: read after close")
	}
	return r.split.Close()
}

// LayerBlob opens the blob of img's layer i (base first) as the manifest names it: the stored
// blob or, for a layer kept as its tree, the tar rebuilt from it, verified as it is read (the
// last Read fails with ErrDigest if the tree changed).
func (s *Store) LayerBlob(ctx context.Context, img Image, i int) (io.ReadCloser, error) {
	m, err := s.readManifest(img.ManifestDigest)
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= len(m.Layers) || i >= len(img.ChainIDs) {
		return nil, fmt.Errorf("image %s has no layer %d: %w", shortID(img.ID), i, ErrNotFound)
	}
	d := m.Layers[i]
	return s.openLayerBlob(d.Digest.String(), d.Size, img.ChainIDs[i])
}
