package storage

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RegistryOptions are shared by Pull, Push and Login.
type RegistryOptions struct {
	// Insecure allows plain HTTP (and unverified TLS is NOT implied). Plain HTTP is always
	// allowed for localhost and loopback addresses.
	Insecure bool
	// AuthFile is the Docker config.json holding credentials; "" means
	// $DOCKER_CONFIG/config.json or ~/.docker/config.json.
	AuthFile string
	// Transport overrides the HTTP transport (tests).
	Transport http.RoundTripper
	// Progress receives per-layer progress. May be nil.
	Progress func(Progress)
	// Parallel bounds concurrent layer transfers (default 3).
	Parallel int
}

// PullOptions control Pull.
type PullOptions struct {
	RegistryOptions
	Platform string // "os/arch[/variant]"; "" is the host's
	// Unpack unpacks every layer during the pull. By default a pull stores the layer blobs
	// only, and each layer is unpacked the first time something needs its files (Mount,
	// Unpack).
	Unpack bool
}

// PushOptions control Push.
type PushOptions struct {
	RegistryOptions
}

// DefaultAuthFile returns the Docker config file credentials are read from and written to.
func DefaultAuthFile() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker", "config.json")
}

func (o RegistryOptions) authFile() string {
	if o.AuthFile != "" {
		return o.AuthFile
	}
	return DefaultAuthFile()
}

// guardTransport refuses plain HTTP to anything but loopback unless the registry is insecure.
type guardTransport struct {
	insecure bool
	next     http.RoundTripper
}

