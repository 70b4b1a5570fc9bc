package storage

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// importFile imports the tar file at path as ref.
func importFile(t *testing.T, s *Store, path, ref string) Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := s.Import(context.Background(), f, ImportOptions{Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestReimportOfAnUnchangedFileSkipsTheUnpack(t *testing.T) {
	s := openStore(t)
	s.racy = -1 // every file counts as settled
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(path, mkTar(t, tarEntry{name: "etc/motd", body: "hello"}, tarEntry{name: "bin/x", body: "xx"}), 0o644); err != nil {
		t.Fatal(err)
	}
	first := importFile(t, s, path, "a:1")
	if n := s.unpacked.Load(); n != 1 {
		t.Fatalf("first import unpacked %d layers", n)
	}
	second := importFile(t, s, path, "a:2")
	if n := s.unpacked.Load(); n != 1 {
		t.Errorf("re-import of an unchanged file unpacked again (%d unpacks)", n)
	}
	if first.Layers[0] != second.Layers[0] || first.Size != second.Size {
		t.Errorf("re-import: layers %v / %v, sizes %d / %d", first.Layers, second.Layers, first.Size, second.Size)
	}

	// Same size, same modification time, other contents: the change time differs.
	st, _ := os.Stat(path)
	if err := os.WriteFile(path, mkTar(t, tarEntry{name: "etc/motd", body: "HELLO"}, tarEntry{name: "bin/x", body: "xx"}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, st.ModTime(), st.ModTime()); err != nil {
		t.Fatal(err)
	}
	third := importFile(t, s, path, "a:3")
	if third.Layers[0] == first.Layers[0] {
		t.Fatal("a changed file was taken for the one imported before")
	}
	b, err := os.ReadFile(filepath.Join(s.LayerPath(third.ChainIDs[0]), "etc/motd"))
	if err != nil || string(b) != "HELLO" {
		t.Errorf("changed file imported as %q, %v", b, err)
	}

	// The layer removed since (rmi, GC): the record is not trusted, the file is unpacked again.
	for _, ref := range []string{"a:1", "a:2", "a:3"} {
		if _, err := s.Remove(context.Background(), ref, RemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	before := s.unpacked.Load()
	again := importFile(t, s, path, "a:4")
	if s.unpacked.Load() != before+1 || !s.hasLayer(again.ChainIDs[0]) {
		t.Errorf("import after the layer was removed: unpacks %d -> %d, layer present %v", before, s.unpacked.Load(), s.hasLayer(again.ChainIDs[0]))
	}
}

// A file changed less than racyWindow ago is not remembered: another change in the same clock
// tick would keep its size and times.
func TestRecentlyChangedFileIsNotRemembered(t *testing.T) {
	s := openStore(t)
	s.racy = time.Hour
	path := filepath.Join(t.TempDir(), "rootfs.tar")
	if err := os.WriteFile(path, mkTar(t, tarEntry{name: "a", body: "1"}), 0o644); err != nil {
		t.Fatal(err)
	}
	importFile(t, s, path, "r:1")
	importFile(t, s, path, "r:2")
	if n := s.unpacked.Load(); n != 2 {
		t.Errorf("a racy file was trusted: %d unpacks, want 2", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(s.root, "cache", "import")); len(ents) != 0 {
		t.Errorf("records of a racy file: %d", len(ents))
	}
}
