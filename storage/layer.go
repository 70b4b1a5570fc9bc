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
	"os"
	"path/filepath"
	"strings"
)

// unpack stores the uncompressed layer tar r as a blob through bw (which hashes it) and
// extracts it into a scratch directory in the same pass: one goroutine reads, hashes and
// writes the blob while a second unpacks from the blob file right behind it (spool), so the
// source is read once and both cores work. The diff ID is known as soon as the hash is done;
// if the store already has the layer (name gives its chain ID and parent), unpacking stops
// there and the partial tree is dropped. Otherwise the layer is synced and renamed into
// layers/. Nothing is left behind on error. It returns the diff ID and the content size (0 if
// the layer already existed). The caller commits bw.
func (s *Store) unpack(ctx context.Context, r io.Reader, bw *blobWriter, name func(diffID string) (chain, parent string)) (string, int64, error) {
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sp := newSpool(bw)
	type result struct {
		size int64
		err  error
	}
	res := make(chan result, 1)
	go func() {
		br := bufio.NewReaderSize(sp.reader(), 1<<20)
		size, err := extractLayer(ctx, br, filepath.Join(tmp, "diff"), extractOptions{MaxEntrySize: s.maxEntrySize()})
		if err != nil {
			sp.stop() // the writer need not go on
		}
		res <- result{size, err}
	}()
	_, ferr := sp.fill(ctx, r)
	if ferr != nil {
		sp.stop()
		x := <-res
		if errors.Is(ferr, errSpoolStopped) && x.err != nil {
			return "", 0, x.err // the unpacking failed first: report why
		}
		return "", 0, ferr
	}
	diff := bw.Digest()
	chain, parent := name(diff)
	if s.hasLayer(chain) {
		sp.stop()
		<-res
		return diff, 0, nil
	}
	sp.startWriteback() // a new layer: its blob will be kept, write it out while unpacking ends
	x := <-res
	if x.err != nil {
		return "", 0, x.err
	}
	size := x.size
	if err := syncLayer(tmp); err != nil {
		return "", 0, err
	}
	if err := s.commitLayer(tmp, chain, diff, parent, size); err != nil {
		return "", 0, err
	}
	ok = true
	return diff, size, nil
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
	return s.unpackWith(ctx, r, diffID, chain, parent, check)
}

// unpackWith extracts the layer tar r (hashing it on a second core) into a scratch directory,
// verifies its diff ID against wantDiff, runs check, and commits it as layer chain.
func (s *Store) unpackWith(ctx context.Context, r io.Reader, wantDiff, chain, parent string, check func() error) (string, int64, error) {
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
	aw := newAsyncWriter(h) // hash on another core while this one unpacks
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
	if s.hasLayer(chain) {
		return diff, size, nil
	}
	if err := syncLayer(tmp); err != nil {
		return "", 0, err
	}
	if err := s.commitLayer(tmp, chain, diff, parent, size); err != nil {
		return "", 0, err
	}
	ok = true
	return diff, size, nil
}

// commitLayer writes the metadata of the synced, unpacked layer in tmp and renames it into
// layers/<chain> (if another process committed the same layer first, tmp is removed). On
// success tmp no longer exists.
func (s *Store) commitLayer(tmp, chain, diff, parent string, size int64) error {
	short := strings.TrimPrefix(chain, "sha256:")[:16]
	meta := layerMeta{ChainID: chain, DiffID: diff, Parent: parent, Size: size, Short: short}
	mb, _ := json.Marshal(meta)
	if err := writeFileAtomic(filepath.Join(tmp, "meta.json"), mb, 0o600); err != nil {
		return err
	}
	if err := s.linkShort(short, chain); err != nil {
		return err
	}
	dst := s.layerDir(chain)
	if err := os.Rename(tmp, dst); err != nil {
		if isExist(err) {
			removeAllMaybeImmutable(tmp) // another process unpacked it first
			return nil
		}
		return fmt.Errorf("unpack layer %s: %w", chain, err)
	}
	return syncDir(filepath.Dir(dst))
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
