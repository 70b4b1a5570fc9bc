package storage

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image describes one stored image. Values are copies; changing them changes nothing stored.
type Image struct {
	ID             string    // "sha256:<hex>" digest of the config blob
	RepoTags       []string  // familiar form, e.g. "ubuntu:latest"
	RepoDigests    []string  // familiar form, e.g. "ubuntu@sha256:…"
	Parent         string    // image ID this one was built or committed from, if known
	ManifestDigest string    // digest of the stored manifest blob
	Created        time.Time // from the config
	Size           int64     // content size of all layers (a layer not unpacked yet counts with its blob's size)
	Author         string
	OS             string
	Architecture   string
	Variant        string
	Config         ImageConfig
	Layers         []string // diff IDs, base first (RootFS.Layers)
	ChainIDs       []string // chain IDs, base first; layers/<chainhex> on disk
	LayerSizes     []int64  // unpacked size of each layer, base first
	History        []History
}

// ImageConfig is the part of the image config that describes how to run it.
type ImageConfig struct {
	Env          []string          `json:",omitempty"`
	Cmd          []string          `json:",omitempty"`
	Entrypoint   []string          `json:",omitempty"`
	WorkingDir   string            `json:",omitempty"`
	User         string            `json:",omitempty"`
	StopSignal   string            `json:",omitempty"`
	ExposedPorts []string          `json:",omitempty"` // "80/tcp", sorted
	Volumes      []string          `json:",omitempty"` // sorted
	Labels       map[string]string `json:",omitempty"`
	Healthcheck  *Healthcheck      `json:",omitempty"`
	Shell        []string          `json:",omitempty"`
	OnBuild      []string          `json:",omitempty"`
	ArgsEscaped  bool              `json:",omitempty"`
}

// Healthcheck is the image's HEALTHCHECK. Test is {"NONE"}, {"CMD", args...} or
// {"CMD-SHELL", command}; zero durations mean "inherit the default".
type Healthcheck struct {
	Test          []string      `json:",omitempty"`
	Interval      time.Duration `json:",omitempty"`
	Timeout       time.Duration `json:",omitempty"`
	StartPeriod   time.Duration `json:",omitempty"`
	StartInterval time.Duration `json:",omitempty"`
	Retries       int           `json:",omitempty"`
}

// History is one entry of the image's build history.
type History struct {
	Created    time.Time
	CreatedBy  string
	Comment    string
	Author     string
	EmptyLayer bool
}

// configFile is the OCI/Docker image config with the healthcheck's StartInterval, which
// go-containerregistry's type lacks.
type configFile struct {
	v1.ConfigFile
}

type healthJSON struct {
	Test          []string      `json:",omitempty"`
	Interval      time.Duration `json:",omitempty"`
	Timeout       time.Duration `json:",omitempty"`
	StartPeriod   time.Duration `json:",omitempty"`
	StartInterval time.Duration `json:",omitempty"`
	Retries       int           `json:",omitempty"`
}

// parseConfig decodes a config blob, reading the healthcheck with StartInterval too.
func parseConfig(b []byte) (*v1.ConfigFile, *Healthcheck, error) {
	var cf v1.ConfigFile
	if err := json.Unmarshal(b, &cf); err != nil {
		return nil, nil, fmt.Errorf("parse image config: %w", err)
	}
	var raw struct {
		Config struct {
			Healthcheck *healthJSON `json:"Healthcheck"`
		} `json:"config"`
	}
	json.Unmarshal(b, &raw)
	var hc *Healthcheck
	if h := raw.Config.Healthcheck; h != nil {
		hc = &Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout, StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}
	}
	return &cf, hc, nil
}

