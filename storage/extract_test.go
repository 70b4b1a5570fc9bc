package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// extractInto unpacks entries into a fresh layer directory inside a sandbox directory and
// returns both; the sandbox lets tests check nothing was written next to the layer.
func extractInto(t *testing.T, data []byte, opt extractOptions) (layer, sandbox string, err error) {
	t.Helper()
	sandbox = t.TempDir()
	layer = filepath.Join(sandbox, "layer")
	if err := os.Mkdir(layer, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = extractLayer(context.Background(), bytes.NewReader(data), layer, opt)
	return layer, sandbox, err
}

func onlyLayerInSandbox(t *testing.T, sandbox string) {
	t.Helper()
	ents, _ := os.ReadDir(sandbox)
	if len(ents) != 1 || ents[0].Name() != "layer" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Fatalf("something was written outside the layer: %v", names)
	}
}

func TestExtractDotDotRejected(t *testing.T) {
	for _, name := range []string{"../evil", "a/../../evil", "./../evil", "/../evil/x"} {
		t.Run(name, func(t *testing.T) {
			_, sb, err := extractInto(t, mkTar(t, tarEntry{name: name, body: "x"}), extractOptions{})
			if !errors.Is(err, ErrUnsafeLayer) {
				t.Fatalf("err = %v, want ErrUnsafeLayer", err)
			}
			onlyLayerInSandbox(t, sb)
		})
	}
}

func TestExtractAbsolutePathStaysInside(t *testing.T) {
	layer, sb, err := extractInto(t, mkTar(t, tarEntry{name: "/etc/passwd", body: "root"}), extractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(layer, "etc/passwd")); string(b) != "root" {
		t.Fatalf("absolute entry not placed inside the layer")
	}
	onlyLayerInSandbox(t, sb)
}

func TestExtractSymlinkEscapeNotFollowed(t *testing.T) {
	outside := t.TempDir()
	cases := map[string][]tarEntry{
		// Links whose target does not exist inside the layer: refused (or resolved inside).
		"absolute": {{name: "abs", typ: tar.TypeSymlink, link: outside}, {name: "abs/pwned", body: "x"}},
		"relative": {{name: "rel", typ: tar.TypeSymlink, link: "../../../../../../" + outside}, {name: "rel/pwned", body: "x"}},
		// A link climbing above the root is clamped to the root.
		"dotdot": {{name: "dir/", typ: tar.TypeDir}, {name: "dir/up", typ: tar.TypeSymlink, link: "../.."}, {name: "dir/up/pwned", body: "x"}},
		// An absolute link to a directory that exists inside the layer resolves there.
		"inside": {{name: "etc/", typ: tar.TypeDir}, {name: "e", typ: tar.TypeSymlink, link: "/etc"}, {name: "e/pwned", body: "x"}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			layer, sb, err := extractInto(t, mkTar(t, entries...), extractOptions{})
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("wrote through a symlink to outside: %v", ents)
			}
			onlyLayerInSandbox(t, sb)
			if err != nil {
				if !errors.Is(err, ErrUnsafeLayer) {
					t.Fatalf("err = %v, want nil or ErrUnsafeLayer", err)
				}
				return
			}
			switch name {
			case "dotdot":
				if _, err := os.Stat(filepath.Join(layer, "pwned")); err != nil {
					t.Errorf("dir/up/pwned not clamped to the layer root: %v", err)
				}
			case "inside":
				if _, err := os.Stat(filepath.Join(layer, "etc/pwned")); err != nil {
					t.Errorf("e/pwned not resolved inside the layer: %v", err)
				}
				if l, _ := os.Readlink(filepath.Join(layer, "e")); l != "/etc" {
					t.Errorf("symlink target changed: %q", l)
				}
			}
		})
	}
	if t.Failed() {
		return
	}
	// The dangling cases must be refused, not silently dropped.
	if _, _, err := extractInto(t, mkTar(t, cases["absolute"]...), extractOptions{}); !errors.Is(err, ErrUnsafeLayer) {
		t.Errorf("absolute dangling symlink: err = %v", err)
	}
}

