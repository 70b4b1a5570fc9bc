package storage

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// A pulled image's layers are stored as their (compressed) blobs only; each layer is unpacked
// the first time something needs its tree: Mount, Unpack (builds), a load or pull with
// unpacking. Unpacking takes locks/<chainhex> (flock) per layer, so that concurrent commands
// unpack a layer once; like every write it happens under tmp/ and is renamed into layers/ when
// it is complete and durable, so a command killed in the middle leaves nothing but scratch
// space that the next Open sweeps, and the next command that needs the tree unpacks it again.

// Unpack unpacks every layer of the image that ref resolves to that is not unpacked yet. Mount
// does this itself; builds call it before they read an image's files.
func (s *Store) Unpack(ctx context.Context, ref string) error {
	unlock, err := s.ingestLock(false)
	if err != nil {
		return err
	}
	defer unlock()
	img, err := s.Resolve(ctx, ref)
	if err != nil {
		return fmt.Errorf("unpack: %w", err)
	}
	return s.unpackImage(ctx, img)
}

// unpackImage unpacks img's missing layers from their blobs, in parallel, each verified
// against its diff ID, all made durable with one syncfs and then renamed into layers/. The
// caller holds the ingest lock (shared), so GC waits.
func (s *Store) unpackImage(ctx context.Context, img Image) error {
	var missing []int
	for i, c := range img.ChainIDs {
		if !s.hasLayer(c) {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	m, err := s.readManifest(img.ManifestDigest)
	if err != nil {
		return fmt.Errorf("unpack %s: %w", shortID(img.ID), err)
	}
	if len(m.Layers) != len(img.ChainIDs) {
		return fmt.Errorf("unpack %s: the manifest has %d layers, the config %d: %w", shortID(img.ID), len(m.Layers), len(img.ChainIDs), ErrInvalidFormat)
	}
	// Every process takes the layer locks in the same (chain ID) order.
	order := append([]int(nil), missing...)
	sort.Slice(order, func(a, b int) bool { return img.ChainIDs[order[a]] < img.ChainIDs[order[b]] })
	for _, i := range order {
		unlock, err := s.lockFile(filepath.Join("locks", strings.TrimPrefix(img.ChainIDs[i], "sha256:")), unix.LOCK_EX)
		if err != nil {
			return fmt.Errorf("unpack %s: %w", shortID(img.ID), err)
		}
		defer unlock()
	}
	pend := make([]*pendingLayer, len(img.ChainIDs))
	defer func() {
		for _, p := range pend {
			p.abort()
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(min(defaultParallel, runtime.NumCPU()))
	for _, i := range missing {
		chain := img.ChainIDs[i]
		if s.hasLayer(chain) { // unpacked by another command while this one waited for the lock
			continue
		}
		g.Go(func() error {
			d := m.Layers[i]
			rc, err := s.openLayerBlob(d.Digest.String(), d.Size, chain)
			if err != nil {
				return fmt.Errorf("layer %s is not unpacked and its blob cannot be read: %w", shortID(chain), err)
			}
			defer rc.Close()
			ur, _, done, err := openLayer(bufio.NewReaderSize(rc, 256<<10))
			if err != nil {
				return fmt.Errorf("layer %s: %w", shortID(chain), err)
			}
			defer done()
			u, err := s.unpackTo(gctx, ur, img.Layers[i], false)
			if err != nil {
				return fmt.Errorf("layer %s: %w", shortID(chain), err)
			}
			pend[i] = &pendingLayer{dir: u.dir, chain: chain}
			return writeLayerMeta(u.dir, layerMeta{ChainID: chain, DiffID: img.Layers[i], Parent: parentChain(img.ChainIDs, i), Size: u.size})
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("unpack %s: %w", shortID(img.ID), err)
	}
	if err := s.commitPending(pend); err != nil {
		return fmt.Errorf("unpack %s: %w", shortID(img.ID), err)
	}
	return nil
}
