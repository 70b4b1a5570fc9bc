package storage

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

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
	// unpack unpacks every layer now; otherwise (lazy) only the blobs are stored, verified
	// against their digests, and each layer is unpacked (and its diff ID verified) the first
	// time something needs its tree (unpackImage).
	unpack bool
}

// ingest stores an image: every layer blob verified against its digest (and, with unpack, the
// layer unpacked and its diff ID verified against the config), then config and manifest, then
// the index record. Layers already present are not fetched again. With unpack, an
// uncompressed layer is stored as its tree and tar-split, without its blob (see tarsplit.go),
// and a compressed one as its blob and its tree. It returns the image ID.
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
	// Every layer is downloaded, verified and unpacked under tmp/ first (in parallel); then one
	// syncfs makes all of it durable and the layers and blobs are renamed into place. Nothing
	// reaches blobs/ or layers/ before its digest matched and its content is on disk.
	pend := make([]*pendingLayer, len(layers))
	defer func() {
		for _, p := range pend {
			p.abort()
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	par := opt.parallel
	if par <= 0 {
		par = defaultParallel
	}
	g.SetLimit(par)
	for i := range layers {
		g.Go(func() error {
			d := &layers[i]
			id := shortID(d.Digest.String())
			if d.Digest.Hex == "" {
				id = shortID(diffs[i])
			}
			if d.Digest.Hex != "" && s.blobAvailable(d.Digest.String(), chains[i]) {
				prog(Progress{ID: id, Status: "Already exists"}) // unpackImage unpacks it if needed
				return nil
			}
			prog(Progress{ID: id, Status: "Pulling fs layer", Total: d.Size})
			rc, err := src.open(gctx, i)
			if err != nil {
				return fmt.Errorf("layer %s: %w", id, err)
			}
			defer rc.Close()
			onBytes := func(n int64) {
				prog(Progress{ID: id, Status: "Downloading", Current: n, Total: d.Size})
			}
			p, err := s.fetchLayer(gctx, rc, *d, diffs[i], chains[i], parentChain(chains, i), opt.unpack, false, onBytes)
			if errors.Is(err, errKeepBlob) {
				// An uncompressed layer its tree cannot rebuild: read it again, keeping the blob.
				rc.Close()
				if rc, err = src.open(gctx, i); err != nil {
					return fmt.Errorf("layer %s: %w", id, err)
				}
				defer rc.Close()
				p, err = s.fetchLayer(gctx, rc, *d, diffs[i], chains[i], parentChain(chains, i), opt.unpack, true, onBytes)
			}
			if err != nil {
				return fmt.Errorf("layer %s: %w", id, err)
			}
			pend[i] = p
			h, _ := v1.NewHash(p.digest)
			d.Digest, d.Size = h, p.n
			if d.MediaType == "" {
				d.MediaType = p.mediaType
			}
			prog(Progress{ID: id, Status: "Pull complete"})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	if err := s.commitPending(pend); err != nil {
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
	if opt.unpack {
		// Layers whose blob was here already but not their tree.
		img, err := s.Resolve(ctx, configDigest)
		if err != nil {
			return "", err
		}
		if err := s.unpackImage(ctx, img); err != nil {
			return "", err
		}
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

// pendingLayer is a layer stored and verified under tmp/ that is not committed yet: its blob
// (nil for an uncompressed layer stored as its tree and tar-split), its unpacked tree, or both.
type pendingLayer struct {
	bw        *blobWriter
	digest    string // the blob's verified digest
	n         int64  // blob size
	mediaType types.MediaType
	dir       string // the unpacked layer under tmp/ with its meta.json; "" if not unpacked
	chain     string
}

// abort removes whatever p left under tmp/. It is a no-op on nil and on a committed layer.
func (p *pendingLayer) abort() {
	if p == nil {
		return
	}
	if p.bw != nil {
		p.bw.Abort()
	}
	if p.dir != "" {
		removeAllMaybeImmutable(p.dir)
		p.dir = ""
	}
}

// openLayer returns the uncompressed stream of a layer blob read from br, by its magic bytes
// (gzip, zstd or a plain tar), and its media type.
func openLayer(br *bufio.Reader) (io.Reader, types.MediaType, func(), error) {
	magic, _ := br.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := newGzipReader(br)
		if err != nil {
			return nil, "", nil, err
		}
		return zr, types.OCILayer, func() { zr.Close() }, nil
	case len(magic) >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, "", nil, err
		}
		return zr, types.OCILayerZStd, zr.Close, nil
	}
	return br, types.OCIUncompressedLayer, func() {}, nil
}

// fetchLayer reads one layer blob from r and stores it under tmp/, verified against d.Digest
// when set. With unpack (and unless the store has layer chain already), it unpacks it in the
// same pass, verified against diffID: an uncompressed layer is then kept as its tree and
// tar-split only (unless the tree cannot rebuild it: errKeepBlob). Nothing is synced or committed:
// commitPending does that for all the layers of an image at once.
//
// keepBlob stores the blob of an uncompressed layer too (after errKeepBlob).
func (s *Store) fetchLayer(ctx context.Context, r io.Reader, d v1.Descriptor, diffID, chain, parent string, unpack, keepBlob bool, onBytes func(int64)) (*pendingLayer, error) {
	p := &pendingLayer{chain: chain}
	ok := false
	defer func() {
		if !ok {
			p.abort()
		}
	}()
	cr := &countingReader{r: r, every: 1 << 20, fn: onBytes}
	unpack = unpack && !s.hasLayer(chain)
	if unpack && !keepBlob {
		br := bufio.NewReaderSize(cr, 256<<10)
		if magic, _ := br.Peek(4); !isCompressed(magic) {
			u, err := s.unpackTo(ctx, br, diffID, true)
			if err != nil {
				return nil, err
			}
			p.dir = u.dir
			if d.Digest.Hex != "" && u.diff != d.Digest.String() {
				return nil, fmt.Errorf("layer blob: expected %s, got %s: %w", d.Digest, u.diff, ErrDigest)
			}
			if err := writeLayerMeta(u.dir, layerMeta{ChainID: chain, DiffID: diffID, Parent: parent, Size: u.size}); err != nil {
				return nil, err
			}
			p.digest, p.n, p.mediaType = u.diff, u.tarSize, types.OCIUncompressedLayer
			if !u.split {
				return nil, errKeepBlob
			}
			ok = true
			return p, nil
		}
		r = br
	} else {
		r = cr
	}
	bw, err := s.newLayerBlobWriter()
	if err != nil {
		return nil, err
	}
	bw.writeback = true // if O_DIRECT is not available
	p.bw = bw
	if !unpack {
		// Only the blob: read the first bytes for the media type, copy the rest.
		br := bufio.NewReaderSize(io.TeeReader(r, bw), 4<<10)
		magic, _ := br.Peek(4)
		p.mediaType = types.OCIUncompressedLayer
		if isCompressed(magic) {
			p.mediaType = types.OCILayer
			if magic[0] == 0x28 {
				p.mediaType = types.OCILayerZStd
			}
		}
		if _, err := io.Copy(io.Discard, br); err != nil {
			return nil, fmt.Errorf("read layer: %w", err)
		}
	} else {
		br := bufio.NewReaderSize(io.TeeReader(r, bw), 256<<10)
		ur, mt, done, err := openLayer(br)
		if err != nil {
			return nil, err
		}
		defer done()
		p.mediaType = mt
		u, err := s.unpackTo(ctx, ur, diffID, false)
		if err != nil {
			return nil, err
		}
		p.dir = u.dir
		if err := writeLayerMeta(u.dir, layerMeta{ChainID: chain, DiffID: diffID, Parent: parent, Size: u.size}); err != nil {
			return nil, err
		}
		// The rest of the blob past the compressed stream: only its bytes matter.
		if _, err := io.Copy(io.Discard, br); err != nil {
			return nil, fmt.Errorf("read layer: %w", err)
		}
	}
	p.digest, p.n = bw.Digest(), bw.n
	if d.Digest.Hex != "" && p.digest != d.Digest.String() {
		return nil, fmt.Errorf("layer blob: expected %s, got %s: %w", d.Digest, p.digest, ErrDigest)
	}
	if err := bw.finish(); err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// errKeepBlob: the layer's tree cannot rebuild its blob, so the blob must be stored too.
var errKeepBlob = errors.New("the layer's blob must be stored")

func isCompressed(magic []byte) bool {
	return len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b ||
		len(magic) >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd
}

// commitPending makes the pending layers durable with one syncfs and moves their blobs and
// layers into place. On error, what was not moved stays pending (the caller aborts it).
func (s *Store) commitPending(pend []*pendingLayer) error {
	n := 0
	for _, p := range pend {
		if p != nil {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	// Short links first: a dangling one (if the process dies before the rename) is harmless
	// and reused by the next pull of the layer.
	for _, p := range pend {
		if p != nil && p.dir != "" {
			if err := s.linkShort(shortName(p.chain), p.chain); err != nil {
				return err
			}
		}
	}
	if err := syncFS(s.root); err != nil {
		return err
	}
	for _, p := range pend {
		if p == nil {
			continue
		}
		if p.bw != nil {
			if _, err := p.bw.commit(p.digest, true); err != nil {
				return err
			}
		}
		if p.dir != "" {
			if err := s.placeLayer(p.dir, p.chain); err != nil {
				return err
			}
			p.dir = ""
		}
	}
	for _, d := range []string{filepath.Join(s.root, "blobs", "sha256"), filepath.Join(s.root, "layers"), filepath.Join(s.root, "l"), filepath.Join(s.root, "tmp", s.session)} {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
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
