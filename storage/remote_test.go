package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"net/http"
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