func TestExtractSymlinkThenOverwriteDoesNotFollow(t *testing.T) {
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("safe"), 0o644)
	data := mkTar(t,
		tarEntry{name: "f", typ: tar.TypeSymlink, link: victim},
		tarEntry{name: "f", body: "overwritten"},
	)
	layer, _, err := extractInto(t, data, extractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "safe" {
		t.Fatalf("file outside the layer was overwritten through a symlink")
	}
	if b, _ := os.ReadFile(filepath.Join(layer, "f")); string(b) != "overwritten" {
		t.Errorf("entry not replaced: %q", b)
	}
}

func TestExtractHardlinkOutsideRejected(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o644)
	for _, link := range []string{"../secret", "../../../../" + outside} {
		t.Run(link, func(t *testing.T) {
			_, sb, err := extractInto(t, mkTar(t, tarEntry{name: "h", typ: tar.TypeLink, link: link}), extractOptions{})
			if !errors.Is(err, ErrUnsafeLayer) {
				t.Fatalf("err = %v, want ErrUnsafeLayer", err)
			}
			onlyLayerInSandbox(t, sb)
		})
	}
	t.Run("absolute", func(t *testing.T) {
		// An absolute link name refers to the layer's own root: no such file there.
		layer, _, err := extractInto(t, mkTar(t, tarEntry{name: "h", typ: tar.TypeLink, link: outside}), extractOptions{})
		if err == nil {
			if b, _ := os.ReadFile(filepath.Join(layer, "h")); string(b) == "secret" {
				t.Fatal("hardlinked a file from outside the layer")
			}
		}
	})
	t.Run("via symlink", func(t *testing.T) {
		dir := filepath.Dir(outside)
		layer, _, err := extractInto(t, mkTar(t,
			tarEntry{name: "d", typ: tar.TypeSymlink, link: dir},
			tarEntry{name: "h", typ: tar.TypeLink, link: "d/secret"},
		), extractOptions{})
		if err == nil {
			if b, _ := os.ReadFile(filepath.Join(layer, "h")); string(b) == "secret" {
				t.Fatal("hardlinked a file from outside the layer through a symlink")
			}
		}
	})
}