func (g guardTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.insecure && !isLoopbackHost(req.URL.Hostname()) {
		return nil, fmt.Errorf("refusing plain HTTP to %s: use --insecure if this registry has no TLS", req.URL.Host)
	}
	return g.next.RoundTrip(req)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func (o RegistryOptions) remoteOptions(ctx context.Context) []remote.Option {
	next := o.Transport
	if next == nil {
		next = remote.DefaultTransport
	}
	par := o.Parallel
	if par <= 0 {
		par = defaultParallel
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(guardTransport{insecure: o.Insecure, next: next}),
		remote.WithAuthFromKeychain(fileKeychain{path: o.authFile()}),
		remote.WithJobs(par),
		remote.WithUserAgent("berth"),
	}
}

// defaultParallel is how many layers are transferred at once unless RegistryOptions.Parallel
// says otherwise.
const defaultParallel = 4

// pullTransport pings the registry of repo and authenticates for pulling from it (Docker
// config credentials, bearer token when the registry asks for one). The result is a
// transport.Wrapper: go-containerregistry uses it as it is, without a second handshake.
func (o RegistryOptions) pullTransport(ctx context.Context, repo name.Repository) (http.RoundTripper, error) {
	next := o.Transport
	if next == nil {
		next = remote.DefaultTransport
	}
	var t http.RoundTripper = guardTransport{insecure: o.Insecure, next: next}
	t = transport.NewRetry(t)
	t = transport.NewUserAgent(t, "berth")
	auth, err := fileKeychain{path: o.authFile()}.Resolve(repo)
	if err != nil {
		return nil, err
	}
	return transport.NewWithContext(ctx, repo.Registry, auth, t, []string{repo.Scope(transport.PullScope)})
}

// blobFetcher downloads blobs of one repository.
type blobFetcher struct {
	client *http.Client
	repo   name.Repository
}

// open starts the download of the blob d. The body is not verified here: the caller hashes
// it while storing it and commits nothing unless the digest matches. It is cut off with an
// error past d.Size bytes, so a misbehaving registry cannot fill the disk.
func (f blobFetcher) open(ctx context.Context, d v1.Descriptor) (io.ReadCloser, error) {
	u := url.URL{Scheme: f.repo.Scheme(), Host: f.repo.RegistryStr(), Path: "/v2/" + f.repo.RepositoryStr() + "/blobs/" + d.Digest.String()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if err := transport.CheckError(resp, http.StatusOK); err != nil {
		resp.Body.Close()
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if d.Size > 0 && resp.ContentLength >= 0 && resp.ContentLength != d.Size {
		resp.Body.Close()
		return nil, fmt.Errorf("blob %s: the registry sends %d bytes, the manifest says %d: %w", d.Digest, resp.ContentLength, d.Size, ErrDigest)
	}
	if d.Size <= 0 {
		return resp.Body, nil
	}
	return &sizedBody{rc: resp.Body, left: d.Size, digest: d.Digest.String()}, nil
}

// sizedBody fails a read that goes past the size the manifest gave.
type sizedBody struct {
	rc     io.ReadCloser
	left   int64
	digest string
}

func (b *sizedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// Expect EOF; anything more is a blob longer than its descriptor.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("blob %s: longer than the manifest says: %w", b.digest, ErrDigest)
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	if err == io.EOF && b.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *sizedBody) Close() error { return b.rc.Close() }

func (o RegistryOptions) nameOptions() []name.Option {
	if o.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// ParsePlatform parses "os/arch[/variant]"; "" is the host platform.
func ParsePlatform(p string) (v1.Platform, error) {
	if p == "" {
		return hostPlatform(), nil
	}
	pl, err := v1.ParsePlatform(p)
	if err != nil || pl.OS == "" || pl.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("platform %q: want os/arch[/variant], e.g. linux/amd64: %w", p, ErrInvalidRef)
	}
	return *pl, nil
}

// Pull fetches ref from its registry (the platform's image of a multi-platform index), stores
// it and tags it. Layers already present are not downloaded again; every blob is verified.
// Layers are unpacked on first use unless opt.Unpack.
func (s *Store) Pull(ctx context.Context, ref string, opt PullOptions) (Image, error) {
	r, err := parseRef(ref)
	if err != nil {
		return Image{}, err
	}
	if opt.Insecure {
		if r, err = name.ParseReference(refString(r), append(opt.nameOptions(), name.WithDefaultRegistry("docker.io"))...); err != nil {
			return Image{}, fmt.Errorf("reference %q: %v: %w", ref, err, ErrInvalidRef)
		}
	}
	plat, err := ParsePlatform(opt.Platform)
	if err != nil {
		return Image{}, err
	}
	// One authenticated transport for the whole pull: go-containerregistry resolves the
	// manifest through it, and berth downloads the layer blobs through it itself, so that each
	// blob is hashed once, while it is stored (go-containerregistry's reader would hash it again).
	rt, err := opt.pullTransport(ctx, r.Context())
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", FamiliarRef(refString(r)), err)
	}
	par := opt.Parallel
	if par <= 0 {
		par = defaultParallel
	}
	desc, err := remote.Get(r, remote.WithContext(ctx), remote.WithTransport(rt), remote.WithJobs(par), remote.WithPlatform(plat))
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", FamiliarRef(refString(r)), err)
	}
	img, err := desc.Image()
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: platform %s: %w", FamiliarRef(refString(r)), plat.String(), err)
	}
	if cf, err := img.ConfigFile(); err == nil && (desc.MediaType.IsIndex() || opt.Platform != "") {
		if cf.OS != plat.OS || cf.Architecture != plat.Architecture {
			return Image{}, fmt.Errorf("pull %s: the image is for %s/%s, not %s: %w", FamiliarRef(refString(r)), cf.OS, cf.Architecture, plat.String(), ErrNotFound)
		}
	}
	rawMan, err := img.RawManifest()
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: manifest: %w", FamiliarRef(refString(r)), err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: config: %w", FamiliarRef(refString(r)), err)
	}
	m, err := img.Manifest()
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: manifest: %w", FamiliarRef(refString(r)), err)
	}
	if m.Config.Digest.String() != digestOf(rawCfg) {
		return Image{}, fmt.Errorf("pull %s: config digest: %w", FamiliarRef(refString(r)), ErrDigest)
	}
	blobs := blobFetcher{client: &http.Client{Transport: rt}, repo: r.Context()}
	src := imageSource{
		manifest: rawMan, config: rawCfg, layers: m.Layers,
		open: func(ctx context.Context, i int) (io.ReadCloser, error) {
			return blobs.open(ctx, m.Layers[i])
		},
	}
	repo := refRepo(r)
	var refs []string
	if _, ok := r.(name.Tag); ok {
		refs = []string{refString(r)}
	}
	id, err := s.ingest(ctx, src, ingestOptions{
		refs:        refs,
		repoDigests: []string{repo + "@" + desc.Digest.String()},
		progress:    opt.Progress, parallel: opt.Parallel, unpack: opt.Unpack,
	})
	if err != nil {
		return Image{}, fmt.Errorf("pull %s: %w", FamiliarRef(refString(r)), err)
	}
	return s.Resolve(ctx, id)
}

