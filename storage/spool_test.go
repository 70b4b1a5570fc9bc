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
	"syscall"
	"testing"
	"testing/iotest"
	"time"
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

func TestExtractRegularFileModesAndReplacement(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Typeflag != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644}, "old")
	add(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o600}, "new") // replaces a file
	add(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "d/x", Typeflag: tar.TypeReg, Mode: 0o644}, "x")
	add(&tar.Header{Name: "d", Typeflag: tar.TypeReg, Mode: 0o644}, "file") // replaces a directory
	add(&tar.Header{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "a"}, "")
	add(&tar.Header{Name: "s", Typeflag: tar.TypeReg, Mode: 0o644}, "s")  // replaces a symlink, not its target
	add(&tar.Header{Name: "rw", Typeflag: tar.TypeReg, Mode: 0o777}, "1") // wider than the umask allows
	add(&tar.Header{Name: "ro", Typeflag: tar.TypeReg, Mode: 0o444}, "2")
	add(&tar.Header{Name: "none", Typeflag: tar.TypeReg, Mode: 0}, "3")
	add(&tar.Header{Name: "owned", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1234, Gid: 5678}, "4")
	tw.Close()
	layer, sb, err := extractInto(t, buf.Bytes(), extractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	onlyLayerInSandbox(t, sb)
	for name, want := range map[string]string{"a": "new", "d": "file", "s": "s", "rw": "1", "ro": "2", "none": "3"} {
		if b, err := os.ReadFile(filepath.Join(layer, name)); err != nil && os.Geteuid() == 0 || err == nil && string(b) != want {
			t.Errorf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
	for name, want := range map[string]os.FileMode{"a": 0o600, "d": 0o644, "s": 0o644, "rw": 0o777, "ro": 0o444, "none": 0} {
		fi, err := os.Lstat(filepath.Join(layer, name))
		if err != nil {
			t.Fatal(err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want regular %v", name, fi.Mode(), want)
		}
	}
	if os.Geteuid() == 0 {
		var st unixStat
		if err := lstatOwner(filepath.Join(layer, "owned"), &st); err != nil || st.uid != 1234 || st.gid != 5678 {
			t.Errorf("owned: %+v, %v; want 1234:5678", st, err)
		}
		if err := lstatOwner(filepath.Join(layer, "a"), &st); err != nil || st.uid != 0 || st.gid != 0 {
			t.Errorf("a: %+v, %v; want 0:0", st, err)
		}
	}
}

type unixStat struct{ uid, gid uint32 }

func lstatOwner(p string, st *unixStat) error {
	var s syscall.Stat_t
	if err := syscall.Lstat(p, &s); err != nil {
		return err
	}
	st.uid, st.gid = s.Uid, s.Gid
	return nil
}

// TestSpoolDirectReadBack runs the spool over an O_DIRECT blob with a reader that starts only
// after the writer is done, so that all but spoolKeep pieces were dropped from memory and are
// read back from the file; the last piece is not a multiple of the O_DIRECT alignment.
func TestSpoolDirectReadBack(t *testing.T) {
	s, bw, sp := newLayerSpool(t)
	data := patterned((spoolKeep+5)*directChunk+1234, 7, 12)
	n, err := sp.fill(context.Background(), iotest.HalfReader(bytes.NewReader(data)))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("fill = %d, %v", n, err)
	}
	if err := bw.finish(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(sp.reader())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("reader got %d bytes (equal: false), want %d", len(got), len(data))
	}
	digest, err := bw.Commit(digestOf(data))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.BlobPath(digest)
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("stored blob: %d bytes, %v", len(b), err)
	}
}

// TestSpoolSlowReader has the reader fall far behind while the writer runs, so pieces are
// dropped and read back while both work.
func TestSpoolSlowReader(t *testing.T) {
	_, bw, sp := newLayerSpool(t)
	data := patterned((2*spoolKeep+3)*directChunk+77, 13, 14)
	got := make(chan []byte, 1)
	go func() {
		var out bytes.Buffer
		r := sp.reader()
		buf := make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
			if out.Len() < 4<<20 {
				time.Sleep(time.Millisecond) // behind at first, then catches up
			}
		}
		got <- out.Bytes()
	}()
	if _, err := sp.fill(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := bw.finish(); err != nil {
		t.Fatal(err)
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("reader got %d bytes, want %d (or different content)", len(b), len(data))
	}
}

// newLayerSpool is a spool over a fresh layer blob writer (O_DIRECT where the file system
// allows it), both released when the test ends.
func newLayerSpool(t *testing.T) (*Store, *blobWriter, *spool) {
	t.Helper()
	s := openStore(t)
	bw, err := s.newLayerBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bw.Abort)
	sp := newSpool(bw)
	t.Cleanup(sp.close)
	return s, bw, sp
}

// patterned is n bytes that do not repeat with any chunk size the spool uses.
func patterned(n, mul, shift int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*mul + i>>shift)
	}
	return b
}
