package storage

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// SaveFormat selects what Save writes.
type SaveFormat string

const (
	// SaveDocker writes an archive `docker load` reads (manifest.json) that is also an OCI image
	// layout (oci-layout, index.json, blobs/), like Docker 25+.
	SaveDocker SaveFormat = "docker"
	// SaveOCI writes an OCI image layout archive only.
	SaveOCI SaveFormat = "oci"
)

type dockerManifestEntry struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

// Save writes the images that refs resolve to as a tar archive to w. References given by name
// are recorded as such; images given by ID are saved with all their tags.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string, format SaveFormat) error {
	if format == "" {
		format = SaveDocker
	}
	if format != SaveDocker && format != SaveOCI {
		return fmt.Errorf("save format %q: use docker or oci: %w", format, ErrInvalidFormat)
	}
	type item struct {
		img  Image
		tags []string // normalized
	}
	var items []*item
	byID := map[string]*item{}
	for _, r := range refs {
		img, err := s.Resolve(ctx, r)
		if err != nil {
			return fmt.Errorf("save: %w", err)
		}
		it := byID[img.ID]
		if it == nil {
			it = &item{img: img}
			byID[img.ID] = it
			items = append(items, it)
		}
		if n, err := NormalizeRef(r); err == nil && !strings.Contains(n, "@") && containsFamiliar(img.RepoTags, n) {
			it.tags = append(it.tags, n)
		} else {
			for _, t := range img.RepoTags {
				n, _ := NormalizeRef(t)
				it.tags = append(it.tags, n)
			}
		}
	}
	tw := tar.NewWriter(w)
	written := map[string]bool{}
	mtime := time.Unix(0, 0)
	addDir := func(name string) error {
		if written[name] {
			return nil
		}
		written[name] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX})
	}
	addBytes := func(name string, b []byte) error {
		if written[name] {
			return nil
		}
		written[name] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	// addBlob adds the blob digest: stored, or (layers: chain set) rebuilt from the layer's
	// tree, size bytes, verified while it is written.
	addBlob := func(digest string, size int64, chain string) error {
		name := "blobs/sha256/" + strings.TrimPrefix(digest, "sha256:")
		if written[name] {
			return nil
		}
		var rc io.ReadCloser
		var err error
		if chain != "" {
			rc, err = s.openLayerBlob(digest, size, chain)
		} else {
			var p string
			if p, err = s.BlobPath(digest); err == nil {
				rc, err = os.Open(p)
			}
		}
		if err != nil {
			return fmt.Errorf("save: blob %s: %w", digest, err)
		}
		defer rc.Close()
		if f, ok := rc.(*os.File); ok {
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			size = fi.Size()
		}
		written[name] = true
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, rc); err != nil {
			return fmt.Errorf("save: blob %s: %w", digest, err)
		}
		return nil
	}
	if err := addDir("blobs/"); err != nil {
		return err
	}
	if err := addDir("blobs/sha256/"); err != nil {
		return err
	}
	var index v1.IndexManifest
	index.SchemaVersion = 2
	index.MediaType = types.OCIImageIndex
	var dms []dockerManifestEntry
	for _, it := range items {
		if err := ctx.Err(); err != nil {
			return err
		}
		mb, err := s.readBlob(it.img.ManifestDigest)
		if err != nil {
			return err
		}
		var m v1.Manifest
		if err := json.Unmarshal(mb, &m); err != nil {
			return err
		}
		dm := dockerManifestEntry{Config: "blobs/sha256/" + strings.TrimPrefix(it.img.ID, "sha256:")}
		if len(m.Layers) != len(it.img.ChainIDs) {
			return fmt.Errorf("save: image %s: the manifest has %d layers, the config %d: %w", shortID(it.img.ID), len(m.Layers), len(it.img.ChainIDs), ErrInvalidFormat)
		}
		for i, l := range m.Layers {
			if err := addBlob(l.Digest.String(), l.Size, it.img.ChainIDs[i]); err != nil {
				return err
			}
			dm.Layers = append(dm.Layers, "blobs/sha256/"+l.Digest.Hex)
		}
		if err := addBlob(it.img.ID, 0, ""); err != nil {
			return err
		}
		if err := addBlob(it.img.ManifestDigest, 0, ""); err != nil {
			return err
		}
		mh, _ := v1.NewHash(it.img.ManifestDigest)
		mt := m.MediaType
		if mt == "" {
			mt = types.OCIManifestSchema1
		}
		desc := v1.Descriptor{MediaType: mt, Size: int64(len(mb)), Digest: mh}
		if len(it.tags) == 0 {
			index.Manifests = append(index.Manifests, desc)
		}
		for _, t := range it.tags {
			d := desc
			_, tag := splitRepoTag(t)
			d.Annotations = map[string]string{"io.containerd.image.name": t, "org.opencontainers.image.ref.name": tag}
			index.Manifests = append(index.Manifests, d)
			dm.RepoTags = append(dm.RepoTags, FamiliarRef(t))
		}
		dms = append(dms, dm)
	}
	if err := addBytes("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	ib, _ := json.Marshal(index)
	if err := addBytes("index.json", ib); err != nil {
		return err
	}
	if format == SaveDocker {
		db, _ := json.Marshal(dms)
		if err := addBytes("manifest.json", db); err != nil {
			return err
		}
	}
	return tw.Close()
}

