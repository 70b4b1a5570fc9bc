package storage

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// unpacked is a layer unpacked into a scratch directory (the tree in its diff/), neither
// synced nor placed yet.
type unpacked struct {
	dir     string
	diff    string // the diff ID: sha256 of the tar
	tarSize int64  // length of the tar
	size    int64  // content size (regular files)
	split   bool   // dir holds a tar-split: the tree can rebuild the tar (see tarsplit.go)
}

// unpackTo extracts the layer tar r (hashing it on a second core) into a new scratch
// directory and verifies its diff ID against wantDiff (when set). With split, it also records
// the tar's tar-split next to the tree, so that the tree can rebuild the tar (u.split says
// whether it can). Nothing is synced. On error nothing is left behind.
func (s *Store) unpackTo(ctx context.Context, r io.Reader, wantDiff string, split bool) (*unpacked, error) {
	tmp := s.scratch("layer-")
	if err := os.MkdirAll(filepath.Join(tmp, "diff"), 0o755); err != nil {
		return nil, fmt.Errorf("unpack layer: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			removeAllMaybeImmutable(tmp)
		}
	}()
	h := sha256.New()
	aw := newAsyncWriter(h) // hash on another core while this one unpacks
	cr := &countingReader{r: io.TeeReader(r, aw)}
	opt := extractOptions{MaxEntrySize: s.maxEntrySize(), Writeback: true}
	if split {
		rec, err := newSplitRecorder(filepath.Join(tmp, tarSplitName))
		if err != nil {
			aw.Close()
			return nil, err
		}
		defer rec.close(false)
		opt.Split = rec
	}
	u := &unpacked{dir: tmp}
	s.unpacked.Add(1)
	size, err := extractLayer(ctx, cr, filepath.Join(tmp, "diff"), opt)
	if err == nil {
		if opt.Split != nil {
			u.split, err = opt.Split.finish() // reads the tar padding past the end marker too
			if err == nil && !u.split {
				opt.Split.close(true)
			}
		} else if _, err = io.Copy(io.Discard, cr); err != nil { // tar padding past the end marker
			err = fmt.Errorf("read layer: %w", err)
		}
	}
	if werr := aw.Close(); err == nil && werr != nil {
		err = fmt.Errorf("hash layer: %w", werr)
	}
	if err != nil {
		return nil, err
	}
	u.diff = "sha256:" + hex.EncodeToString(h.Sum(nil))
	u.tarSize, u.size = cr.n, size
	if wantDiff != "" && u.diff != wantDiff {
		return nil, fmt.Errorf("layer content: expected diff ID %s, got %s: %w", wantDiff, u.diff, ErrDigest)
	}
	ok = true
	return u, nil
}

// importLayer stores the layer tar raw (optionally gzip) for a new image: unpacked, with its
// tar-split and without its blob, which the tree rebuilds when it is needed. A layer the tree
// cannot rebuild (see splitRecorder) keeps its blob: raw is read a second time for it (from
// the start if it can seek, else from a copy made while unpacking). name gives the layer's
// chain ID and parent from its diff ID. It returns the layer's manifest descriptor; the layer
// (and blob) are durable and in place.
func (s *Store) importLayer(ctx context.Context, raw io.Reader, name func(diffID string) (chain, parent string)) (_ v1.Descriptor, err error) {
	var reopen func() (io.Reader, error)
	src := raw
	if rs, ok := raw.(io.ReadSeeker); ok {
		if start, err := rs.Seek(0, io.SeekCurrent); err == nil {
			reopen = func() (io.Reader, error) {
				_, err := rs.Seek(start, io.SeekStart)
				return rs, err
			}
		}
	}
	// The same file imported before, unchanged since: its layer is here already.
	key := importKey(raw, s.racy)
	if rec, ok := s.importedBefore(key); ok {
		chain, _ := name(rec.DiffID)
		if h, err := v1.NewHash(rec.DiffID); err == nil && s.hasLayer(chain) && s.blobAvailable(rec.DiffID, chain) {
			return v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: rec.TarSize, Digest: h}, nil
		}
	}
	var spill *bufio.Writer
	if reopen == nil { // a pipe: keep a copy, in case the blob must be stored
		f, err := os.Create(s.scratch("spill-"))
		if err != nil {
			return v1.Descriptor{}, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		spill = bufio.NewWriterSize(f, 1<<20)
		src = io.TeeReader(raw, spill)
		reopen = func() (io.Reader, error) {
			if err := spill.Flush(); err != nil {
				return nil, err
			}
			_, err := f.Seek(0, io.SeekStart)
			return f, err
		}
	}
	r, done, err := decompress(src)
	if err != nil {
		return v1.Descriptor{}, err
	}
	u, err := s.unpackTo(ctx, r, "", true)
	done()
	if err != nil {
		return v1.Descriptor{}, err
	}
	defer removeAllMaybeImmutable(u.dir) // a no-op once placed
	chain, parent := name(u.diff)
	h, _ := v1.NewHash(u.diff)
	desc := v1.Descriptor{MediaType: types.OCIUncompressedLayer, Size: u.tarSize, Digest: h}
	defer func() {
		if err == nil {
			s.rememberImport(key, importRecord{DiffID: u.diff, TarSize: u.tarSize})
		}
	}()
	have := s.hasLayer(chain)
	if have && s.blobAvailable(u.diff, chain) {
		return desc, nil
	}
	if !u.split {
		if err := s.storeTarBlob(reopen, u.diff); err != nil {
			return v1.Descriptor{}, err
		}
	}
	if !have {
		if err := writeLayerMeta(u.dir, layerMeta{ChainID: chain, DiffID: u.diff, Parent: parent, Size: u.size}); err != nil {
			return v1.Descriptor{}, err
		}
		if err := s.linkShort(shortName(chain), chain); err != nil {
			return v1.Descriptor{}, err
		}
		if err := syncLayer(u.dir); err != nil { // the tree, its metadata and tar-split: one syncfs
			return v1.Descriptor{}, err
		}
	}
	if err := s.placeLayer(u.dir, chain); err != nil {
		return v1.Descriptor{}, err
	}
	return desc, syncDir(filepath.Join(s.root, "layers"))
}

