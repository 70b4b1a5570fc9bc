// Package storage is berth's content-addressed image store: OCI blobs by digest, layers
// unpacked once per chain ID and shared by every image on them, references, overlay mounts for
// containers, import/load/save and registry pull/push.
//
// On disk, under the root given to Open:
//
//	blobs/sha256/<hex>      OCI blobs: layer tarballs, configs, manifests
//	layers/<chainhex>/      diff/ (the overlay lowerdir), meta.json and, for an uncompressed
//	                        layer, tar-split.json.gz (its blob is rebuilt from it: tarsplit.go)
//	locks/<chainhex>        flock taken while a layer is unpacked from its blob (lazy.go)
//	l/<short>               short symlinks to layers/<chainhex>/diff for long overlay stacks
//	index.json              images (ID = config digest) and references (name:tag -> ID)
//	mounts/<containerID>/   image (record), upper/, work/, merged/
//	tmp/<session>/          in-progress writes; swept on Open once their owner is gone
//
// Every file is written to a temporary name, fsynced and renamed; a layer is unpacked under
// tmp/ and renamed into layers/ when complete. Store is safe for concurrent use by several
// goroutines and several processes (flock).
package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Error classes. Wrapped with %w by every exported method; test with errors.Is.
var (
	ErrNotFound      = errors.New("image not found")
	ErrAmbiguous     = errors.New("ambiguous image ID prefix")
	ErrInUse         = errors.New("image is in use")
	ErrConflict      = errors.New("conflict")
	ErrInvalidRef    = errors.New("invalid reference")
	ErrUnsafeLayer   = errors.New("unsafe layer content")
	ErrDigest        = errors.New("digest mismatch")
	ErrOverlay       = errors.New("overlay filesystem unavailable")
	ErrInvalidFormat = errors.New("invalid image archive")
)

// Store is an open image store. Create it with Open and Close it when done.
type Store struct {
	root     string
	session  string   // tmp/<session>: this Store's private scratch directory
	lockF    *os.File // holds tmp/<session>.lock exclusively while open
	maxEntry int64    // per tar entry limit; 0: DefaultMaxEntrySize
	aligned  alignedPool
	// racy is how recently a file may have changed and still be remembered by import
	// (importcache.go); 0: racyWindow.
	racy     time.Duration
	unpacked atomic.Int64 // layer trees unpacked by this Store (for tests and debugging)
	mu       sync.Mutex
	closed   bool
}

// Open opens (creating if needed) the store at root and sweeps writes left incomplete by
// processes that died.
func Open(root string) (*Store, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	for _, d := range []string{"", "blobs/sha256", "layers", "l", "locks", "mounts", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("open store %s: %w", root, err)
		}
	}
	s := &Store{root: root}
	s.sweep()
	// The session lock is created under a name the sweep ignores, locked, and only then renamed
	// to <session>.lock; the scratch directory is made after that, so a concurrent sweep never
	// sees a live session's scratch without its held lock.
	sess := randomHex(8)
	locking := filepath.Join(root, "tmp", sess+".locking")
	lf, err := os.OpenFile(locking, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		lf.Close()
		os.Remove(locking)
		return nil, fmt.Errorf("open store %s: lock session: %w", root, err)
	}
	if err := os.Rename(locking, filepath.Join(root, "tmp", sess+".lock")); err != nil {
		lf.Close()
		os.Remove(locking)
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	if err := os.Mkdir(filepath.Join(root, "tmp", sess), 0o700); err != nil {
		lf.Close()
		return nil, fmt.Errorf("open store %s: %w", root, err)
	}
	s.session, s.lockF = sess, lf
	return s, nil
}

// Close releases the store's session and removes its scratch space.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.aligned.close()
	err := os.RemoveAll(filepath.Join(s.root, "tmp", s.session))
	os.Remove(filepath.Join(s.root, "tmp", s.session+".lock"))
	if cerr := s.lockF.Close(); err == nil {
		err = cerr
	}
	return err
}

// Root returns the store's root directory.
func (s *Store) Root() string { return s.root }

// sweep removes scratch directories whose owning session is gone (its lock is free) and stray
// temporary files and layer directories.
func (s *Store) sweep() {
	tmp := filepath.Join(s.root, "tmp")
	ents, _ := os.ReadDir(tmp)
	live := map[string]bool{}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".lock") {
			continue
		}
		sess := strings.TrimSuffix(name, ".lock")
		f, err := os.OpenFile(filepath.Join(tmp, name), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			// Owner is dead: take its scratch space away, then the lock file.
			removeAllMaybeImmutable(filepath.Join(tmp, sess))
			os.Remove(filepath.Join(tmp, name))
		} else {
			live[sess] = true
		}
		f.Close()
	}
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".lock") || live[name] {
			continue
		}
		if strings.HasSuffix(name, ".locking") {
			// A session being opened right now, or one that died in Open: remove only old ones.
			if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
				os.Remove(filepath.Join(tmp, name))
			}
			continue
		}
		if _, err := os.Stat(filepath.Join(tmp, name+".lock")); err == nil {
			continue // lock file appeared after ReadDir (a session just started)
		}
		removeAllMaybeImmutable(filepath.Join(tmp, name))
	}
}

