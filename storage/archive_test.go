package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestSaveLoadKeepsDigests(t *testing.T) {
	ctx := context.Background()
	for _, format := range []SaveFormat{SaveDocker, SaveOCI} {
		t.Run(string(format), func(t *testing.T) {
			src := openStore(t)
			img := twoLayerImage(t, src, "app:v1")
			var buf bytes.Buffer
			if err := src.Save(ctx, &buf, []string{"app:v1"}, format); err != nil {
				t.Fatal(err)
			}
			dst := openStore(t)
			imgs, err := dst.Load(ctx, bytes.NewReader(buf.Bytes()), "", LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].ID != img.ID || imgs[0].ManifestDigest != img.ManifestDigest {
				t.Fatalf("loaded %+v, want ID %s manifest %s", imgs, img.ID, img.ManifestDigest)
			}
			if len(imgs[0].RepoTags) != 1 || imgs[0].RepoTags[0] != "app:v1" {
				t.Errorf("tags %v", imgs[0].RepoTags)
			}
			// And again: save from the loaded store, load into a third store.
			var buf2 bytes.Buffer
			if err := dst.Save(ctx, &buf2, []string{img.ID}, format); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
				t.Errorf("save is not reproducible across load")
			}
			third := openStore(t)
			imgs, err = third.Load(ctx, &buf2, "", LoadOptions{})
			if err != nil || imgs[0].ID != img.ID || imgs[0].ManifestDigest != img.ManifestDigest {
				t.Fatalf("second round: %v %+v", err, imgs)
			}
		})
	}
}

func TestLoadLegacyDockerArchive(t *testing.T) {
	// A pre-25 `docker save`: <id>.json config, <hash>/layer.tar, manifest.json only.
	ctx := context.Background()
	layer := mkTar(t, tarEntry{name: "hello", body: "world"})
	cfg := `{"architecture":"amd64","os":"linux","config":{"Cmd":["/hello"]},"rootfs":{"type":"layers","diff_ids":["` + digestOf(layer) + `"]}}`
	cfgName := strings.TrimPrefix(digestOf([]byte(cfg)), "sha256:") + ".json"
	manifest := `[{"Config":"` + cfgName + `","RepoTags":["legacy:1"],"Layers":["abc/layer.tar"]}]`
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ n, b string }{{cfgName, cfg}, {"abc/layer.tar", string(layer)}, {"manifest.json", manifest}} {
		tw.WriteHeader(&tar.Header{Name: f.n, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f.b))})
		tw.Write([]byte(f.b))
	}
	tw.Close()
	s := openStore(t)
	imgs, err := s.Load(ctx, &buf, "", LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].ID != digestOf([]byte(cfg)) || imgs[0].RepoTags[0] != "legacy:1" {
		t.Fatalf("loaded %+v", imgs)
	}
	if b, _ := os.ReadFile(filepath.Join(s.LayerPath(imgs[0].ChainIDs[0]), "hello")); string(b) != "world" {
		t.Errorf("content %q", b)
	}
}

func TestLoadOCILayoutDir(t *testing.T) {
	ctx := context.Background()
	src := openStore(t)
	img := twoLayerImage(t, src, "dir:v1")
	var buf bytes.Buffer
	if err := src.Save(ctx, &buf, []string{"dir:v1"}, SaveOCI); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		p := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			os.MkdirAll(p, 0o755)
			continue
		}
		b, _ := io.ReadAll(tr)
		os.WriteFile(p, b, 0o644)
	}
	dst := openStore(t)
	imgs, err := dst.Load(ctx, nil, dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if imgs[0].ID != img.ID {
		t.Fatalf("loaded %s want %s", imgs[0].ID, img.ID)
	}
	// A layout whose blob was tampered with is rejected and leaves no image.
	m, _ := src.readManifest(img.ManifestDigest)
	victim := filepath.Join(dir, "blobs/sha256", m.Layers[1].Digest.Hex)
	b, _ := os.ReadFile(victim)
	b[len(b)/2] ^= 0xff
	os.WriteFile(victim, b, 0o644)
	other := openStore(t)
	if _, err := other.Load(ctx, nil, dir, LoadOptions{}); !errors.Is(err, ErrDigest) {
		t.Fatalf("tampered layout: err = %v", err)
	}
	if imgs, _ := other.List(ctx); len(imgs) != 0 {
		t.Errorf("tampered image recorded")
	}
}