// storeTarBlob stores the uncompressed tar that reopen gives again (maybe gzip) as a blob that
// must have the digest want.
func (s *Store) storeTarBlob(reopen func() (io.Reader, error), want string) error {
	src, err := reopen()
	if err != nil {
		return fmt.Errorf("store layer blob: %w", err)
	}
	r, done, err := decompress(src)
	if err != nil {
		return err
	}
	defer done()
	bw, err := s.newLayerBlobWriter()
	if err != nil {
		return err
	}
	defer bw.Abort()
	if _, err := io.Copy(bw, r); err != nil {
		return fmt.Errorf("store layer blob: %w", err)
	}
	if _, err := bw.Commit(want); err != nil {
		return fmt.Errorf("store layer blob (the source changed while it was read?): %w", err)
	}
	return nil
}

func shortName(chain string) string { return strings.TrimPrefix(chain, "sha256:")[:16] }

// writeLayerMeta writes meta.json into the unpacked layer dir (not synced: the caller syncs
// the whole layer before it is placed).
func writeLayerMeta(dir string, meta layerMeta) error {
	meta.Short = shortName(meta.ChainID)
	mb, _ := json.Marshal(meta)
	if err := os.WriteFile(filepath.Join(dir, "meta.json"), mb, 0o600); err != nil {
		return fmt.Errorf("layer %s: %w", meta.ChainID, err)
	}
	return nil
}

// placeLayer renames the complete, durable layer in tmp to layers/<chain>. If the layer is
// there already (another process was first), tmp is removed instead; if only tmp has a
// tar-split, it is added to the layer first (the trees of one chain ID are the same).
func (s *Store) placeLayer(tmp, chain string) error {
	if err := os.Rename(tmp, s.layerDir(chain)); err != nil {
		if !isExist(err) {
			return fmt.Errorf("unpack layer %s: %w", chain, err)
		}
		defer removeAllMaybeImmutable(tmp)
		dst := filepath.Join(s.layerDir(chain), tarSplitName)
		if _, err := os.Stat(dst); err == nil {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(tmp, tarSplitName))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("layer %s: %w", chain, err)
		}
		return writeFileAtomic(dst, b, 0o600)
	}
	return nil
}

// linkShort makes l/<short> point at layers/<chain>/diff (atomically replacing a stale link).
func (s *Store) linkShort(short, chain string) error {
	target := filepath.Join("..", "layers", strings.TrimPrefix(chain, "sha256:"), "diff")
	link := filepath.Join(s.root, "l", short)
	if cur, err := os.Readlink(link); err == nil {
		if cur == target {
			return nil
		}
		return fmt.Errorf("layer %s: short name %s already used by %s: %w", chain, short, cur, ErrConflict)
	}
	tmp := s.scratch("link-")
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("layer link: %w", err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("layer link: %w", err)
	}
	return nil
}

func (s *Store) maxEntrySize() int64 { return s.maxEntry }
