package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Pull and push against Debian's docker-registry (the CNCF distribution server, v2.8), started
// by the test on 127.0.0.1 with its own storage directory and stopped by PID.

const distributionBin = "/usr/bin/docker-registry"

// startDistribution starts docker-registry on a free loopback port and returns host:port. It
// skips the test when the binary is missing.
func startDistribution(t *testing.T) string {
	t.Helper()
	bin := distributionBin
	if _, err := os.Stat(bin); err != nil {
		p, lerr := exec.LookPath("docker-registry")
		if lerr != nil {
			t.Skipf("docker-registry not installed (Debian package %q; `make deps` installs it): skipping the distribution registry test", "docker-registry")
		}
		bin = p
	}
	dir := t.TempDir()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // the free port may be taken before the registry binds it
		addr, err := freeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(dir, fmt.Sprintf("config-%d.yml", attempt))
		data := filepath.Join(dir, fmt.Sprintf("data-%d", attempt))
		if err := os.WriteFile(cfg, []byte(distributionConfig(addr, data)), 0o600); err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(dir, fmt.Sprintf("registry-%d.log", attempt))
		if lastErr = runDistribution(t, bin, cfg, addr, logPath); lastErr == nil {
			return addr
		}
	}
	t.Fatalf("docker-registry did not start: %v", lastErr)
	return ""
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr, nil
}

func distributionConfig(addr, data string) string {
	return `version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ` + data + `
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: ` + addr + `
  secret: berth-test-secret
health:
  storagedriver:
    enabled: false
`
}

// runDistribution starts one registry process and waits until it answers /v2/. On success the
// process is stopped by its PID when the test ends; on failure it is already gone.
func runDistribution(t *testing.T, bin, cfg, addr, logPath string) error {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive a crashed test binary
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		pid := cmd.Process.Pid
		syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			syscall.Kill(pid, syscall.SIGKILL)
			<-exited
		}
	}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("exited (%v): %s", err, b)
		default:
		}
		resp, err := client.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Cleanup(stop)
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	b, _ := os.ReadFile(logPath)
	return fmt.Errorf("no answer on %s within 15s: %s", addr, b)
}

// registryDigest asks the registry for the digest of repo:tag (HEAD of the manifest).
func registryDigest(t *testing.T, addr, repo, tag string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, "http://"+addr+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s:%s: %s", repo, tag, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// checkBlobs verifies that every blob in the store hashes to its name.
func checkBlobs(t *testing.T, s *Store) {
	t.Helper()
	dir := filepath.Join(s.Root(), "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := newHasher()
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Digest(); got != "sha256:"+e.Name() {
			t.Errorf("blob %s has content %s", e.Name(), got)
		}
	}
}

func TestDistributionPushPull(t *testing.T) {
	addr := startDistribution(t)
	ctx := context.Background()
	auth := RegistryOptions{AuthFile: filepath.Join(t.TempDir(), "config.json")}

	// berth pushes an image it built; the registry stores it under the same manifest digest.
	src := openStore(t)
	img := twoLayerImage(t, src, "app:v1")
	ref := addr + "/team/app:v1"
	md, err := src.Push(ctx, "app:v1", ref, PushOptions{RegistryOptions: auth})
	if err != nil {
		t.Fatal(err)
	}
	if md != img.ManifestDigest {
		t.Errorf("push returned %s, the store has %s", md, img.ManifestDigest)
	}
	if got := registryDigest(t, addr, "team/app", "v1"); got != md {
		t.Errorf("registry has %s for team/app:v1, berth pushed %s", got, md)
	}

	// berth pulls it back into an empty store: same image ID, manifest, layers and files.
	dst := openStore(t)
	got, err := dst.Pull(ctx, ref, PullOptions{RegistryOptions: auth, Unpack: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != img.ID || got.ManifestDigest != md || len(got.ChainIDs) != 2 || got.ChainIDs[1] != img.ChainIDs[1] {
		t.Fatalf("pulled %s (manifest %s, chains %v), want %s (manifest %s, chains %v)", got.ID, got.ManifestDigest, got.ChainIDs, img.ID, md, img.ChainIDs)
	}
	if len(got.RepoDigests) != 1 || got.RepoDigests[0] != addr+"/team/app@"+md {
		t.Errorf("repo digests %v", got.RepoDigests)
	}
	if b, err := os.ReadFile(filepath.Join(dst.LayerPath(got.ChainIDs[0]), "etc/os-release")); err != nil || string(b) != "ID=test" {
		t.Errorf("layer content %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dst.LayerPath(got.ChainIDs[1]), "app")); err != nil || fi.Size() != 3<<20 {
		t.Errorf("layer content: %v", err)
	}
	checkBlobs(t, dst)

	// An image pushed by another client (gzip layers, Docker media types) pulls with the
	// same digests and pushes back unchanged.
	foreign, err := random.Image(64<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	fref, err := name.ParseReference(addr+"/other/rand:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(fref, foreign); err != nil {
		t.Fatal(err)
	}
	fmd, _ := foreign.Digest()
	fid, _ := foreign.ConfigName()
	pulled, err := dst.Pull(ctx, addr+"/other/rand:1", PullOptions{RegistryOptions: auth})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.ID != fid.String() || pulled.ManifestDigest != fmd.String() || len(pulled.ChainIDs) != 3 {
		t.Fatalf("pulled %s (manifest %s), want %s (manifest %s)", pulled.ID, pulled.ManifestDigest, fid, fmd)
	}
	ls, _ := foreign.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		if !dst.hasBlob(d.String()) {
			t.Errorf("layer blob %s not stored as received", d)
		}
	}
	checkBlobs(t, dst)
	back, err := dst.Push(ctx, addr+"/other/rand:1", addr+"/copy/rand:1", PushOptions{RegistryOptions: auth})
	if err != nil {
		t.Fatal(err)
	}
	if back != fmd.String() || registryDigest(t, addr, "copy/rand", "1") != fmd.String() {
		t.Errorf("pushed back as %s, want %s", back, fmd)
	}

	// Errors name the failure: an unknown image is not found.
	if _, err := dst.Pull(ctx, addr+"/team/nope:v1", PullOptions{RegistryOptions: auth}); err == nil || !strings.Contains(err.Error(), "team/nope") {
		t.Errorf("pull of a missing image: %v", err)
	} else if errors.Is(err, ErrDigest) {
		t.Errorf("missing image reported as a digest error: %v", err)
	}
}