func containsFamiliar(tags []string, normalized string) bool {
	for _, t := range tags {
		if n, _ := NormalizeRef(t); n == normalized {
			return true
		}
	}
	return false
}

// LoadOptions control Load.
type LoadOptions struct {
	Progress func(Progress)
	Platform string // for multi-platform OCI indexes; "" is the host's
}

// archive gives access to the files of an archive or a layout directory.
type archive interface {
	open(name string) (io.ReadCloser, error)
}

type dirArchive string

func (d dirArchive) open(name string) (io.ReadCloser, error) {
	name, err := archiveName(name)
	if err != nil {
		return nil, err
	}
	// Resolve inside the directory: no symlink may lead out.
	p := filepath.Join(string(d), filepath.FromSlash(name))
	rp, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, ErrInvalidFormat)
	}
	root, _ := filepath.EvalSymlinks(string(d))
	if !strings.HasPrefix(rp, root+string(filepath.Separator)) {
		return nil, fmt.Errorf("%s points outside the layout: %w", name, ErrInvalidFormat)
	}
	return os.Open(rp)
}

type tarArchive struct {
	f     *os.File
	files map[string][2]int64 // name -> offset, size
}

func (t *tarArchive) open(name string) (io.ReadCloser, error) {
	name, err := archiveName(name)
	if err != nil {
		return nil, err
	}
	e, ok := t.files[name]
	if !ok {
		return nil, fmt.Errorf("archive has no %s: %w", name, ErrInvalidFormat)
	}
	return io.NopCloser(io.NewSectionReader(t.f, e[0], e[1])), nil
}

func archiveName(n string) (string, error) {
	c := path.Clean(strings.TrimLeft(n, "/"))
	if c == ".." || strings.HasPrefix(c, "../") || c == "." {
		return "", fmt.Errorf("archive path %q: %w", n, ErrInvalidFormat)
	}
	return c, nil
}

