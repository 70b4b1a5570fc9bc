package storage

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
)

// ImportOptions control Import and ImportDir.
type ImportOptions struct {
	Ref     string   // optional name:tag for the new image
	Changes []string // Dockerfile-style instructions: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, ONBUILD, HEALTHCHECK
	Message string   // history comment
}

// CreateOptions describe a new image made from a parent, an optional new layer and a config.
// This is what a Dockerfile builder and commit use.
type CreateOptions struct {
	Parent    string      // parent image (ref or ID); "" for scratch
	Layer     io.Reader   // new layer as a tar (optionally gzip), OCI whiteouts; nil: no new layer
	Config    ImageConfig // the complete config of the new image (start from the parent's)
	CreatedBy string      // history: the instruction, e.g. "RUN make"
	Comment   string      // history comment
	Author    string
	Created   time.Time // zero: now
	Refs      []string  // names to tag the new image with
}

// Import makes a one-layer image from a root filesystem tar (optionally gzip-compressed).
func (s *Store) Import(ctx context.Context, r io.Reader, opt ImportOptions) (Image, error) {
	cfg, err := ParseChanges(ImageConfig{}, opt.Changes)
	if err != nil {
		return Image{}, err
	}
	co := CreateOptions{Layer: r, Config: cfg, Comment: opt.Message}
	if co.Comment == "" {
		co.Comment = "Imported by berth"
	}
	if opt.Ref != "" {
		co.Refs = []string{opt.Ref}
	}
	return s.Create(ctx, co)
}

// ImportDir makes a one-layer image from the contents of a directory.
func (s *Store) ImportDir(ctx context.Context, dir string, opt ImportOptions) (Image, error) {
	f, err := os.Create(s.scratch("dirtar-"))
	if err != nil {
		return Image{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := WriteTar(ctx, bw, dir, false); err != nil {
		return Image{}, err
	}
	if err := bw.Flush(); err != nil {
		return Image{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Image{}, err
	}
	return s.Import(ctx, f, opt)
}

// decompress returns r uncompressed if it is gzip; otherwise r as is.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, _ := br.Peek(3)
	if len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	}
	if len(magic) >= 3 && magic[0] == 'B' && magic[1] == 'Z' && magic[2] == 'h' {
		return nil, nil, fmt.Errorf("bzip2 layers are not supported; use an uncompressed or gzip tar: %w", ErrInvalidFormat)
	}
	return br, func() {}, nil
}

var dockerToOCI = map[types.MediaType]types.MediaType{
	types.DockerLayer:             types.OCILayer,
	types.DockerUncompressedLayer: types.OCIUncompressedLayer,
	types.DockerForeignLayer:      types.OCIRestrictedLayer,
}

// Create makes a new image from opt: the parent's layers plus opt.Layer (if set), with
// opt.Config, a new history entry, and tags opt.Refs.
func (s *Store) Create(ctx context.Context, opt CreateOptions) (Image, error) {
	var refs []string
	for _, r := range opt.Refs {
		n, err := NormalizeRef(r)
		if err != nil {
			return Image{}, err
		}
		refs = append(refs, n)
	}
	unlock, err := s.ingestLock(false)
	if err != nil {
		return Image{}, err
	}
	defer unlock()

	plat := hostPlatform()
	cf := &v1.ConfigFile{OS: plat.OS, Architecture: plat.Architecture, Variant: plat.Variant, RootFS: v1.RootFS{Type: "layers"}}
	var layers []v1.Descriptor
	parentID := ""
	if opt.Parent != "" {
		pimg, err := s.Resolve(ctx, opt.Parent)
		if err != nil {
			return Image{}, fmt.Errorf("parent image: %w", err)
		}
		parentID = pimg.ID
		cb, err := s.readBlob(pimg.ID)
		if err != nil {
			return Image{}, err
		}
		if cf, _, err = parseConfig(cb); err != nil {
			return Image{}, err
		}
		m, err := s.readManifest(pimg.ManifestDigest)
		if err != nil {
			return Image{}, err
		}
		for _, l := range m.Layers {
			if mt, ok := dockerToOCI[l.MediaType]; ok {
				l.MediaType = mt
			}
			layers = append(layers, l)
		}
	}
	diffs := make([]string, 0, len(cf.RootFS.DiffIDs)+1)
	for _, d := range cf.RootFS.DiffIDs {
		diffs = append(diffs, d.String())
	}
	created := opt.Created
	if created.IsZero() {
		created = time.Now().UTC()
	}
	if opt.Layer != nil {
		desc, err := s.importLayer(ctx, opt.Layer, func(diff string) (string, string) {
			chains := ChainIDs(append(append([]string{}, diffs...), diff))
			parent := ""
			if len(chains) > 1 {
				parent = chains[len(chains)-2]
			}
			return chains[len(chains)-1], parent
		})
		if err != nil {
			return Image{}, fmt.Errorf("import layer: %w", err)
		}
		layers = append(layers, desc)
		// The digest of an uncompressed layer is its diff ID.
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, desc.Digest)
	}
	cf.RootFS.Type = "layers"
	cf.Created = v1.Time{Time: created}
	if opt.Author != "" {
		cf.Author = opt.Author
	}
	cf.History = append(cf.History, v1.History{Created: v1.Time{Time: created}, CreatedBy: opt.CreatedBy, Comment: opt.Comment, Author: opt.Author, EmptyLayer: opt.Layer == nil})
	applyImageConfig(&cf.Config, opt.Config)
	id, err := s.commitImage(cf, opt.Config.Healthcheck, layers, parentID, refs)
	if err != nil {
		return Image{}, err
	}
	return s.Resolve(ctx, id)
}