func removeAllMaybeImmutable(p string) {
	if err := os.RemoveAll(p); err != nil {
		// A layer may contain read-only directories; make them writable and retry.
		filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.Chmod(path, 0o700)
			}
			return nil
		})
		os.RemoveAll(p)
	}
}

// scratch returns a new private temporary path (not yet created) inside this session.
func (s *Store) scratch(prefix string) string {
	return filepath.Join(s.root, "tmp", s.session, prefix+randomHex(8))
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

// ---- locking ----

// lockFile flocks <root>/<name> and returns the unlock function.
func (s *Store) lockFile(name string, how int) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.root, name), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, err)
	}
	return func() { f.Close() }, nil
}

// ingestLock is held shared by every operation that writes blobs or layers not yet referenced
// from the index (and by mounts); GC holds it exclusively so it never deletes them mid-write.
func (s *Store) ingestLock(exclusive bool) (func(), error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	return s.lockFile("gc.lock", how)
}

// ---- index ----

type index struct {
	Images map[string]*imageRecord `json:"images"` // image ID -> record
	Refs   map[string]string       `json:"refs"`   // normalized name:tag -> image ID
}

type imageRecord struct {
	Manifest    string    `json:"manifest"`              // digest of the manifest blob
	RepoDigests []string  `json:"repoDigests,omitempty"` // normalized name@sha256:...
	Parent      string    `json:"parent,omitempty"`      // image ID of the parent (builds, commits)
	Added       time.Time `json:"added"`
}

func (s *Store) readIndexLocked() (*index, error) {
	ix := &index{Images: map[string]*imageRecord{}, Refs: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(s.root, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return ix, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	if err := json.Unmarshal(b, ix); err != nil {
		return nil, fmt.Errorf("read index %s: %w", filepath.Join(s.root, "index.json"), err)
	}
	if ix.Images == nil {
		ix.Images = map[string]*imageRecord{}
	}
	if ix.Refs == nil {
		ix.Refs = map[string]string{}
	}
	return ix, nil
}

// view reads the index under a shared lock.
func (s *Store) view() (*index, error) {
	unlock, err := s.lockFile("index.lock", unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.readIndexLocked()
}

// update runs fn on the index under an exclusive lock and writes it back if fn succeeds.
func (s *Store) update(fn func(ix *index) error) error {
	unlock, err := s.lockFile("index.lock", unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	ix, err := s.readIndexLocked()
	if err != nil {
		return err
	}
	if err := fn(ix); err != nil {
		return err
	}
	b, err := json.MarshalIndent(ix, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.root, "index.json"), b, 0o600)
}

// writeFileAtomic writes data to path via a temporary file, fsync and rename, then fsyncs the
// directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// ---- resolution ----

// Resolve finds an image by reference (name[:tag] or name@digest, normalized like Docker), by
// full ID (with or without "sha256:") or by an unambiguous ID prefix. It wraps ErrNotFound.
func (s *Store) Resolve(ctx context.Context, ref string) (Image, error) {
	ix, err := s.view()
	if err != nil {
		return Image{}, err
	}
	id, err := resolveID(ix, ref)
	if err != nil {
		return Image{}, err
	}
	return s.loadImage(ix, id)
}

func resolveID(ix *index, ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("resolve %q: %w", ref, ErrNotFound)
	}
	if _, ok := ix.Images[ref]; ok {
		return ref, nil
	}
	if isHex(ref) && len(ref) == 64 {
		if _, ok := ix.Images["sha256:"+ref]; ok {
			return "sha256:" + ref, nil
		}
	}
	if n, err := NormalizeRef(ref); err == nil {
		if id, ok := ix.Refs[n]; ok {
			return id, nil
		}
		if strings.Contains(n, "@") {
			for id, rec := range ix.Images {
				for _, d := range rec.RepoDigests {
					if d == n {
						return id, nil
					}
				}
			}
		}
	}
	p := strings.TrimPrefix(ref, "sha256:")
	if isHex(p) && len(p) >= 1 && len(p) < 64 {
		var found []string
		for id := range ix.Images {
			if strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), p) {
				found = append(found, id)
			}
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 0:
		default:
			return "", fmt.Errorf("resolve %q: %d images match: %w", ref, len(found), ErrAmbiguous)
		}
	}
	return "", fmt.Errorf("resolve %q: %w", ref, ErrNotFound)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// List returns every image, newest first.
func (s *Store) List(ctx context.Context) ([]Image, error) {
	ix, err := s.view()
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(ix.Images))
	for id := range ix.Images {
		img, err := s.loadImage(ix, id)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Tag points ref (normalized) at the image that source resolves to.
func (s *Store) Tag(ctx context.Context, source, ref string) error {
	n, err := NormalizeRef(ref)
	if err != nil {
		return err
	}
	if strings.Contains(n, "@") {
		return fmt.Errorf("tag %q: a tag cannot contain a digest: %w", ref, ErrInvalidRef)
	}
	return s.update(func(ix *index) error {
		id, err := resolveID(ix, source)
		if err != nil {
			return err
		}
		ix.Refs[n] = id
		return nil
	})
}
