package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// oddTar is a layer tar with what tar-split must keep byte for byte: PAX records, a long name,
// links, an empty file, a whiteout and padding after the end blocks.
func oddTar(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 123456789)
	long := strings.Repeat("d", 120) + "/" + strings.Repeat("f", 110)
	for _, h := range []*tar.Header{
		{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mt, Format: tar.FormatPAX, PAXRecords: map[string]string{"SCHILY.xattr.user.x": "y"}},
		{Name: "etc/motd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: mt, Uname: "root"},
		{Name: long, Typeflag: tar.TypeReg, Mode: 0o600, Size: 1000, ModTime: mt, Format: tar.FormatGNU},
		{Name: "empty", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: mt},
		{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "/usr/bin/dash", ModTime: mt},
		{Name: "etc/motd.link", Typeflag: tar.TypeLink, Linkname: "etc/motd", ModTime: mt},
		{Name: "big", Typeflag: tar.TypeReg, Mode: 0o755, Size: 1 << 20, ModTime: mt},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte(h.Name[:1]), int(h.Size)))
		}
	}
	tw.Close()
	buf.Write(make([]byte, 9000)) // record padding, as tar(1) writes it
	return buf.Bytes()
}

func TestImportKeepsTreeAndTarSplitOnly(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	data := oddTar(t)
	img, err := s.Import(ctx, bytes.NewReader(data), ImportOptions{Ref: "odd"})
	if err != nil {
		t.Fatal(err)
	}
	if img.Layers[0] != digestOf(data) {
		t.Fatalf("diff ID %s, want %s", img.Layers[0], digestOf(data))
	}
	if s.hasBlob(img.Layers[0]) {
		t.Errorf("the uncompressed blob was stored next to the tree")
	}
	if !s.canRebuild(img.ChainIDs[0], img.Layers[0]) {
		t.Fatalf("no tar-split for the layer")
	}
	rc, err := s.openLayerBlob(img.Layers[0], int64(len(data)), img.ChainIDs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("rebuilt tar differs from the imported one (%d vs %d bytes)", len(got), len(data))
	}
	scratchEmpty(t, s)
}

// TestImportSaveLoadRoundTrip: import -> save -> load -> save keeps every digest and the
// archive byte for byte, also for a gzip import and a layer that keeps its blob.
func TestImportSaveLoadRoundTrip(t *testing.T) {
	ctx := context.Background()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(oddTar(t))
	zw.Close()
	// The same file twice: the tree keeps only the second, so the blob is kept.
	dup := mkTar(t, tarEntry{name: "f", body: "first"}, tarEntry{name: "f", body: "second"})
	for name, layer := range map[string][]byte{"plain": oddTar(t), "gzip": gz.Bytes(), "duplicate": dup} {
		t.Run(name, func(t *testing.T) {
			src := openStore(t)
			base, err := src.Import(ctx, bytes.NewReader(layer), ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if name == "duplicate" && (!src.hasBlob(base.Layers[0]) || src.canRebuild(base.ChainIDs[0], base.Layers[0])) {
				t.Errorf("a layer the tree cannot rebuild must keep its blob")
			}
			img, err := src.Create(ctx, CreateOptions{Parent: base.ID, Layer: bytes.NewReader(mkTar(t, tarEntry{name: "app", body: "x"})), Refs: []string{"rt:v1"}})
			if err != nil {
				t.Fatal(err)
			}
			var a1 bytes.Buffer
			if err := src.Save(ctx, &a1, []string{"rt:v1"}, SaveDocker); err != nil {
				t.Fatal(err)
			}
			dst := openStore(t)
			imgs, err := dst.Load(ctx, bytes.NewReader(a1.Bytes()), "", LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != 1 || imgs[0].ID != img.ID || imgs[0].ManifestDigest != img.ManifestDigest || imgs[0].Size != img.Size {
				t.Fatalf("loaded %+v, want ID %s manifest %s size %d", imgs, img.ID, img.ManifestDigest, img.Size)
			}
			for i, l := range imgs[0].Layers {
				if l != img.Layers[i] {
					t.Errorf("layer %d: %s, want %s", i, l, img.Layers[i])
				}
			}
			var a2 bytes.Buffer
			if err := dst.Save(ctx, &a2, []string{"rt:v1"}, SaveDocker); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a1.Bytes(), a2.Bytes()) {
				t.Errorf("save after load differs from the first save")
			}
			scratchEmpty(t, src)
			scratchEmpty(t, dst)
		})
	}
}

func TestRebuildFromTamperedTreeFails(t *testing.T) {
	ctx := context.Background()
	for name, tamper := range map[string]func(dir string) error{
		"same size": func(dir string) error { return os.WriteFile(filepath.Join(dir, "etc/motd"), []byte("EEEEE"), 0o644) },
		"longer":    func(dir string) error { return os.WriteFile(filepath.Join(dir, "etc/motd"), []byte("eeeeee"), 0o644) },
		"removed":   func(dir string) error { return os.Remove(filepath.Join(dir, "big")) },
		"symlink out": func(dir string) error {
			os.Remove(filepath.Join(dir, "big"))
			return os.Symlink("/etc/passwd", filepath.Join(dir, "big"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := openStore(t)
			img, err := s.Import(ctx, bytes.NewReader(oddTar(t)), ImportOptions{Ref: "t"})
			if err != nil {
				t.Fatal(err)
			}
			if err := tamper(s.LayerPath(img.ChainIDs[0])); err != nil {
				t.Fatal(err)
			}
			err = s.Save(ctx, io.Discard, []string{"t"}, SaveOCI)
			if !errors.Is(err, ErrDigest) {
				t.Fatalf("save of a tampered layer: %v, want ErrDigest", err)
			}
			if !strings.Contains(err.Error(), "no longer matches") {
				t.Errorf("unclear error: %v", err)
			}
			t.Log(err)
		})
	}
}

// lazyImage stores a one-layer image (gzip blob with n files) without unpacking it, as a pull
// does, and returns its ID. wrongDiff makes the config lie about the layer's diff ID.
func lazyImage(t *testing.T, s *Store, n int, wrongDiff bool) string {
	t.Helper()
	layer := mkTar(t, lazyEntries(n)...)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer)
	zw.Close()
	diff := digestOf(layer)
	if wrongDiff {
		diff = "sha256:" + strings.Repeat("0", 64)
	}
	cf := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + diff + `"]},"config":{}}`)
	id, err := s.ingest(context.Background(), imageSource{config: cf,
		layers: []v1Descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Size: int64(gz.Len()), Digest: mustHash(t, digestOf(gz.Bytes()))}},
		open:   func(context.Context, int) (ioReadCloser, error) { return nopCloser(bytes.NewReader(gz.Bytes())), nil },
	}, ingestOptions{refs: []string{"docker.io/library/lazy:latest"}})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// lazyEntries are the files of lazyImage's layer.
