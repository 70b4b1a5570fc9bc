package storage

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sync/errgroup"
)

// Progress is one step of a pull, push or load, per layer. Renderers print Status lines.
type Progress struct {
	ID      string // short layer digest (12 hex) or short image ID
	Status  string // "Pulling fs layer", "Already exists", "Downloading", "Verifying Checksum", "Extracting", "Pull complete", "Pushing", "Pushed", "Loaded"
	Current int64  // bytes done, when known
	Total   int64  // bytes total, when known
}

// imageSource is an image being ingested: its manifest (raw, may be nil for Docker archives,
// then one is made), config and a way to open each layer blob.
type imageSource struct {
	manifest []byte
	config   []byte
	layers   []v1.Descriptor // Digest may be empty when unknown (Docker archives)
	open     func(ctx context.Context, i int) (io.ReadCloser, error)
}

type ingestOptions struct {
	refs        []string // normalized
	repoDigests []string // normalized name@digest
	progress    func(Progress)
	parallel    int
}

// ingest stores an image: every layer blob verified against its digest and unpacked (its diff
// ID verified against the config), then config and manifest, then the index record. Layers
// already present are neither fetched nor unpacked again. It returns the image ID.
func (s *Store) ingest(ctx context.Context, src imageSource, opt ingestOptions) (string, error) {
	unlock, err := s.ingestLock(false)
	if err != nil {
		return "", err
	}
	defer unlock()
	prog := opt.progress
	if prog == nil {
		prog = func(Progress) {}
	}
	cf, _, err := parseConfig(src.config)
	if err != nil {
		return "", err
	}
	var diffs []string
	for _, d := range cf.RootFS.DiffIDs {
		diffs = append(diffs, d.String())
	}
	if len(diffs) != len(src.layers) {
		return "", fmt.Errorf("image has %d layers but its config lists %d diff IDs: %w", len(src.layers), len(diffs), ErrInvalidFormat)
	}
	var man *v1.Manifest
	if src.manifest != nil {
		if err := json.Unmarshal(src.manifest, &man); err != nil {
			return "", fmt.Errorf("manifest: %v: %w", err, ErrInvalidFormat)
		}
		cd := digestOf(src.config)
		if man.Config.Digest.String() != cd {
			return "", fmt.Errorf("config: manifest says %s, content is %s: %w", man.Config.Digest, cd, ErrDigest)
		}
	}
	chains := ChainIDs(diffs)
	layers := append([]v1.Descriptor(nil), src.layers...)
	g, gctx := errgroup.WithContext(ctx)
	par := opt.parallel
	if par <= 0 {
		par = 3
	}
	g.SetLimit(par)
	for i := range layers {
		g.Go(func() error {
			d := &layers[i]
			id := shortID(d.Digest.String())
			if d.Digest.Hex == "" {
				id = shortID(diffs[i])
			}
			if d.Digest.Hex != "" && s.hasBlob(d.Digest.String()) && s.hasLayer(chains[i]) {
				prog(Progress{ID: id, Status: "Already exists"})
				return nil
			}
			prog(Progress{ID: id, Status: "Pulling fs layer", Total: d.Size})
			rc, err := src.open(gctx, i)
			if err != nil {
				return fmt.Errorf("layer %s: %w", id, err)
			}
			defer rc.Close()
			digest, size, mt, err := s.storeLayer(gctx, rc, *d, diffs[i], chains[i], parentChain(chains, i), func(n int64) {
				prog(Progress{ID: id, Status: "Downloading", Current: n, Total: d.Size})
			})
			if err != nil {
				return fmt.Errorf("layer %s: %w", id, err)
			}
			h, _ := v1.NewHash(digest)
			d.Digest, d.Size = h, size
			if d.MediaType == "" {
				d.MediaType = mt
			}
			prog(Progress{ID: id, Status: "Pull complete"})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	configDigest, err := s.putBlob(src.config)
	if err != nil {
		return "", err
	}
	mb := src.manifest
	if mb == nil {
		ch, _ := v1.NewHash(configDigest)
		m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1,
			Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(src.config)), Digest: ch}, Layers: layers}
		if m.Layers == nil {
			m.Layers = []v1.Descriptor{}
		}
		for i := range m.Layers {
			if mt, ok := dockerToOCI[m.Layers[i].MediaType]; ok {
				m.Layers[i].MediaType = mt
			}
		}
		if mb, err = json.Marshal(m); err != nil {
			return "", err
		}
	}
	md, err := s.putBlob(mb)
	if err != nil {
		return "", err
	}
	if err := s.addImage(configDigest, md, opt.repoDigests, "", opt.refs); err != nil {
		return "", err
	}
	return configDigest, nil
}

func parentChain(chains []string, i int) string {
	if i == 0 {
		return ""
	}
	return chains[i-1]
}

func digestOf(b []byte) string {
	w := newHasher()
	w.Write(b)
	return w.Digest()
}

// storeLayer reads one layer blob from r, storing it (verified against d.Digest when set) and
// unpacking it in the same pass (verified against diffID). It returns the blob digest, size and
// sniffed media type.
func (s *Store) storeLayer(ctx context.Context, r io.Reader, d v1.Descriptor, diffID, chain, parent string, onBytes func(int64)) (string, int64, types.MediaType, error) {
	bw, err := s.newBlobWriter()
	if err != nil {
		return "", 0, "", err
	}
	defer bw.Abort()
	cr := &countingReader{r: r, every: 1 << 20, fn: onBytes}
	tee := io.TeeReader(cr, bw)
	br := bufio.NewReaderSize(tee, 1<<20)
	magic, _ := br.Peek(4)
	var ur io.Reader = br
	mt := types.OCIUncompressedLayer
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := newGzipReader(br)
		if err != nil {
			return "", 0, "", err
		}
		defer zr.Close()
		ur, mt = zr, types.OCILayer
	case len(magic) >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br)
		if err != nil {
			return "", 0, "", err
		}
		defer zr.Close()
		ur, mt = zr, types.OCILayerZStd
	}
	want := ""
	if d.Digest.Hex != "" {
		want = d.Digest.String()
	}
	_, _, err = s.unpackChecked(ctx, ur, diffID, chain, parent, func() error {
		if _, err := io.Copy(io.Discard, br); err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		if want != "" && bw.Digest() != want {
			return fmt.Errorf("layer blob: expected %s, got %s: %w", want, bw.Digest(), ErrDigest)
		}
		return nil
	})
	if err != nil {
		return "", 0, "", err
	}
	n := bw.n
	digest, err := bw.Commit(want)
	if err != nil {
		return "", 0, "", err
	}
	return digest, n, mt, nil
}

type countingReader struct {
	r     io.Reader
	n     int64
	last  int64
	every int64
	fn    func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.fn != nil && (c.n-c.last >= c.every || (err == io.EOF && c.n != c.last)) {
		c.last = c.n
		c.fn(c.n)
	}
	return n, err
}