// Push uploads the image that source resolves to as ref (source "" means ref). Blobs the
// registry has are not sent again. It returns the pushed manifest digest.
func (s *Store) Push(ctx context.Context, source, ref string, opt PushOptions) (string, error) {
	if source == "" {
		source = ref
	}
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	if opt.Insecure {
		if r, err = name.ParseReference(refString(r), append(opt.nameOptions(), name.WithDefaultRegistry("docker.io"))...); err != nil {
			return "", fmt.Errorf("reference %q: %v: %w", ref, err, ErrInvalidRef)
		}
	}
	img, err := s.Resolve(ctx, source)
	if err != nil {
		return "", fmt.Errorf("push: %w", err)
	}
	vimg, err := s.v1Image(img, opt.Progress)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", FamiliarRef(refString(r)), err)
	}
	if err := remote.Write(r, vimg, opt.remoteOptions(ctx)...); err != nil {
		return "", fmt.Errorf("push %s: %w", FamiliarRef(refString(r)), err)
	}
	md := img.ManifestDigest
	if err := s.addImage(img.ID, md, []string{refRepo(r) + "@" + md}, "", nil); err != nil {
		return md, err
	}
	return md, nil
}

// storeImage serves a stored image to go-containerregistry (push, save).
type storeImage struct {
	s        *Store
	manifest []byte
	config   []byte
	layers   map[string]v1.Descriptor
	chains   map[string]string // layer digest -> chain ID
	progress func(Progress)
}

func (s *Store) v1Image(img Image, progress func(Progress)) (v1.Image, error) {
	mb, err := s.readBlob(img.ManifestDigest)
	if err != nil {
		return nil, err
	}
	cb, err := s.readBlob(img.ID)
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, err
	}
	if len(m.Layers) != len(img.ChainIDs) {
		return nil, fmt.Errorf("image %s: the manifest has %d layers, the config %d: %w", shortID(img.ID), len(m.Layers), len(img.ChainIDs), ErrInvalidFormat)
	}
	si := &storeImage{s: s, manifest: mb, config: cb, layers: map[string]v1.Descriptor{}, chains: map[string]string{}, progress: progress}
	for i, l := range m.Layers {
		si.layers[l.Digest.String()] = l
		si.chains[l.Digest.String()] = img.ChainIDs[i]
	}
	return partial.CompressedToImage(si)
}

func (i *storeImage) RawConfigFile() ([]byte, error) { return i.config, nil }
func (i *storeImage) RawManifest() ([]byte, error)   { return i.manifest, nil }
func (i *storeImage) MediaType() (types.MediaType, error) {
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
	}
	json.Unmarshal(i.manifest, &m)
	if m.MediaType == "" {
		return types.OCIManifestSchema1, nil
	}
	return m.MediaType, nil
}
func (i *storeImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	d, ok := i.layers[h.String()]
	if !ok {
		return nil, fmt.Errorf("layer %s: %w", h, ErrNotFound)
	}
	return &storeLayer{s: i.s, d: d, chain: i.chains[h.String()], progress: i.progress}, nil
}

type storeLayer struct {
	s        *Store
	d        v1.Descriptor
	chain    string
	progress func(Progress)
}

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.d.Digest, nil }
func (l *storeLayer) Size() (int64, error)                { return l.d.Size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.d.MediaType, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	f, err := l.s.openLayerBlob(l.d.Digest.String(), l.d.Size, l.chain)
	if err != nil {
		return nil, fmt.Errorf("layer blob %s: %w", l.d.Digest, err)
	}
	if l.progress == nil {
		return f, nil
	}
	id := shortID(l.d.Digest.String())
	l.progress(Progress{ID: id, Status: "Pushing", Total: l.d.Size})
	return &progressFile{f: f, cr: &countingReader{r: f, every: 1 << 20, fn: func(n int64) {
		st := "Pushing"
		if n >= l.d.Size {
			st = "Pushed"
		}
		l.progress(Progress{ID: id, Status: st, Current: n, Total: l.d.Size})
	}}}, nil
}