func TestExtractHardlinkInside(t *testing.T) {
	layer, _, err := extractInto(t, mkTar(t, tarEntry{name: "a", body: "data"}, tarEntry{name: "b", typ: tar.TypeLink, link: "a"}), extractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fa, _ := os.Stat(filepath.Join(layer, "a"))
	fb, _ := os.Stat(filepath.Join(layer, "b"))
	if !os.SameFile(fa, fb) {
		t.Errorf("b is not a hardlink of a")
	}
}

func TestExtractDeviceNodesSkipped(t *testing.T) {
	layer, _, err := extractInto(t, mkTar(t,
		tarEntry{name: "dev/sda", typ: tar.TypeBlock, mode: 0o660, devmajor: 8},
		tarEntry{name: "dev/mem", typ: tar.TypeChar, mode: 0o660, devmajor: 1},
		tarEntry{name: "fifo", typ: tar.TypeFifo, mode: 0o600},
	), extractOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"dev/sda", "dev/mem"} {
		if _, err := os.Lstat(filepath.Join(layer, n)); !os.IsNotExist(err) {
			t.Errorf("%s: device node created (%v)", n, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(layer, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v", err)
	}
}

func TestExtractSetuidKeptInPrivateStore(t *testing.T) {
	s := openStore(t)
	img, err := s.Import(context.Background(), bytes.NewReader(mkTar(t, tarEntry{name: "bin/su", body: "x", mode: 0o4755})), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(s.LayerPath(img.ChainIDs[0]), "bin/su"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("setuid bit lost (images such as ping/sudo need it)")
	}
	// ...but unprivileged host users cannot reach it: the store root is private.
	for _, d := range []string{s.Root(), filepath.Join(s.Root(), "layers"), filepath.Join(s.Root(), "mounts")} {
		st, _ := os.Stat(d)
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is %v, want no group/other access", d, st.Mode().Perm())
		}
	}
}

func TestExtractAbsurdSizeRejected(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "huge", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 50})
	// No data follows: the size alone must be refused before anything is written.
	_, sb, err := extractInto(t, buf.Bytes(), extractOptions{MaxEntrySize: 1 << 30})
	if !errors.Is(err, ErrUnsafeLayer) {
		t.Fatalf("err = %v, want ErrUnsafeLayer", err)
	}
	onlyLayerInSandbox(t, sb)
	if _, err := os.Stat(filepath.Join(sb, "layer", "huge")); !os.IsNotExist(err) {
		t.Errorf("huge entry created")
	}
}

func TestExtractTruncatedEntry(t *testing.T) {
	data := mkTar(t, tarEntry{name: "f", body: "0123456789"})
	_, _, err := extractInto(t, data[:512+5], extractOptions{})
	if err == nil {
		t.Fatal("truncated tar accepted")
	}
}

func TestExtractWhiteouts(t *testing.T) {
	layer, _, err := extractInto(t, mkTar(t,
		tarEntry{name: "etc/.wh.passwd"},
		tarEntry{name: "var/", typ: tar.TypeDir},
		tarEntry{name: "var/.wh..wh..opq"},
		tarEntry{name: "var/keep", body: "k"},
	), extractOptions{})
	if err != nil {
		if os.Geteuid() != 0 {
			t.Skipf("whiteouts need privileges here: %v", err)
		}
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(layer, "etc/passwd"))
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("whiteout not converted to a 0:0 char device: %v %v", fi, err)
	}
	if _, err := os.Lstat(filepath.Join(layer, "etc/.wh.passwd")); !os.IsNotExist(err) {
		t.Errorf(".wh. file left in the layer")
	}
	if v := getxattr(filepath.Join(layer, "var"), "trusted.overlay.opaque"); string(v) != "y" {
		t.Errorf("opaque xattr = %q", v)
	}
	if _, err := os.Lstat(filepath.Join(layer, "var/.wh..wh..opq")); !os.IsNotExist(err) {
		t.Errorf("opaque marker file left in the layer")
	}
}

func TestExtractBadWhiteout(t *testing.T) {
	for _, n := range []string{"a/.wh..", "a/.wh."} {
		_, _, err := extractInto(t, mkTar(t, tarEntry{name: n}), extractOptions{})
		if !errors.Is(err, ErrUnsafeLayer) {
			t.Errorf("%s: err = %v", n, err)
		}
	}
}

func TestImportDigestMismatchLeavesNothing(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	data := mkTar(t, tarEntry{name: "f", body: "hello"})
	wrong := "sha256:" + string(bytes.Repeat([]byte("0"), 64))
	cf := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digestOf(data) + `"]},"config":{}}`)
	h := mustHash(t, wrong)
	_, err := s.ingest(ctx, imageSource{config: cf, layers: []v1Descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Size: int64(len(data)), Digest: h}},
		open: func(context.Context, int) (ioReadCloser, error) { return nopCloser(bytes.NewReader(data)), nil }}, ingestOptions{unpack: true})
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("err = %v, want ErrDigest", err)
	}
	assertEmptyStore(t, s)
	// Diff ID mismatch (config lies about the content).
	cf2 := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + wrong + `"]},"config":{}}`)
	_, err = s.ingest(ctx, imageSource{config: cf2, layers: []v1Descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Size: int64(len(data))}},
		open: func(context.Context, int) (ioReadCloser, error) { return nopCloser(bytes.NewReader(data)), nil }}, ingestOptions{unpack: true})
	if !errors.Is(err, ErrDigest) {
		t.Fatalf("err = %v, want ErrDigest", err)
	}
	assertEmptyStore(t, s)
}

func assertEmptyStore(t *testing.T, s *Store) {
	t.Helper()
	for _, d := range []string{"blobs/sha256", "layers", "l"} {
		ents, _ := os.ReadDir(filepath.Join(s.Root(), d))
		if len(ents) != 0 {
			t.Errorf("%s not empty after a failed write: %d entries", d, len(ents))
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root(), "tmp", s.session))
	if len(ents) != 0 {
		t.Errorf("scratch not cleaned: %d entries", len(ents))
	}
	if imgs, _ := s.List(context.Background()); len(imgs) != 0 {
		t.Errorf("images recorded: %d", len(imgs))
	}
}