// indexTar records where each regular file's data starts in f (tar.Reader reads headers
// straight from f, so the file offset after Next is the data offset).
func indexTar(f *os.File) (*tarArchive, error) {
	ta := &tarArchive{f: f, files: map[string][2]int64{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return ta, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read archive: %v: %w", err, ErrInvalidFormat)
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA {
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		if n, err := archiveName(h.Name); err == nil {
			ta.files[n] = [2]int64{off, h.Size}
		}
	}
}

// Load reads a Docker save archive, an OCI image layout archive (both as tar, optionally
// gzip) or, when path names a directory, an OCI image layout directory, and stores every
// image in it. r is used when path is "" or "-".
func (s *Store) Load(ctx context.Context, r io.Reader, path string, opt LoadOptions) ([]Image, error) {
	var ar archive
	if path != "" && path != "-" {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		if fi.IsDir() {
			ar = dirArchive(path)
		} else {
			f, err := os.Open(path)
			if err != nil {
				return nil, fmt.Errorf("load: %w", err)
			}
			defer f.Close()
			r = f
		}
	}
	if ar == nil {
		// Spool (decompressed) to a scratch file for random access.
		dr, done, err := decompress(r)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		defer done()
		f, err := os.Create(s.scratch("load-"))
		if err != nil {
			return nil, err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		if _, err := io.Copy(f, dr); err != nil {
			return nil, fmt.Errorf("load: read archive: %w", err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		ta, err := indexTar(f)
		if err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		ar = ta
	}
	ids, err := s.loadArchive(ctx, ar, opt)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var out []Image
	for _, id := range ids {
		img, err := s.Resolve(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, img)
	}
	return out, nil
}

func readAll(ar archive, name string, limit int64) ([]byte, error) {
	rc, err := ar.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", name, limit, ErrInvalidFormat)
	}
	return b, nil
}

const maxJSON = 16 << 20

func (s *Store) loadArchive(ctx context.Context, ar archive, opt LoadOptions) ([]string, error) {
	if ib, err := readAll(ar, "index.json", maxJSON); err == nil {
		return s.loadOCI(ctx, ar, ib, opt)
	}
	mb, err := readAll(ar, "manifest.json", maxJSON)
	if err != nil {
		return nil, fmt.Errorf("neither index.json (OCI) nor manifest.json (Docker) found: %w", ErrInvalidFormat)
	}
	var dms []dockerManifestEntry
	if err := json.Unmarshal(mb, &dms); err != nil {
		return nil, fmt.Errorf("manifest.json: %v: %w", err, ErrInvalidFormat)
	}
	var ids []string
	for _, dm := range dms {
		cb, err := readAll(ar, dm.Config, maxJSON)
		if err != nil {
			return nil, err
		}
		var refs []string
		for _, t := range dm.RepoTags {
			n, err := NormalizeRef(t)
			if err != nil {
				return nil, err
			}
			refs = append(refs, n)
		}
		layers := make([]v1.Descriptor, len(dm.Layers))
		for i, lp := range dm.Layers {
			// Docker 25+ names layers blobs/sha256/<digest>: use it to skip known blobs.
			if hexd, ok := strings.CutPrefix(path.Clean(lp), "blobs/sha256/"); ok && len(hexd) == 64 && isHex(hexd) {
				layers[i].Digest = v1.Hash{Algorithm: "sha256", Hex: hexd}
			}
		}
		paths := dm.Layers
		id, err := s.ingest(ctx, imageSource{config: cb, layers: layers, open: func(ctx context.Context, i int) (io.ReadCloser, error) {
			return ar.open(paths[i])
		}}, ingestOptions{refs: refs, progress: opt.Progress, unpack: true})
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func blobName(h v1.Hash) (string, error) {
	if h.Algorithm != "sha256" || len(h.Hex) != 64 || !isHex(h.Hex) {
		return "", fmt.Errorf("digest %s: %w", h, ErrInvalidFormat)
	}
	return "blobs/sha256/" + h.Hex, nil
}

func (s *Store) loadOCI(ctx context.Context, ar archive, ib []byte, opt LoadOptions) ([]string, error) {
	var idx v1.IndexManifest
	if err := json.Unmarshal(ib, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %v: %w", err, ErrInvalidFormat)
	}
	plat, err := ParsePlatform(opt.Platform)
	if err != nil {
		return nil, err
	}
	var ids []string
	seen := map[string]bool{}
	for _, d := range idx.Manifests {
		var refs []string
		if n := d.Annotations["io.containerd.image.name"]; n != "" {
			if nr, err := NormalizeRef(n); err == nil {
				refs = append(refs, nr)
			}
		} else if n := d.Annotations["org.opencontainers.image.ref.name"]; n != "" {
			if nr, err := NormalizeRef(n); err == nil && strings.ContainsAny(n, "/:") {
				refs = append(refs, nr)
			}
		}
		md, err := s.pickManifest(ar, d, plat, 0)
		if err != nil {
			return nil, err
		}
		if seen[md.Digest.String()] && len(refs) == 0 {
			continue
		}
		seen[md.Digest.String()] = true
		id, err := s.loadOCIManifest(ctx, ar, md, refs, opt)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || ids[i-1] != id {
			out = append(out, id)
		}
	}
	return out, nil
}

// pickManifest follows nested indexes to the platform's image manifest.
func (s *Store) pickManifest(ar archive, d v1.Descriptor, plat v1.Platform, depth int) (v1.Descriptor, error) {
	if !d.MediaType.IsIndex() {
		return d, nil
	}
	if depth > 4 {
		return d, fmt.Errorf("indexes nested too deep: %w", ErrInvalidFormat)
	}
	bn, err := blobName(d.Digest)
	if err != nil {
		return d, err
	}
	b, err := readAll(ar, bn, maxJSON)
	if err != nil {
		return d, err
	}
	if digestOf(b) != d.Digest.String() {
		return d, fmt.Errorf("index %s: %w", d.Digest, ErrDigest)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(b, &idx); err != nil {
		return d, fmt.Errorf("index %s: %v: %w", d.Digest, err, ErrInvalidFormat)
	}
	for _, m := range idx.Manifests {
		if m.MediaType.IsIndex() {
			if r, err := s.pickManifest(ar, m, plat, depth+1); err == nil {
				return r, nil
			}
			continue
		}
		if m.Platform == nil || (m.Platform.OS == plat.OS && m.Platform.Architecture == plat.Architecture && (plat.Variant == "" || m.Platform.Variant == "" || m.Platform.Variant == plat.Variant)) {
			if m.Platform == nil && len(idx.Manifests) > 1 {
				continue
			}
			return m, nil
		}
	}
	return d, fmt.Errorf("index %s has no image for %s: %w", d.Digest, plat.String(), ErrNotFound)
}

func (s *Store) loadOCIManifest(ctx context.Context, ar archive, d v1.Descriptor, refs []string, opt LoadOptions) (string, error) {
	bn, err := blobName(d.Digest)
	if err != nil {
		return "", err
	}
	mb, err := readAll(ar, bn, maxJSON)
	if err != nil {
		return "", err
	}
	if digestOf(mb) != d.Digest.String() {
		return "", fmt.Errorf("manifest %s: %w", d.Digest, ErrDigest)
	}
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return "", fmt.Errorf("manifest %s: %v: %w", d.Digest, err, ErrInvalidFormat)
	}
	cn, err := blobName(m.Config.Digest)
	if err != nil {
		return "", err
	}
	cb, err := readAll(ar, cn, maxJSON)
	if err != nil {
		return "", err
	}
	for _, l := range m.Layers {
		if _, err := blobName(l.Digest); err != nil {
			return "", err
		}
	}
	return s.ingest(ctx, imageSource{manifest: mb, config: cb, layers: m.Layers, open: func(ctx context.Context, i int) (io.ReadCloser, error) {
		n, _ := blobName(m.Layers[i].Digest)
		return ar.open(n)
	}}, ingestOptions{refs: refs, progress: opt.Progress, unpack: true})
}