func TestLoadGarbage(t *testing.T) {
	s := openStore(t)
	if _, err := s.Load(context.Background(), strings.NewReader("not a tar"), "", LoadOptions{}); err == nil {
		t.Fatal("garbage accepted")
	}
	if _, err := s.Load(context.Background(), bytes.NewReader(mkTar(t, tarEntry{name: "x", body: "y"})), "", LoadOptions{}); !errors.Is(err, ErrInvalidFormat) {
		t.Fatalf("err = %v", err)
	}
}

func TestRemoveAndGC(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	img := twoLayerImage(t, s, "app:v1")
	base := img.ChainIDs[0]
	// A second image on the same base layer.
	other, err := s.Create(ctx, CreateOptions{Parent: img.ID, Config: ImageConfig{Cmd: []string{"other"}}, Refs: []string{"other:1"}, CreatedBy: "CMD other"})
	if err != nil {
		t.Fatal(err)
	}
	if len(other.Layers) != 2 || other.History[len(other.History)-1].EmptyLayer != true {
		t.Fatalf("metadata-only child: %+v", other)
	}
	if err := s.Tag(ctx, "app:v1", "app:alias"); err != nil {
		t.Fatal(err)
	}
	// By name with two tags: untag only.
	res, err := s.Remove(ctx, "app:alias", RemoveOptions{})
	if err != nil || len(res.Deleted) != 0 || len(res.Untagged) != 1 {
		t.Fatalf("untag: %+v %v", res, err)
	}
	// In use per the caller: refused, then forced (untag only).
	inUse := func(id string) bool { return id == img.ID }
	if _, err := s.Remove(ctx, "app:v1", RemoveOptions{InUse: inUse}); !errors.Is(err, ErrInUse) {
		t.Fatalf("in use: %v", err)
	}
	res, err = s.Remove(ctx, "app:v1", RemoveOptions{InUse: inUse, Force: true})
	if err != nil || len(res.Deleted) != 0 {
		t.Fatalf("forced in-use: %+v %v", res, err)
	}
	// Now dangling: prune removes it, its blobs go but shared layers stay for other:1.
	res, err = s.Prune(ctx, false, RemoveOptions{})
	if err != nil || !contains(res.Deleted, img.ID) {
		t.Fatalf("prune: %+v %v", res, err)
	}
	if s.hasBlob(img.ID) || s.hasBlob(img.ManifestDigest) {
		t.Errorf("blobs of the pruned image remain")
	}
	if !s.hasLayer(base) || !s.hasLayer(img.ChainIDs[1]) {
		t.Errorf("layers still used by other:1 were removed")
	}
	if _, err := s.Resolve(ctx, "other:1"); err != nil {
		t.Fatal(err)
	}
	res, err = s.Remove(ctx, "other:1", RemoveOptions{})
	if err != nil || len(res.Deleted) != 1 || res.SpaceReclaimed == 0 {
		t.Fatalf("remove last: %+v %v", res, err)
	}
	for _, d := range []string{"blobs/sha256", "layers", "l"} {
		if ents, _ := os.ReadDir(filepath.Join(s.Root(), d)); len(ents) != 0 {
			t.Errorf("%s: %d entries left after removing every image", d, len(ents))
		}
	}
}