// CommitOptions control Commit.
type CommitOptions struct {
	Config    ImageConfig // the new image's complete config
	Refs      []string
	Comment   string
	Author    string
	CreatedBy string
}

// Commit makes a new image from a container's image plus the changes in its writable layer.
func (s *Store) Commit(ctx context.Context, containerID string, opt CommitOptions) (Image, error) {
	rec, err := s.readMountRecord(containerID)
	if err != nil {
		return Image{}, err
	}
	return s.CreateFromDir(ctx, rec.ImageID, s.UpperDir(containerID), CreateOptions{
		Config: opt.Config, Refs: opt.Refs, Comment: opt.Comment, Author: opt.Author, CreatedBy: opt.CreatedBy,
	})
}

// CreateFromDir makes a new image from parent plus the overlay upper directory upper as its new
// layer (overlay whiteouts and opaque directories become OCI ones). opt.Parent and opt.Layer
// are ignored.
func (s *Store) CreateFromDir(ctx context.Context, parent, upper string, opt CreateOptions) (Image, error) {
	f, err := os.Create(s.scratch("diff-"))
	if err != nil {
		return Image{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := WriteTar(ctx, bw, upper, true); err != nil {
		return Image{}, err
	}
	if err := bw.Flush(); err != nil {
		return Image{}, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Image{}, err
	}
	opt.Parent, opt.Layer = parent, f
	return s.Create(ctx, opt)
}

// ParseChanges applies Dockerfile-style instructions (as `docker import --change` takes them)
// to base and returns the result.
func ParseChanges(base ImageConfig, changes []string) (ImageConfig, error) {
	c := base
	for _, ch := range changes {
		ch = strings.TrimSpace(ch)
		if ch == "" {
			continue
		}
		instr, rest, _ := strings.Cut(ch, " ")
		rest = strings.TrimSpace(rest)
		bad := func(msg string) error {
			return fmt.Errorf("--change %q: %s: %w", ch, msg, ErrInvalidFormat)
		}
		switch strings.ToUpper(instr) {
		case "CMD":
			c.Cmd = parseExecOrShell(rest)
		case "ENTRYPOINT":
			c.Entrypoint = parseExecOrShell(rest)
		case "ENV":
			kv, err := parseKeyValues(rest)
			if err != nil {
				return c, bad(err.Error())
			}
			for _, p := range kv {
				c.Env = setEnv(c.Env, p[0], p[1])
			}
		case "LABEL":
			kv, err := parseKeyValues(rest)
			if err != nil {
				return c, bad(err.Error())
			}
			labels := map[string]string{}
			for k, v := range c.Labels {
				labels[k] = v
			}
			for _, p := range kv {
				labels[p[0]] = p[1]
			}
			c.Labels = labels
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				if !contains(c.ExposedPorts, p) {
					c.ExposedPorts = append(c.ExposedPorts, p)
				}
			}
		case "VOLUME":
			vols := strings.Fields(rest)
			if strings.HasPrefix(rest, "[") {
				if err := json.Unmarshal([]byte(rest), &vols); err != nil {
					return c, bad("not a JSON array")
				}
			}
			for _, v := range vols {
				if !contains(c.Volumes, v) {
					c.Volumes = append(c.Volumes, v)
				}
			}
		case "USER":
			c.User = rest
		case "WORKDIR":
			if !filepath.IsAbs(rest) {
				rest = filepath.Join("/", c.WorkingDir, rest)
			}
			c.WorkingDir = rest
		case "STOPSIGNAL":
			c.StopSignal = rest
		case "ONBUILD":
			c.OnBuild = append(c.OnBuild, rest)
		case "SHELL":
			var sh []string
			if err := json.Unmarshal([]byte(rest), &sh); err != nil {
				return c, bad("SHELL needs a JSON array")
			}
			c.Shell = sh
		case "HEALTHCHECK":
			hc, err := parseHealthcheck(rest)
			if err != nil {
				return c, bad(err.Error())
			}
			c.Healthcheck = hc
		default:
			return c, bad("unsupported instruction (use CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, SHELL, STOPSIGNAL, USER, VOLUME, WORKDIR)")
		}
	}
	return c, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func setEnv(env []string, k, v string) []string {
	out := make([]string, 0, len(env)+1)
	for _, e := range env {
		if n, _, _ := strings.Cut(e, "="); n != k {
			out = append(out, e)
		}
	}
	return append(out, k+"="+v)
}

func parseExecOrShell(s string) []string {
	if strings.HasPrefix(s, "[") {
		var l []string
		if json.Unmarshal([]byte(s), &l) == nil {
			return l
		}
	}
	return []string{"/bin/sh", "-c", s}
}

// parseKeyValues parses `k=v k2="v 2"` or the legacy `k v` form.
func parseKeyValues(s string) ([][2]string, error) {
	if !strings.Contains(strings.SplitN(s, " ", 2)[0], "=") {
		k, v, _ := strings.Cut(s, " ")
		if k == "" {
			return nil, fmt.Errorf("missing name")
		}
		return [][2]string{{k, strings.TrimSpace(v)}}, nil
	}
	var out [][2]string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		k, rest, ok := strings.Cut(s, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("expected NAME=VALUE at %q", s)
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := 1
			for end < len(rest) && (rest[end] != '"' || rest[end-1] == '\\') {
				end++
			}
			if end >= len(rest) {
				return nil, fmt.Errorf("unterminated quote in %q", s)
			}
			u, err := strconv.Unquote(rest[:end+1])
			if err != nil {
				u = rest[1:end]
			}
			v, s = u, rest[end+1:]
		} else {
			v, s, _ = strings.Cut(rest, " ")
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

func parseHealthcheck(s string) (*Healthcheck, error) {
	if strings.EqualFold(strings.TrimSpace(s), "NONE") {
		return &Healthcheck{Test: []string{"NONE"}}, nil
	}
	hc := &Healthcheck{}
	f := strings.Fields(s)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		f = f[1:]
		var err error
		switch k {
		case "interval":
			hc.Interval, err = time.ParseDuration(v)
		case "timeout":
			hc.Timeout, err = time.ParseDuration(v)
		case "start-period":
			hc.StartPeriod, err = time.ParseDuration(v)
		case "start-interval":
			hc.StartInterval, err = time.ParseDuration(v)
		case "retries":
			hc.Retries, err = strconv.Atoi(v)
		default:
			return nil, fmt.Errorf("unknown HEALTHCHECK option --%s", k)
		}
		if err != nil {
			return nil, fmt.Errorf("HEALTHCHECK --%s: %v", k, err)
		}
	}
	if len(f) == 0 || !strings.EqualFold(f[0], "CMD") {
		return nil, fmt.Errorf("HEALTHCHECK needs CMD or NONE")
	}
	cmd := strings.TrimSpace(strings.Join(f[1:], " "))
	if strings.HasPrefix(cmd, "[") {
		var l []string
		if err := json.Unmarshal([]byte(cmd), &l); err != nil {
			return nil, fmt.Errorf("HEALTHCHECK CMD: %v", err)
		}
		hc.Test = append([]string{"CMD"}, l...)
	} else {
		hc.Test = []string{"CMD-SHELL", cmd}
	}
	return hc, nil
}

func newGzipReader(r io.Reader) (*gzip.Reader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return zr, nil
}
