package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// scratchEmpty fails unless the store's session scratch directory is empty.
func scratchEmpty(t *testing.T, s *Store) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(s.root, "tmp", s.session))
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("scratch not empty: %v", names)
	}
}

func TestSpoolReaderSeesWrittenBytes(t *testing.T) {
	s := openStore(t)
	bw, err := s.newBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Abort()
	sp := newSpool(bw)
	data := bytes.Repeat([]byte("0123456789abcdef"), 300_000) // ~4.8 MB, several chunks
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(iotest.OneByteReader(io.LimitReader(sp.reader(), 10)))
		rest, _ := io.ReadAll(sp.reader())
		got <- append(b, rest[10:]...)
	}()
	n, err := sp.fill(context.Background(), iotest.HalfReader(bytes.NewReader(data)))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("fill = %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("reader got %d bytes, want %d", len(b), len(data))
	}
	if bw.Digest() != digestOf(data) {
		t.Errorf("blob digest differs from content digest")
	}
}

func TestSpoolStopEndsReaderAndWriter(t *testing.T) {
	s := openStore(t)
	bw, err := s.newBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Abort()
	sp := newSpool(bw)
	sp.stop()
	if _, err := sp.reader().Read(make([]byte, 10)); !errors.Is(err, errSpoolStopped) {
		t.Errorf("read after stop: %v", err)
	}
	if _, err := sp.fill(context.Background(), bytes.NewReader(make([]byte, 3<<20))); !errors.Is(err, errSpoolStopped) {
		t.Errorf("fill after stop: %v", err)
	}
}

func TestReimportSkipsUnpack(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	data := mkTar(t, tarEntry{name: "big", body: strings.Repeat("x", 3<<20)}, tarEntry{name: "etc/motd", body: "hi"})
	img, err := s.Import(ctx, bytes.NewReader(data), ImportOptions{Ref: "a"})
	if err != nil {
		t.Fatal(err)
	}
	bw, err := s.newBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Abort()
	diff, size, err := s.unpack(ctx, bytes.NewReader(data), bw, func(string) (string, string) { return img.ChainIDs[0], "" })
	if err != nil {
		t.Fatal(err)
	}
	if diff != digestOf(data) || size != 0 {
		t.Errorf("re-unpack = %s, %d; want the diff ID and size 0 (skipped)", diff, size)
	}
	bw.Abort()
	scratchEmpty(t, s)
	img2, err := s.Import(ctx, bytes.NewReader(data), ImportOptions{Ref: "b"})
	if err != nil {
		t.Fatal(err)
	}
	if img2.ChainIDs[0] != img.ChainIDs[0] || img2.Layers[0] != img.Layers[0] {
		t.Errorf("re-import made a different layer: %v %v", img2.Layers, img.Layers)
	}
	if b, err := os.ReadFile(filepath.Join(s.LayerPath(img.ChainIDs[0]), "etc/motd")); err != nil || string(b) != "hi" {
		t.Errorf("layer content %q, %v", b, err)
	}
	scratchEmpty(t, s)
}

func TestImportUnsafeLayerLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	// The bad entry comes first, followed by a lot of content: the unpacking fails early and
	// the copy must stop too, with the unpacking's error.
	data := mkTar(t, tarEntry{name: "../evil", body: "x"}, tarEntry{name: "big", body: strings.Repeat("x", 8<<20)})
	_, err := s.Import(ctx, bytes.NewReader(data), ImportOptions{Ref: "bad"})
	if !errors.Is(err, ErrUnsafeLayer) {
		t.Fatalf("err = %v, want ErrUnsafeLayer", err)
	}
	scratchEmpty(t, s)
	for _, d := range []string{"layers", "blobs/sha256"} {
		if ents, _ := os.ReadDir(filepath.Join(s.root, d)); len(ents) != 0 {
			t.Errorf("%s not empty after a failed import", d)
		}
	}
}

func TestImportReadErrorLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	data := mkTar(t, tarEntry{name: "a", body: strings.Repeat("a", 2<<20)}, tarEntry{name: "b", body: "b"})
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotest.ErrReader(boom))
	if _, err := s.Import(ctx, r, ImportOptions{}); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want the read error", err)
	}
	scratchEmpty(t, s)
	if ents, _ := os.ReadDir(filepath.Join(s.root, "layers")); len(ents) != 0 {
		t.Errorf("layer left after a failed import")
	}
}

func TestImportTruncatedTarFails(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 20})
	tw.Write(make([]byte, 1000)) // short: the archive ends inside the file
	if _, err := s.Import(ctx, bytes.NewReader(buf.Bytes()), ImportOptions{}); err == nil {
		t.Fatal("truncated tar imported")
	}
	scratchEmpty(t, s)
}

func TestImportCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := openStore(t)
	data := mkTar(t, tarEntry{name: "a", body: "a"})
	if _, err := s.Import(ctx, bytes.NewReader(data), ImportOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	scratchEmpty(t, s)
}
