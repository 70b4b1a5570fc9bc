package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func startRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func twoLayerImage(t *testing.T, s *Store, ref string) Image {
	t.Helper()
	ctx := context.Background()
	base, err := s.Import(ctx, bytes.NewReader(mkTar(t, tarEntry{name: "etc/", typ: tar.TypeDir}, tarEntry{name: "etc/os-release", body: "ID=test"})), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := s.Create(ctx, CreateOptions{Parent: base.ID, Layer: bytes.NewReader(mkTar(t, tarEntry{name: "app", body: strings.Repeat("x", 3<<20)})),
		Config: ImageConfig{Cmd: []string{"/app"}, Env: []string{"A=1"}}, CreatedBy: "COPY app /app", Refs: []string{ref}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestPushPull(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	src := openStore(t)
	img := twoLayerImage(t, src, "app:v1")
	var mu sync.Mutex
	var events []Progress
	ref := reg + "/team/app:v1"
	md, err := src.Push(ctx, "app:v1", ref, PushOptions{RegistryOptions: RegistryOptions{AuthFile: filepath.Join(t.TempDir(), "config.json"), Progress: func(p Progress) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if md != img.ManifestDigest {
		t.Errorf("pushed digest %s, stored %s", md, img.ManifestDigest)
	}
	if len(events) == 0 {
		t.Errorf("no push progress")
	}
	dst := openStore(t)
	events = nil
	opts := PullOptions{RegistryOptions: RegistryOptions{AuthFile: filepath.Join(t.TempDir(), "config.json"), Progress: func(p Progress) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	}}}
	got, err := dst.Pull(ctx, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != img.ID || len(got.Layers) != 2 {
		t.Fatalf("pulled %s (%d layers), want %s", got.ID, len(got.Layers), img.ID)
	}
	if len(got.RepoDigests) != 1 || !strings.HasSuffix(got.RepoDigests[0], "@"+md) {
		t.Errorf("repo digests %v", got.RepoDigests)
	}
	if got.Config.Cmd[0] != "/app" {
		t.Errorf("config %+v", got.Config)
	}
	// The pull stored the blobs only; Unpack makes the trees.
	if dst.hasLayer(got.ChainIDs[0]) {
		t.Errorf("layer unpacked by a lazy pull")
	}
	if err := dst.Unpack(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst.LayerPath(got.ChainIDs[0]), "etc/os-release")); err != nil || string(b) != "ID=test" {
		t.Errorf("layer content %q %v", b, err)
	}
	// Pull again: nothing downloaded.
	events = nil
	if _, err := dst.Pull(ctx, ref, opts); err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Status != "Already exists" {
			t.Errorf("second pull: %+v", e)
		}
	}
	// By digest.
	if _, err := dst.Pull(ctx, reg+"/team/app@"+md, opts); err != nil {
		t.Fatal(err)
	}
	if r, err := dst.Resolve(ctx, reg+"/team/app@"+md); err != nil || r.ID != img.ID {
		t.Errorf("resolve by digest: %v", err)
	}
	// Wrong platform.
	opts.Platform = "linux/s390x"
	if _, err := dst.Pull(ctx, ref, opts); !errors.Is(err, ErrNotFound) {
		t.Errorf("pull for another platform: %v", err)
	}
	// Missing image.
	if _, err := dst.Pull(ctx, reg+"/team/nope:v1", PullOptions{}); err == nil {
		t.Errorf("pulling a missing image succeeded")
	}
}

func TestPlainHTTPRefusedForNonLoopback(t *testing.T) {
	s := openStore(t)
	_, err := s.Pull(context.Background(), "10.211.0.1:5000/x:y", PullOptions{RegistryOptions: RegistryOptions{Transport: failTransport{}}})
	if err == nil || !strings.Contains(err.Error(), "--insecure") && !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("err = %v", err)
	}
}

type failTransport struct{}

func (failTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in tests")
}

func TestLoginLogout(t *testing.T) {
	reg := startRegistry(t)
	cfg := filepath.Join(t.TempDir(), "docker", "config.json")
	os.MkdirAll(filepath.Dir(cfg), 0o700)
	os.WriteFile(cfg, []byte(`{"credsStore":"","other":{"keep":true}}`), 0o600)
	if err := Login(context.Background(), reg, "u", "p", RegistryOptions{AuthFile: cfg}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cfg)
	if !strings.Contains(string(b), `"auth": "dTpw"`) || !strings.Contains(string(b), `"keep"`) {
		t.Fatalf("config after login: %s", b)
	}
	a, err := fileKeychain{cfg}.Resolve(mustRegistry(t, reg))
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := a.Authorization()
	if ac.Username != "u" || ac.Password != "p" {
		t.Errorf("keychain: %+v", ac)
	}
	if err := Logout(reg, RegistryOptions{AuthFile: cfg}); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(cfg)
	if strings.Contains(string(b), "dTpw") {
		t.Errorf("config after logout: %s", b)
	}
}

func mustRegistry(t *testing.T, r string) name.Registry {
	reg, err := name.NewRegistry(r)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// throttledRegistry is an in-process registry whose blob downloads crawl while slow is set, so
// that a pull can be killed in the middle of a transfer.
type throttledRegistry struct {
	next http.Handler
	slow atomic.Bool
}

func (h *throttledRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.slow.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") {
		w = &slowWriter{ResponseWriter: w, chunk: 32 << 10, pause: 20 * time.Millisecond}
	}
	h.next.ServeHTTP(w, r)
}

type slowWriter struct {
	http.ResponseWriter
	chunk int
	pause time.Duration
}

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), s.chunk)
		k, err := s.ResponseWriter.Write(p[:c])
		n += k
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[c:]
		time.Sleep(s.pause)
	}
	return n, nil
}

