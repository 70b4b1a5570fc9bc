package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// unpack extracts the uncompressed layer tar r into a scratch directory while hashing it (and
// copying it into bw, if set). It verifies the diff ID against wantDiff (if set), then asks
// name for the chain ID (and parent chain) and renames the layer into layers/ unless an equal
// layer is already there. Nothing is left behind on error. It returns the diff ID.
func (s *Store) unpack(ctx context.Context, r io.Reader, bw io.Writer, wantDiff string, name func(diffID string) (chain, parent string)) (string, int64, error) {
	return s.unpackWith(ctx, r, bw, wantDiff, name, nil)
}

// unpackChecked unpacks a layer with known diff ID and chain; check runs after the content is
// read and before the layer is committed.
func (s *Store) unpackChecked(ctx context.Context, r io.Reader, diffID, chain, parent string, check func() error) (string, int64, error) {
	if s.hasLayer(chain) {
		// Still read everything so the blob is stored and verified.
		if _, err := io.Copy(io.Discard, r); err != nil {
			return "", 0, err
		}
		return diffID, 0, check()
	}
	return s.unpackWith(ctx, r, nil, diffID, func(string) (string, string) { return chain, parent }, check)
}

func (s *Store) unpackWith(ctx context.Context, r io.Reader, bw io.Writer, wantDiff string, name func(diffID string) (chain, parent string), check func() error) (string, int64, error) {
	tmp := s.scratch("layer-")
	if err := os.MkdirAll(filepath.Join(tmp, "diff"), 0o755); err != nil {
		return "", 0, fmt.Errorf("unpack layer: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			removeAllMaybeImmutable(tmp)
		}
	}()
	h := sha256.New()
	var w io.Writer = h
	if bw != nil {
		w = io.MultiWriter(h, bw)
	}
	aw := newAsyncWriter(w) // hash (and copy) on another core while this one unpacks
	tee := io.TeeReader(r, aw)
	size, err := extractLayer(ctx, tee, filepath.Join(tmp, "diff"), extractOptions{MaxEntrySize: s.maxEntrySize()})
	if err == nil {
		if _, err = io.Copy(io.Discard, tee); err != nil { // tar padding past the end marker
			err = fmt.Errorf("read layer: %w", err)
		}
	}
	if werr := aw.Close(); err == nil && werr != nil {
		err = fmt.Errorf("write layer blob: %w", werr)
	}
	if err != nil {
		return "", 0, err
	}
	diff := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if wantDiff != "" && diff != wantDiff {
		return "", 0, fmt.Errorf("layer content: expected diff ID %s, got %s: %w", wantDiff, diff, ErrDigest)
	}
	if check != nil {
		if err := check(); err != nil {
			return "", 0, err
		}
	}
	chain, parent := name(diff)
	if s.hasLayer(chain) {
		return diff, size, nil
	}
	if err := syncLayer(tmp); err != nil {
		return "", 0, err
	}
	short := strings.TrimPrefix(chain, "sha256:")[:16]
	meta := layerMeta{ChainID: chain, DiffID: diff, Parent: parent, Size: size, Short: short}
	mb, _ := json.Marshal(meta)
	if err := writeFileAtomic(filepath.Join(tmp, "meta.json"), mb, 0o600); err != nil {
		return "", 0, err
	}
	if err := s.linkShort(short, chain); err != nil {
		return "", 0, err
	}
	dst := s.layerDir(chain)
	if err := os.Rename(tmp, dst); err != nil {
		if isExist(err) {
			return diff, size, nil // another process unpacked it first
		}
		return "", 0, fmt.Errorf("unpack layer %s: %w", chain, err)
	}
	ok = true
	return diff, size, syncDir(filepath.Dir(dst))
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