// marshalConfig encodes cf, writing hc (with StartInterval) as the healthcheck.
func marshalConfig(cf *v1.ConfigFile, hc *Healthcheck) ([]byte, error) {
	cf.Config.Healthcheck = nil
	b, err := json.Marshal(cf)
	if err != nil || hc == nil {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(m["config"], &c); err != nil {
		return nil, err
	}
	hb, _ := json.Marshal(healthJSON(*hc))
	c["Healthcheck"] = hb
	m["config"], _ = json.Marshal(c)
	return json.Marshal(m)
}

func toImageConfig(c v1.Config, hc *Healthcheck) ImageConfig {
	ic := ImageConfig{
		Env: c.Env, Cmd: c.Cmd, Entrypoint: c.Entrypoint, WorkingDir: c.WorkingDir, User: c.User,
		StopSignal: c.StopSignal, Labels: c.Labels, Shell: c.Shell, OnBuild: c.OnBuild,
		ArgsEscaped: c.ArgsEscaped, Healthcheck: hc,
	}
	for p := range c.ExposedPorts {
		ic.ExposedPorts = append(ic.ExposedPorts, p)
	}
	sort.Strings(ic.ExposedPorts)
	for v := range c.Volumes {
		ic.Volumes = append(ic.Volumes, v)
	}
	sort.Strings(ic.Volumes)
	return ic
}

// applyImageConfig writes ic into c, keeping c's fields that ImageConfig does not describe.
func applyImageConfig(c *v1.Config, ic ImageConfig) {
	c.Env, c.Cmd, c.Entrypoint, c.WorkingDir, c.User = ic.Env, ic.Cmd, ic.Entrypoint, ic.WorkingDir, ic.User
	c.StopSignal, c.Labels, c.Shell, c.OnBuild, c.ArgsEscaped = ic.StopSignal, ic.Labels, ic.Shell, ic.OnBuild, ic.ArgsEscaped
	c.ExposedPorts, c.Volumes = nil, nil
	for _, p := range ic.ExposedPorts {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		if c.ExposedPorts == nil {
			c.ExposedPorts = map[string]struct{}{}
		}
		c.ExposedPorts[p] = struct{}{}
	}
	for _, v := range ic.Volumes {
		if c.Volumes == nil {
			c.Volumes = map[string]struct{}{}
		}
		c.Volumes[v] = struct{}{}
	}
}

// ChainIDs computes the chain IDs of a list of diff IDs.
func ChainIDs(diffIDs []string) []string {
	out := make([]string, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		h := sha256.Sum256([]byte(out[i-1] + " " + d))
		out[i] = "sha256:" + hex.EncodeToString(h[:])
	}
	return out
}

// layerMeta is layers/<chainhex>/meta.json.
type layerMeta struct {
	ChainID string `json:"chainID"`
	DiffID  string `json:"diffID"`
	Parent  string `json:"parent,omitempty"` // parent chain ID
	Size    int64  `json:"size"`
	Short   string `json:"short"` // name of the l/<short> symlink to diff/
}

func (s *Store) layerDir(chainID string) string {
	return filepath.Join(s.root, "layers", strings.TrimPrefix(chainID, "sha256:"))
}

func (s *Store) readLayerMeta(chainID string) (layerMeta, error) {
	var m layerMeta
	b, err := os.ReadFile(filepath.Join(s.layerDir(chainID), "meta.json"))
	if err != nil {
		return m, fmt.Errorf("layer %s: %w", chainID, err)
	}
	return m, json.Unmarshal(b, &m)
}

func (s *Store) hasLayer(chainID string) bool {
	_, err := os.Stat(filepath.Join(s.layerDir(chainID), "meta.json"))
	return err == nil
}

// LayerPath returns the unpacked directory (overlay lowerdir) of a layer by chain ID.
func (s *Store) LayerPath(chainID string) string { return filepath.Join(s.layerDir(chainID), "diff") }

// manifestRecord reads the manifest of an image record.
func (s *Store) readManifest(digest string) (*v1.Manifest, error) {
	b, err := s.readBlob(digest)
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", digest, err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", digest, err)
	}
	return &m, nil
}

func (s *Store) loadImage(ix *index, id string) (Image, error) {
	rec, ok := ix.Images[id]
	if !ok {
		return Image{}, fmt.Errorf("image %s: %w", id, ErrNotFound)
	}
	cb, err := s.readBlob(id)
	if err != nil {
		return Image{}, fmt.Errorf("image %s config: %w", id, err)
	}
	cf, hc, err := parseConfig(cb)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: %w", id, err)
	}
	img := Image{
		ID: id, Parent: rec.Parent, ManifestDigest: rec.Manifest, Created: cf.Created.Time,
		Author: cf.Author, OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant,
		Config: toImageConfig(cf.Config, hc),
	}
	for ref, rid := range ix.Refs {
		if rid == id {
			img.RepoTags = append(img.RepoTags, FamiliarRef(ref))
		}
	}
	sort.Strings(img.RepoTags)
	for _, d := range rec.RepoDigests {
		img.RepoDigests = append(img.RepoDigests, FamiliarRef(d))
	}
	for _, d := range cf.RootFS.DiffIDs {
		img.Layers = append(img.Layers, d.String())
	}
	img.ChainIDs = ChainIDs(img.Layers)
	var man *v1.Manifest
	for i, c := range img.ChainIDs {
		var n int64
		if m, err := s.readLayerMeta(c); err == nil {
			n = m.Size
		} else {
			// Not unpacked yet (pulled): estimate from its blob until it is.
			if man == nil {
				man, _ = s.readManifest(rec.Manifest)
			}
			if man != nil && i < len(man.Layers) {
				n = s.unpackedEstimate(man.Layers[i])
			}
		}
		img.Size += n
		img.LayerSizes = append(img.LayerSizes, n)
	}
	for _, h := range cf.History {
		img.History = append(img.History, History{Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment, Author: h.Author, EmptyLayer: h.EmptyLayer})
	}
	return img, nil
}