// TestKillDuringPull kills (SIGKILL) a process in the middle of a pull (blobs half downloaded,
// layers half unpacked) and checks that the next Open sweeps its leftovers, nothing
// half-written is in blobs/ or layers/, and the pull then succeeds.
func TestKillDuringPull(t *testing.T) {
	if root := os.Getenv("BERTH_STORAGE_PULL_KILL_HELPER"); root != "" {
		s, err := Open(root)
		if err != nil {
			os.Exit(3)
		}
		s.Pull(context.Background(), os.Getenv("BERTH_STORAGE_PULL_KILL_REF"), PullOptions{Unpack: true, RegistryOptions: RegistryOptions{AuthFile: filepath.Join(filepath.Dir(root), "config.json")}})
		os.Exit(0)
	}
	reg := &throttledRegistry{next: registry.New(registry.Logger(log.New(io.Discard, "", 0)))}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	// Three gzip layers of 2 MiB of random bytes each: about 3 s per layer while throttled.
	img, err := random.Image(2<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/kill/pull:v1"
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	reg.slow.Store(true)

	root := filepath.Join(t.TempDir(), "storage")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringPull$")
	cmd.Env = append(os.Environ(), "BERTH_STORAGE_PULL_KILL_HELPER="+root, "BERTH_STORAGE_PULL_KILL_REF="+ref)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Wait until the helper has part of a blob on disk and is unpacking a layer.
	deadline := time.Now().Add(20 * time.Second)
	for {
		blobs, _ := filepath.Glob(filepath.Join(root, "tmp", "*", "blob-*"))
		files, _ := filepath.Glob(filepath.Join(root, "tmp", "*", "layer-*", "diff", "random_file_*"))
		partial := false
		for _, b := range blobs {
			if fi, err := os.Stat(b); err == nil && fi.Size() >= 256<<10 {
				partial = true
			}
		}
		if partial && len(files) > 0 {
			t.Logf("killing the pull with %d partial blobs and %d files being unpacked", len(blobs), len(files))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper never got into the transfer (blobs %v, files %v)", blobs, files)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the pull was not killed mid-transfer: %v", err)
	}

	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ents, _ := os.ReadDir(filepath.Join(root, "tmp"))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), s.session) {
			t.Errorf("leftover tmp/%s after kill -9", e.Name())
		}
	}
	if imgs, _ := s.List(context.Background()); len(imgs) != 0 {
		t.Errorf("half-pulled image recorded: %v", imgs)
	}
	checkBlobs(t, s) // a blob in blobs/ is always complete and verified
	cf, _ := img.ConfigFile()
	var diffs []string
	for _, d := range cf.RootFS.DiffIDs {
		diffs = append(diffs, d.String())
	}
	want := map[string]bool{}
	for _, c := range ChainIDs(diffs) {
		want[strings.TrimPrefix(c, "sha256:")] = true
	}
	layers, _ := os.ReadDir(filepath.Join(root, "layers"))
	for _, l := range layers {
		if !want[l.Name()] {
			t.Errorf("unexpected layers/%s after kill -9", l.Name())
		} else if _, err := os.Stat(filepath.Join(root, "layers", l.Name(), "meta.json")); err != nil {
			t.Errorf("half-written layers/%s after kill -9: %v", l.Name(), err)
		}
	}

	reg.slow.Store(false)
	got, err := s.Pull(context.Background(), ref, PullOptions{Unpack: true, RegistryOptions: RegistryOptions{AuthFile: filepath.Join(t.TempDir(), "config.json")}})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := img.ConfigName()
	if got.ID != id.String() || len(got.ChainIDs) != 3 {
		t.Fatalf("pulled %s with %d layers, want %s", got.ID, len(got.ChainIDs), id)
	}
	checkBlobs(t, s)
	for _, c := range got.ChainIDs {
		m, _ := filepath.Glob(filepath.Join(s.LayerPath(c), "random_file_*"))
		if len(m) != 1 {
			t.Fatalf("layer %s: %v", c, m)
		}
		if fi, err := os.Stat(m[0]); err != nil || fi.Size() != 2<<20 {
			t.Errorf("layer %s: %v", c, err)
		}
	}
}
