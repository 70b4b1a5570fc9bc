package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// BlobPath returns where the blob with the given digest ("sha256:<hex>") lives.
func (s *Store) BlobPath(digest string) (string, error) {
	hexd, err := digestHex(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.root, "blobs", "sha256", hexd), nil
}

func digestHex(d string) (string, error) {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 || !isHex(h) {
		return "", fmt.Errorf("digest %q: not a sha256 digest: %w", d, ErrDigest)
	}
	return h, nil
}

func (s *Store) hasBlob(digest string) bool {
	p, err := s.BlobPath(digest)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

func (s *Store) readBlob(digest string) ([]byte, error) {
	p, err := s.BlobPath(digest)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	return b, err
}

// blobWriter writes a blob to a scratch file while hashing it; commit verifies the digest,
// fsyncs and renames it into blobs/.
type blobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
	// writeback starts writing the file out every few MB (no wait) so that the sync before
	// the commit finds little left to do.
	writeback bool
	flushed   int64 // bytes handed to writeback so far
	// direct, when set, writes the file with O_DIRECT (see directWriter); f is then used
	// only for the final truncate, sync and rename.
	direct   *directWriter
	finished bool
}

const writebackChunk = 8 << 20

func (s *Store) newBlobWriter() (*blobWriter, error) {
	f, err := os.OpenFile(s.scratch("blob-"), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	return &blobWriter{s: s, f: f, h: sha256.New()}, nil
}

// newLayerBlobWriter is newBlobWriter for large blobs: O_DIRECT where the filesystem allows.
func (s *Store) newLayerBlobWriter() (*blobWriter, error) {
	w, err := s.newBlobWriter()
	if err != nil {
		return nil, err
	}
	if d, err := newDirectWriter(w.f.Name(), int(w.f.Fd()), &s.aligned); err == nil {
		w.direct = d
	}
	return w, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	if w.direct != nil {
		if err := w.direct.write(p); err != nil {
			return 0, err
		}
		w.h.Write(p)
		w.n += int64(len(p))
		return len(p), nil
	}
	n, err := w.f.Write(p)
	if w.h != nil {
		w.h.Write(p[:n])
	}
	w.n += int64(n)
	if w.writeback && w.n-w.flushed >= writebackChunk {
		unix.SyncFileRange(int(w.f.Fd()), w.flushed, w.n-w.flushed, unix.SYNC_FILE_RANGE_WRITE)
		w.flushed = w.n
	}
	return n, err
}

func (w *blobWriter) Digest() string { return "sha256:" + hex.EncodeToString(w.h.Sum(nil)) }

// finish completes the file after the last Write (idempotent): with O_DIRECT it writes the
// last piece and waits until everything is on the disk. The data still needs a sync (or
// syncfs) to be durable.
func (w *blobWriter) finish() error {
	if w.finished {
		return nil
	}
	w.finished = true
	if w.direct == nil {
		return nil
	}
	return w.direct.finish(w.n)
}

// release stops the O_DIRECT writer and frees its buffers (idempotent).
func (w *blobWriter) release() {
	if w.direct != nil {
		w.direct.close()
	}
}

// Commit verifies (if want is not empty) and stores the blob; it returns its digest.
func (w *blobWriter) Commit(want string) (string, error) { return w.commit(want, false) }

// commit is Commit; synced says the file is durable already (the caller ran syncfs after the
// last write), so only the rename is left, and the caller syncs blobs/sha256.
func (w *blobWriter) commit(want string, synced bool) (string, error) {
	defer w.Abort()
	if err := w.finish(); err != nil {
		return "", err
	}
	w.release()
	if w.h == nil && want == "" {
		return "", fmt.Errorf("blob: no digest: %w", ErrDigest)
	}
	got := want
	if w.h != nil {
		got = w.Digest()
	}
	if want != "" && want != got {
		return "", fmt.Errorf("blob: expected %s, got %s: %w", want, got, ErrDigest)
	}
	dst, _ := w.s.BlobPath(got)
	if _, err := os.Stat(dst); err == nil {
		return got, nil // already stored (Abort discards this copy)
	}
	if !synced {
		if err := w.f.Sync(); err != nil {
			return "", fmt.Errorf("blob %s: %w", got, err)
		}
	}
	if err := w.f.Close(); err != nil {
		return "", fmt.Errorf("blob %s: %w", got, err)
	}
	if err := os.Rename(w.f.Name(), dst); err != nil {
		return "", fmt.Errorf("blob %s: %w", got, err)
	}
	w.done = true
	if synced {
		return got, nil
	}
	return got, syncDir(filepath.Dir(dst))
}

// Abort discards an uncommitted blob.
func (w *blobWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.release()
	w.f.Close()
	os.Remove(w.f.Name())
}

// putBlob stores data as a blob and returns its digest.
func (s *Store) putBlob(data []byte) (string, error) {
	w, err := s.newBlobWriter()
	if err != nil {
		return "", err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return "", err
	}
	return w.Commit("")
}

type hasher struct{ h hash.Hash }

func newHasher() *hasher                      { return &hasher{sha256.New()} }
func (h *hasher) Write(p []byte) (int, error) { return h.h.Write(p) }
func (h *hasher) Digest() string              { return "sha256:" + hex.EncodeToString(h.h.Sum(nil)) }
