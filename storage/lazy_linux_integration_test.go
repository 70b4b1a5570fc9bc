//go:build linux && integration

package storage

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestPullThenMountUnpacksOnce: a pull stores blobs only; the first Mount unpacks the layers,
// the next Mount of another container reuses them.
func TestPullThenMountUnpacksOnce(t *testing.T) {
	requireRoot(t)
	ctx := context.Background()
	reg := startRegistry(t)
	src := openStore(t)
	twoLayerImage(t, src, "app:v1")
	ref := reg + "/team/app:v1"
	auth := RegistryOptions{AuthFile: filepath.Join(t.TempDir(), "config.json")}
	if _, err := src.Push(ctx, "app:v1", ref, PushOptions{RegistryOptions: auth}); err != nil {
		t.Fatal(err)
	}
	dst := openStore(t)
	img, err := dst.Pull(ctx, ref, PullOptions{RegistryOptions: auth})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range img.ChainIDs {
		if dst.hasLayer(c) {
			t.Fatalf("layer %s unpacked by the pull", c)
		}
	}
	root := mountForTest(t, dst, "c1", ref)
	if b, err := os.ReadFile(filepath.Join(root, "etc/os-release")); err != nil || string(b) != "ID=test" {
		t.Fatalf("mounted content %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(root, "app")); err != nil || fi.Size() != 3<<20 {
		t.Fatalf("mounted app: %v", err)
	}
	var before []uint64
	for _, c := range img.ChainIDs {
		var st syscall.Stat_t
		if err := syscall.Stat(dst.LayerPath(c), &st); err != nil {
			t.Fatal(err)
		}
		before = append(before, st.Ino)
	}
	mountForTest(t, dst, "c2", img.ID)
	for i, c := range img.ChainIDs {
		var st syscall.Stat_t
		if err := syscall.Stat(dst.LayerPath(c), &st); err != nil || st.Ino != before[i] {
			t.Errorf("layer %s unpacked again by the second mount", c)
		}
	}
	scratchEmpty(t, dst)
}
