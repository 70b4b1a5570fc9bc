//go:build linux && integration

package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

func mountForTest(t *testing.T, s *Store, cid, image string) string {
	t.Helper()
	p, err := s.Mount(context.Background(), cid, image)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.RemoveContainerLayer(context.Background(), cid) })
	return p
}

func TestMountWritesLandInUpper(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := openStore(t)
	base, err := s.Import(ctx, bytes.NewReader(mkTar(t,
		tarEntry{name: "etc/", typ: tar.TypeDir},
		tarEntry{name: "etc/base", body: "base"},
		tarEntry{name: "etc/gone", body: "x"},
		tarEntry{name: "data/", typ: tar.TypeDir},
		tarEntry{name: "data/old", body: "old"},
	)), ImportOptions{Ref: "base"})
	if err != nil {
		t.Fatal(err)
	}
	// Second layer: delete etc/gone, make data/ opaque, add a file.
	top, err := s.Create(ctx, CreateOptions{Parent: "base", Layer: bytes.NewReader(mkTar(t,
		tarEntry{name: "etc/.wh.gone"},
		tarEntry{name: "data/", typ: tar.TypeDir},
		tarEntry{name: "data/.wh..wh..opq"},
		tarEntry{name: "data/new", body: "new"},
	)), Refs: []string{"top"}, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if len(top.ChainIDs) != 2 || top.Parent != base.ID {
		t.Fatalf("top: %+v", top)
	}
	rootfs := mountForTest(t, s, "c1", "top")
	again, err := s.Mount(ctx, "c1", "top")
	if err != nil || again != rootfs {
		t.Fatalf("second mount: %q %v", again, err)
	}
	if b, _ := os.ReadFile(filepath.Join(rootfs, "etc/base")); string(b) != "base" {
		t.Errorf("etc/base = %q", b)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "etc/gone")); !os.IsNotExist(err) {
		t.Errorf("whiteout not honoured: %v", err)
	}
	if _, err := os.Stat(filepath.Join(rootfs, "data/old")); !os.IsNotExist(err) {
		t.Errorf("opaque dir not honoured: %v", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "written"), []byte("w"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(rootfs, "etc/base")); err != nil {
		t.Fatal(err)
	}
	// Replace a lower directory: overlay makes the new one opaque in the upper layer.
	if err := os.RemoveAll(filepath.Join(rootfs, "data")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(rootfs, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(rootfs, "data", "fresh"), []byte("f"), 0o644)
	if b, _ := os.ReadFile(filepath.Join(s.UpperDir("c1"), "written")); string(b) != "w" {
		t.Errorf("write did not land in upper")
	}
	if _, err := os.Stat(filepath.Join(s.LayerPath(base.ChainIDs[0]), "etc/base")); err != nil {
		t.Errorf("lower layer modified: %v", err)
	}
	// Commit the container: the diff carries the new file and the deletion.
	committed, err := s.Commit(ctx, "c1", CommitOptions{Config: top.Config, Refs: []string{"committed"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(committed.Layers) != 3 || committed.Parent != top.ID {
		t.Fatalf("committed: %+v", committed)
	}
	r2 := mountForTest(t, s, "c2", "committed")
	if _, err := os.Stat(filepath.Join(r2, "written")); err != nil {
		t.Errorf("committed file missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r2, "etc/base")); !os.IsNotExist(err) {
		t.Errorf("committed deletion missing: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r2, "data/new")); !os.IsNotExist(err) {
		t.Errorf("committed opaque directory shows lower content: %v", err)
	}
	if _, err := os.Stat(filepath.Join(r2, "data/fresh")); err != nil {
		t.Errorf("committed directory content missing: %v", err)
	}
	// The committed layer is a proper OCI diff: whiteout and opaque markers, no device nodes.
	var diff bytes.Buffer
	if err := WriteTar(ctx, &diff, s.UpperDir("c1"), true); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	tr := tar.NewReader(&diff)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		names[h.Name] = true
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			t.Errorf("device node %s in diff", h.Name)
		}
	}
	for _, n := range []string{"etc/.wh.base", "data/.wh..wh..opq", "data/fresh", "written"} {
		if !names[n] {
			t.Errorf("diff lacks %s (has %v)", n, names)
		}
	}
	// Remounting on another image is refused.
	if _, err := s.Mount(ctx, "c1", "base"); !errors.Is(err, ErrConflict) {
		t.Errorf("mount on other image: %v", err)
	}
	if err := s.Unmount(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := isMountPoint(rootfs); ok {
		t.Fatal("still mounted")
	}
	if err := s.Unmount(ctx, "c1"); err != nil {
		t.Fatalf("second unmount: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.UpperDir("c1"), "written")); string(b) != "w" {
		t.Errorf("writable layer lost on unmount")
	}
	if err := s.RemoveContainerLayer(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.mountDir("c1")); !os.IsNotExist(err) {
		t.Errorf("writable layer not removed: %v", err)
	}
	if err := s.RemoveContainerLayer(ctx, "c1"); err != nil {
		t.Errorf("second remove: %v", err)
	}
}

// TestMount128Layers mounts a 128-layer image with the mount API in use (one lowerdir+ per
// layer) and also checks that the fallback's option string (short l/ links, relative to the
// store root) fits in a page and mounts.
func TestMount128Layers(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := openStore(t)
	parent := ""
	for i := 0; i < 128; i++ {
		img, err := s.Create(ctx, CreateOptions{Parent: parent, Layer: bytes.NewReader(mkTar(t, tarEntry{name: fmt.Sprintf("f%03d", i), body: fmt.Sprint(i)}))})
		if err != nil {
			t.Fatal(err)
		}
		parent = img.ID
	}
	rootfs := mountForTest(t, s, "deep", parent)
	for _, i := range []int{0, 64, 127} {
		if b, err := os.ReadFile(filepath.Join(rootfs, fmt.Sprintf("f%03d", i))); err != nil || string(b) != fmt.Sprint(i) {
			t.Errorf("f%03d: %q %v", i, b, err)
		}
	}

	img, _ := s.Resolve(ctx, parent)
	var rel []string
	for i := len(img.ChainIDs) - 1; i >= 0; i-- {
		m, err := s.readLayerMeta(img.ChainIDs[i])
		if err != nil {
			t.Fatal(err)
		}
		rel = append(rel, "l/"+m.Short)
	}
	dir := s.mountDir("legacy")
	for _, d := range []string{"upper", "work", "merged"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	t.Cleanup(func() { s.RemoveContainerLayer(context.Background(), "legacy") })
	opts := "lowerdir=" + strings.Join(rel, ":") + ",upperdir=mounts/legacy/upper,workdir=mounts/legacy/work"
	if len(opts) >= os.Getpagesize() {
		t.Fatalf("option string %d bytes", len(opts))
	}
	if err := mountInDir(s.root, opts, filepath.Join(dir, "merged")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "merged", "f000")); err != nil || string(b) != "0" {
		t.Errorf("f000: %q %v", b, err)
	}
}

// TestGCKeepsLayersInUse removes (with force) and prunes an image a container is mounted on:
// its layers stay until the container's layer is removed.
func TestGCKeepsLayersInUse(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	s := openStore(t)
	img, err := s.Import(ctx, bytes.NewReader(mkTar(t, tarEntry{name: "f", body: "data"})), ImportOptions{Ref: "used"})
	if err != nil {
		t.Fatal(err)
	}
	rootfs := mountForTest(t, s, "user", "used")
	if _, err := s.Remove(ctx, "used", RemoveOptions{}); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove image under a container: %v", err)
	}
	if _, err := s.Remove(ctx, "used", RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, true, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if !s.hasLayer(img.ChainIDs[0]) {
		t.Fatal("layer under a mounted container was removed")
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "f")); err != nil || string(b) != "data" {
		t.Fatalf("rootfs after GC: %q %v", b, err)
	}
	if err := s.RemoveContainerLayer(ctx, "user"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prune(ctx, true, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if s.hasLayer(img.ChainIDs[0]) {
		t.Error("layer not freed after the container layer was removed")
	}
}