// ConfigBlob returns the raw config JSON of an image.
func (s *Store) ConfigBlob(ctx context.Context, imageID string) ([]byte, error) {
	return s.readBlob(imageID)
}

// hostPlatform is the platform images are built and imported for.
func hostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	if runtime.GOARCH == "arm64" {
		p.Variant = "v8"
	}
	return p
}

// newLayer is a layer just written by this store: its blob and its unpacked chain.
type newLayer struct {
	BlobDigest string
	BlobSize   int64
	MediaType  types.MediaType
	DiffID     string
}

// commitImage writes config and manifest blobs for cf with the given layers (manifest
// descriptors, base first) and records the image, tagging refs. The caller holds the ingest
// lock.
func (s *Store) commitImage(cf *v1.ConfigFile, hc *Healthcheck, layers []v1.Descriptor, parent string, refs []string) (string, error) {
	cb, err := marshalConfig(cf, hc)
	if err != nil {
		return "", err
	}
	cd, err := s.putBlob(cb)
	if err != nil {
		return "", err
	}
	ch, _ := v1.NewHash(cd)
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Config:        v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(cb)), Digest: ch},
		Layers:        layers,
	}
	if m.Layers == nil {
		m.Layers = []v1.Descriptor{}
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	md, err := s.putBlob(mb)
	if err != nil {
		return "", err
	}
	return cd, s.addImage(cd, md, nil, parent, refs)
}

// addImage records image id with its manifest and points refs (normalized) at it.
func (s *Store) addImage(id, manifest string, repoDigests []string, parent string, refs []string) error {
	return s.update(func(ix *index) error {
		rec := ix.Images[id]
		if rec == nil {
			rec = &imageRecord{Added: time.Now().UTC()}
			ix.Images[id] = rec
		}
		rec.Manifest = manifest
		if parent != "" {
			rec.Parent = parent
		}
		for _, d := range repoDigests {
			found := false
			for _, e := range rec.RepoDigests {
				found = found || e == d
			}
			if !found {
				rec.RepoDigests = append(rec.RepoDigests, d)
			}
		}
		for _, r := range refs {
			ix.Refs[r] = id
		}
		return nil
	})
}

func isExist(err error) bool {
	return errors.Is(err, fs.ErrExist) || errors.Is(err, syscall.ENOTEMPTY)
}

// unpackedEstimate is the size a layer not unpacked yet will have, as far as its blob tells
// without inflating it: a gzip stream ends with the length of its content (modulo 4 GiB), the
// layer tar's length, which is its files' size plus a header per entry; otherwise the blob's
// own size.
func (s *Store) unpackedEstimate(d v1.Descriptor) int64 {
	if d.Size < 18 || d.Size >= 1<<32 { // 18: the smallest gzip stream; 4 GiB: ISIZE wraps
		return d.Size
	}
	p, err := s.BlobPath(d.Digest.String())
	if err != nil {
		return d.Size
	}
	f, err := os.Open(p)
	if err != nil {
		return d.Size
	}
	defer f.Close()
	var head [2]byte
	var tail [4]byte
	if _, err := f.ReadAt(head[:], 0); err != nil || head != [2]byte{0x1f, 0x8b} {
		return d.Size
	}
	if _, err := f.ReadAt(tail[:], d.Size-4); err != nil {
		return d.Size
	}
	n := int64(binary.LittleEndian.Uint32(tail[:]))
	if n < d.Size/2 { // not a plausible tar length (several gzip members, or a wrapped one)
		return d.Size
	}
	return n
}