type progressFile struct {
	f  io.ReadCloser
	cr *countingReader
}

func (p *progressFile) Read(b []byte) (int, error) { return p.cr.Read(b) }
func (p *progressFile) Close() error               { return p.f.Close() }

// ---- credentials (Docker config file format) ----

type dockerConfig map[string]json.RawMessage

type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

func readDockerConfig(path string) (dockerConfig, map[string]authEntry, error) {
	cfg := dockerConfig{}
	auths := map[string]authEntry{}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, auths, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	if a, ok := cfg["auths"]; ok {
		if err := json.Unmarshal(a, &auths); err != nil {
			return nil, nil, fmt.Errorf("read %s: auths: %w", path, err)
		}
	}
	return cfg, auths, nil
}

// registryKey is the config.json key for a registry host (Docker Hub's legacy URL for it).
func registryKey(host string) string {
	if host == "docker.io" || host == name.DefaultRegistry || host == "registry-1.docker.io" {
		return "https://index.docker.io/v1/"
	}
	return host
}

type fileKeychain struct{ path string }

func (k fileKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	_, auths, err := readDockerConfig(k.path)
	if err != nil {
		return nil, err
	}
	key := registryKey(res.RegistryStr())
	e, ok := auths[key]
	if !ok {
		for k2, v := range auths { // keys written as URLs: "https://host/v1/"
			h := strings.TrimPrefix(strings.TrimPrefix(k2, "https://"), "http://")
			if i := strings.IndexByte(h, '/'); i >= 0 {
				h = h[:i]
			}
			if h == res.RegistryStr() {
				e, ok = v, true
				break
			}
		}
	}
	if !ok {
		return authn.Anonymous, nil
	}
	ac := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
	if e.Auth != "" {
		dec, err := base64.StdEncoding.DecodeString(e.Auth)
		if err == nil {
			if u, p, ok := strings.Cut(string(dec), ":"); ok {
				ac.Username, ac.Password = u, p
			}
		}
	}
	return authn.FromConfig(ac), nil
}

// Login checks the credentials against the registry and saves them in the Docker config file.
func Login(ctx context.Context, registry, username, password string, opt RegistryOptions) error {
	reg, err := name.NewRegistry(registry, opt.nameOptions()...)
	if err != nil {
		return fmt.Errorf("login %s: %v: %w", registry, err, ErrInvalidRef)
	}
	next := opt.Transport
	if next == nil {
		next = remote.DefaultTransport
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: username, Password: password})
	t, err := transport.NewWithContext(ctx, reg, auth, guardTransport{insecure: opt.Insecure, next: next}, []string{reg.Scope(transport.PullScope)})
	if err != nil {
		return fmt.Errorf("login %s: %w", registry, err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, reg.Scheme()+"://"+reg.RegistryStr()+"/v2/", nil)
	resp, err := (&http.Client{Transport: t}).Do(req)
	if err != nil {
		return fmt.Errorf("login %s: %w", registry, err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return fmt.Errorf("login %s: %s: wrong username or password", registry, resp.Status)
	}
	return saveAuth(opt.authFile(), registryKey(reg.RegistryStr()), &authEntry{Auth: base64.StdEncoding.EncodeToString([]byte(username + ":" + password))})
}

// Logout removes the registry's credentials from the Docker config file. Not logged in is not
// an error.
func Logout(registry string, opt RegistryOptions) error {
	reg, err := name.NewRegistry(registry)
	if err != nil {
		return fmt.Errorf("logout %s: %v: %w", registry, err, ErrInvalidRef)
	}
	return saveAuth(opt.authFile(), registryKey(reg.RegistryStr()), nil)
}

func saveAuth(path, key string, e *authEntry) error {
	cfg, auths, err := readDockerConfig(path)
	if err != nil {
		return err
	}
	if e == nil {
		if _, ok := auths[key]; !ok {
			return nil
		}
		delete(auths, key)
	} else {
		auths[key] = *e
	}
	ab, _ := json.Marshal(auths)
	cfg["auths"] = ab
	b, err := json.MarshalIndent(cfg, "", "\t")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(path, b, 0o600)
}
