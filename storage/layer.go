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
// writes the blob while a second unpacks the same bytes right behind it (spool), so the
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
	defer sp.close() // every path below waits for the unpacking goroutine first
	type result struct {
		size int64
		err  error
	}
	res := make(chan result, 1)
	go func() {
		br := bufio.NewReaderSize(sp.reader(), 256<<10)
		size, err := extractLayer(ctx, br, filepath.Join(tmp, "diff"), extractOptions{MaxEntrySize: s.maxEntrySize(), Writeback: true})
		if err != nil {
			sp.stop() // the writer need not go on
		}
		res <- result{size, err}
	}()
	_, ferr := sp.fill(ctx, r)
	if ferr == nil {
		ferr = bw.finish() // the last piece, and wait until the blob is on the disk
	}
	if ferr != nil {
		sp.stop()
		bw.stopWrites() // a reader waiting for a piece of the file gives up
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
	if err := writeLayerMeta(tmp, layerMeta{ChainID: chain, DiffID: diff, Parent: parent, Size: size}); err != nil {
		return "", 0, err
	}
	if err := syncLayer(tmp); err != nil { // the tree, its metadata and the blob: one syncfs
		return "", 0, err
	}
	if err := s.linkShort(shortName(chain), chain); err != nil {
		return "", 0, err
	}
	if err := s.placeLayer(tmp, chain); err != nil {
		return "", 0, err
	}
	ok = true
	return diff, size, syncDir(filepath.Join(s.root, "layers"))
}

// unpackTo extracts the layer tar r (hashing it on a second core) into a new scratch
// directory and verifies its diff ID against wantDiff (when set). It returns the scratch
// directory (the tree is in its diff/) and the content size; nothing is synced. On error
// nothing is left behind.
func (s *Store) unpackTo(ctx context.Context, r io.Reader, wantDiff string) (string, int64, error) {
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
	size, err := extractLayer(ctx, tee, filepath.Join(tmp, "diff"), extractOptions{MaxEntrySize: s.maxEntrySize(), Writeback: true})
	if err == nil {
		if _, err = io.Copy(io.Discard, tee); err != nil { // tar padding past the end marker
			err = fmt.Errorf("read layer: %w", err)
		}
	}
	if werr := aw.Close(); err == nil && werr != nil {
		err = fmt.Errorf("hash layer: %w", werr)
	}
	if err != nil {
		return "", 0, err
	}
	diff := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if wantDiff != "" && diff != wantDiff {
		return "", 0, fmt.Errorf("layer content: expected diff ID %s, got %s: %w", wantDiff, diff, ErrDigest)
	}
	ok = true
	return tmp, size, nil
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
// there already (another process was first), tmp is removed instead.
func (s *Store) placeLayer(tmp, chain string) error {
	if err := os.Rename(tmp, s.layerDir(chain)); err != nil {
		if isExist(err) {
			removeAllMaybeImmutable(tmp)
			return nil
		}
		return fmt.Errorf("unpack layer %s: %w", chain, err)
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