func lazyEntries(n int) []tarEntry {
	var entries []tarEntry
	for i := 0; i < n; i++ {
		entries = append(entries, tarEntry{name: fmt.Sprintf("d%02d/f%05d", i/500, i), body: strings.Repeat("z", 1+i%700)})
	}
	return entries
}

// Until a pulled layer is unpacked, its size is the length of its tar, read from the gzip
// trailer, rather than the size of the compressed blob.
func TestLazyLayerSizeEstimate(t *testing.T) {
	s := openStore(t)
	id := lazyImage(t, s, 300, false)
	img, err := s.Resolve(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(mkTar(t, lazyEntries(300)...))); img.Size != want || img.LayerSizes[0] != want {
		t.Errorf("size before unpacking = %d (layers %v), want the tar's %d", img.Size, img.LayerSizes, want)
	}
}

func TestLazyLayerUnpackedOnce(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	id := lazyImage(t, s, 20, false)
	img, err := s.Resolve(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if s.hasLayer(img.ChainIDs[0]) {
		t.Fatal("the layer was unpacked by a lazy ingest")
	}
	if img.Size <= 0 {
		t.Errorf("size of a layer not unpacked yet: %d", img.Size)
	}
	if err := s.Unpack(ctx, "lazy"); err != nil {
		t.Fatal(err)
	}
	var st1 syscall.Stat_t
	if err := syscall.Stat(s.LayerPath(img.ChainIDs[0]), &st1); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(s.LayerPath(img.ChainIDs[0]), "d00/f00003")); err != nil || string(b) != "zzzz" {
		t.Errorf("unpacked content %q, %v", b, err)
	}
	if err := s.Unpack(ctx, id); err != nil {
		t.Fatal(err)
	}
	var st2 syscall.Stat_t
	syscall.Stat(s.LayerPath(img.ChainIDs[0]), &st2)
	if st1.Ino != st2.Ino {
		t.Errorf("the layer was unpacked a second time")
	}
	after, _ := s.Resolve(ctx, id)
	if after.Size != 210 { // 1+2+...+20 bytes
		t.Errorf("size after unpacking %d", after.Size)
	}
	scratchEmpty(t, s)
}

func TestLazyUnpackChecksDiffID(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	id := lazyImage(t, s, 3, true)
	if err := s.Unpack(ctx, id); !errors.Is(err, ErrDigest) {
		t.Fatalf("unpack of a layer whose diff ID is wrong: %v, want ErrDigest", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root(), "layers")); len(ents) != 0 {
		t.Errorf("layers left: %v", ents)
	}
	scratchEmpty(t, s)
}

// TestKillDuringLazyUnpack kills (SIGKILL) a process while it unpacks a lazily stored layer;
// the next command opens the store cleanly and completes the unpack.
func TestKillDuringLazyUnpack(t *testing.T) {
	if root := os.Getenv("BERTH_STORAGE_UNPACK_KILL_HELPER"); root != "" {
		s, err := Open(root)
		if err != nil {
			os.Exit(3)
		}
		s.Unpack(context.Background(), "lazy")
		os.Exit(0)
	}
	root := filepath.Join(t.TempDir(), "storage")
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	id := lazyImage(t, s, 5000, false)
	s.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKillDuringLazyUnpack$")
	cmd.Env = append(os.Environ(), "BERTH_STORAGE_UNPACK_KILL_HELPER="+root)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if m, _ := filepath.Glob(filepath.Join(root, "tmp", "*", "layer-*", "diff", "d00", "f00001")); len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("helper never started unpacking")
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the unpack was not killed midway: %v", err)
	}
	s = openStoreAt(t, root)
	ents, _ := os.ReadDir(filepath.Join(root, "tmp"))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), s.session) {
			t.Errorf("leftover tmp/%s after kill -9", e.Name())
		}
	}
	img, err := s.Resolve(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if s.hasLayer(img.ChainIDs[0]) {
		t.Fatal("a half-unpacked layer is in layers/")
	}
	if err := s.Unpack(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	m, _ := filepath.Glob(filepath.Join(s.LayerPath(img.ChainIDs[0]), "d*", "f*"))
	if len(m) != 5000 {
		t.Errorf("unpacked %d files, want 5000", len(m))
	}
	scratchEmpty(t, s)
}
