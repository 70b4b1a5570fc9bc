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
}

func (s *Store) newBlobWriter() (*blobWriter, error) {
	f, err := os.Create(s.scratch("blob-"))
	if err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	return &blobWriter{s: s, f: f, h: sha256.New()}, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if w.h != nil {
		w.h.Write(p[:n])
	}
	w.n += int64(n)
	return n, err
}

func (w *blobWriter) Digest() string { return "sha256:" + hex.EncodeToString(w.h.Sum(nil)) }

// Commit verifies (if want is not empty) and stores the blob; it returns its digest.
func (w *blobWriter) Commit(want string) (string, error) {
	defer w.Abort()
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
	if err := w.f.Sync(); err != nil {
		return "", fmt.Errorf("blob %s: %w", got, err)
	}
	if err := w.f.Close(); err != nil {
		return "", fmt.Errorf("blob %s: %w", got, err)
	}
	if err := os.Chmod(w.f.Name(), 0o600); err != nil {
		return "", err
	}
	if err := os.Rename(w.f.Name(), dst); err != nil {
		return "", fmt.Errorf("blob %s: %w", got, err)
	}
	w.done = true
	return got, syncDir(filepath.Dir(dst))
}

// Abort discards an uncommitted blob.
func (w *blobWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
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