func TestRemoveByIDWithSeveralTags(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	img := twoLayerImage(t, s, "a:1")
	s.Tag(ctx, "a:1", "b:1")
	if _, err := s.Remove(ctx, img.ID[7:19], RemoveOptions{}); !errors.Is(err, ErrConflict) {
		t.Fatalf("err = %v", err)
	}
	res, err := s.Remove(ctx, img.ID[7:19], RemoveOptions{Force: true})
	if err != nil || len(res.Deleted) != 1 || len(res.Untagged) != 2 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"ubuntu":                        "docker.io/library/ubuntu:latest",
		"ubuntu:22.04":                  "docker.io/library/ubuntu:22.04",
		"library/ubuntu":                "docker.io/library/ubuntu:latest",
		"docker.io/ubuntu":              "docker.io/library/ubuntu:latest",
		"index.docker.io/library/redis": "docker.io/library/redis:latest",
		"me/app:1":                      "docker.io/me/app:1",
		"localhost:5000/x":              "localhost:5000/x:latest",
		"ghcr.io/o/r:t":                 "ghcr.io/o/r:t",
		"busybox@sha256:" + strings.Repeat("a", 64): "docker.io/library/busybox@sha256:" + strings.Repeat("a", 64),
	} {
		got, err := NormalizeRef(in)
		if err != nil || got != want {
			t.Errorf("NormalizeRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "UPPER", "a b", strings.Repeat("a", 64), "x:"} {
		if _, err := NormalizeRef(bad); !errors.Is(err, ErrInvalidRef) {
			t.Errorf("NormalizeRef(%q) err = %v", bad, err)
		}
	}
	if FamiliarRef("docker.io/library/ubuntu:latest") != "ubuntu:latest" || FamiliarRef("docker.io/me/app:1") != "me/app:1" {
		t.Errorf("FamiliarRef")
	}
}

func TestSweepIncompleteWrites(t *testing.T) {
	root := filepath.Join(t.TempDir(), "storage")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a process that died mid-import: its scratch dir with a half-unpacked layer and a
	// half-written blob, its lock file no longer held.
	dead := filepath.Join(root, "tmp", "deadbeef")
	os.MkdirAll(filepath.Join(dead, "layer-1", "diff", "usr"), 0o755)
	os.WriteFile(filepath.Join(dead, "blob-1"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(root, "tmp", "deadbeef.lock"), nil, 0o600)
	os.MkdirAll(filepath.Join(root, "tmp", "orphan-no-lock"), 0o755)
	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	for _, p := range []string{dead, dead + ".lock", filepath.Join(root, "tmp", "orphan-no-lock")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s not swept", p)
		}
	}
	// The live session's scratch survives another Open.
	if _, err := os.Stat(filepath.Join(root, "tmp", s.session)); err != nil {
		t.Errorf("live session swept: %v", err)
	}
	s.Close()
}

// TestKillDuringImport kills (SIGKILL) a process in the middle of an import and checks that the
// next Open sweeps its leftovers and the store works.
func TestKillDuringImport(t *testing.T) {
	if os.Getenv("BERTH_STORAGE_KILL_HELPER") != "" {
		s, err := Open(os.Getenv("BERTH_STORAGE_KILL_HELPER"))
		if err != nil {
			os.Exit(3)
		}
		s.Import(context.Background(), os.Stdin, ImportOptions{Ref: "half"})
		os.Exit(0)
	}
	root := filepath.Join(t.TempDir(), "storage")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringImport$")
	cmd.Env = append(os.Environ(), "BERTH_STORAGE_KILL_HELPER="+root)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Send a tar header and part of a file, then wait until the helper is unpacking.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "dir/big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10 << 20})
	stdin.Write(buf.Bytes())
	stdin.Write(make([]byte, 1<<20))
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(root, "tmp", "*", "layer-*", "diff", "dir", "big"))
		if len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("helper never started unpacking")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ents, _ := os.ReadDir(filepath.Join(root, "tmp"))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), s.session) {
			t.Errorf("leftover %s after kill -9", e.Name())
		}
	}
	if imgs, _ := s.List(context.Background()); len(imgs) != 0 {
		t.Errorf("half-imported image recorded")
	}
	if _, err := s.Import(context.Background(), bytes.NewReader(mkTar(t, tarEntry{name: "ok", body: "1"})), ImportOptions{Ref: "after"}); err != nil {
		t.Fatal(err)
	}
}
