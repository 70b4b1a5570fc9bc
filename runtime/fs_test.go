package runtime

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// fsFixture builds a rootfs with hostile symlinks and a secret outside it:
//
//	<tmp>/secret/passwd          outside the rootfs
//	<tmp>/root/etc/passwd        the container's
//	<tmp>/root/escape -> /       absolute link to the root
//	<tmp>/root/up -> ../../..    relative link climbing out
//	<tmp>/root/deep/link -> ../../../../secret
//	<tmp>/root/abs -> /etc
//	<tmp>/vol/data.txt           mounted at /mnt/vol
func fsFixture(t *testing.T) (tmp, root string, f *ContainerFS) {
	t.Helper()
	tmp = t.TempDir()
	root = filepath.Join(tmp, "root")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"secret", "root/etc", "root/deep", "root/mnt/vol", "vol"} {
		must(os.MkdirAll(filepath.Join(tmp, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(tmp, "secret/passwd"), []byte("HOST SECRET\n"), 0o600))
	must(os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0\n"), 0o644))
	must(os.WriteFile(filepath.Join(tmp, "vol/data.txt"), []byte("volume\n"), 0o644))
	must(os.Symlink("/", filepath.Join(root, "escape")))
	must(os.Symlink("../../..", filepath.Join(root, "up")))
	must(os.Symlink("../../../../secret", filepath.Join(root, "deep/link")))
	must(os.Symlink("/etc", filepath.Join(root, "abs")))
	must(os.Symlink(filepath.Join(tmp, "secret"), filepath.Join(root, "hostpath")))
	return tmp, root, NewContainerFS(root, false, []FSMount{{Target: "/mnt/vol", Source: filepath.Join(tmp, "vol")}})
}

func TestResolveStaysInside(t *testing.T) {
	tmp, _, f := fsFixture(t)
	for _, tc := range []struct {
		in, want string
		follow   bool
	}{
		{"/escape", "/", true},
		{"/escape", "/escape", false},
		{"/escape/etc/passwd", "/etc/passwd", true},
		{"/up/etc/passwd", "/etc/passwd", true},
		{"up/../../etc", "/etc", true},
		{"/deep/link", "/secret", true},
		{"/deep/link/passwd", "/secret/passwd", true},
		{"/abs/passwd", "/etc/passwd", true},
		{"/hostpath/passwd", filepath.Join(tmp, "secret", "passwd"), true}, // absolute host path, but inside the container
		{"/../../../etc/passwd", "/etc/passwd", true},
		{"/missing/../../x", "/x", true},
		{"/mnt/vol/data.txt", "/mnt/vol/data.txt", true},
	} {
		got, err := f.Resolve(tc.in, tc.follow)
		if err != nil {
			t.Fatalf("Resolve(%q): %v", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("Resolve(%q, %v) = %q, want %q", tc.in, tc.follow, got, tc.want)
		}
	}
}

func TestResolveLoop(t *testing.T) {
	root := t.TempDir()
	if err := os.Symlink("/b", filepath.Join(root, "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/a", filepath.Join(root, "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := NewContainerFS(root, false, nil).Resolve("/a/x", true); err == nil {
		t.Fatal("a symlink loop resolved")
	}
}

// readTree returns path -> content ("dir", "-> target" or the file's bytes) below dir.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "-> " + l
		case d.IsDir():
			out[rel] = "dir"
		default:
			b, _ := os.ReadFile(p)
			out[rel] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCopyOutNeverReadsTheHost(t *testing.T) {
	tmp, _, f := fsFixture(t)
	host := NewContainerFS("/", false, nil)
	ctx := context.Background()
	for _, src := range []string{"/deep/link/passwd", "/up/secret/passwd", "/escape/../secret/passwd"} {
		dst := filepath.Join(t.TempDir(), "out")
		err := Copy(ctx, f, src, host, dst, CopyOptions{FollowLink: true})
		if !errors.Is(err, fs.ErrNotExist) {
			b, _ := os.ReadFile(dst)
			t.Errorf("cp %s: err %v, copied %q; want not found", src, err, b)
		}
	}
	// The container's own file through hostile links is fine.
	dst := filepath.Join(t.TempDir(), "passwd")
	if err := Copy(ctx, f, "/up/etc/passwd", host, dst, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "root:x:0:0\n" {
		t.Fatalf("copied %q", b)
	}
	// A link copied without -L stays a link.
	dst = filepath.Join(t.TempDir(), "l")
	if err := Copy(ctx, f, "/deep/link", host, dst, CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, err := os.Readlink(dst); err != nil || l != "../../../../secret" {
		t.Fatalf("link copied as %q, %v", l, err)
	}
	_ = tmp
}

func TestCopyInNeverWritesTheHost(t *testing.T) {
	tmp, root, f := fsFixture(t)
	host := NewContainerFS("/", false, nil)
	ctx := context.Background()
	src := filepath.Join(t.TempDir(), "pwn")
	if err := os.WriteFile(src, []byte("pwned\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"/deep/link/", "/up/secret/", "/escape/secret/", "/hostpath/"} {
		err := Copy(ctx, host, src, f, dst, CopyOptions{})
		if _, serr := os.Stat(filepath.Join(tmp, "secret", "pwn")); serr == nil {
			t.Fatalf("cp into %s wrote the host's directory (err %v)", dst, err)
		}
	}
	// Into /secret/ once it exists in the container: lands in the rootfs.
	if err := os.Mkdir(filepath.Join(root, "secret"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Copy(ctx, host, src, f, "/deep/link/", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "secret", "pwn")); err != nil || string(b) != "pwned\n" {
		t.Fatalf("rootfs copy: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "secret", "pwn")); err == nil {
		t.Fatal("host secret directory was written")
	}
}

func TestExtractHostileArchive(t *testing.T) {
	tmp, root, f := fsFixture(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	add(&tar.Header{Name: "../../../../secret/a", Typeflag: tar.TypeReg}, "a")
	add(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/"}, "")
	add(&tar.Header{Name: "l/b", Typeflag: tar.TypeReg}, "b")
	add(&tar.Header{Name: "m", Typeflag: tar.TypeSymlink, Linkname: "../../../../secret"}, "")
	add(&tar.Header{Name: "m/c", Typeflag: tar.TypeReg}, "c")
	add(&tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../../../secret/passwd"}, "")
	tw.Close()
	err := f.ExtractTar(context.Background(), &buf, "/mnt/vol", ExtractOptions{})
	// The hard link names a file that does not exist inside: an error, but never the host's.
	if err == nil {
		t.Log("extract finished")
	}
	if got := readTree(t, filepath.Join(tmp, "secret")); len(got) != 1 {
		t.Fatalf("host directory changed: %v", got)
	}
	want := map[string]string{"data.txt": "volume\n", "secret": "dir", "secret/a": "a", "l": "-> /", "m": "-> ../../../../secret"}
	_ = want
	if b, err := os.ReadFile(filepath.Join(tmp, "vol", "secret", "a")); err != nil || string(b) != "a" {
		t.Errorf("../ member: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "b")); err != nil || string(b) != "b" {
		t.Errorf("member through a link to /: %q %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "secret", "c")); err != nil || string(b) != "c" {
		t.Errorf("member through a climbing link: %q %v", b, err)
	}
}

func TestCopyRules(t *testing.T) {
	_, root, f := fsFixture(t)
	host := NewContainerFS("/", false, nil)
	ctx := context.Background()
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "d/sub"), 0o755)
	os.WriteFile(filepath.Join(src, "d/f"), []byte("f"), 0o640)
	os.WriteFile(filepath.Join(src, "d/sub/g"), []byte("g"), 0o644)
	os.Symlink("f", filepath.Join(src, "d/lnk"))
	os.Link(filepath.Join(src, "d/f"), filepath.Join(src, "d/hard"))
	tree := map[string]string{"f": "f", "sub": "dir", "sub/g": "g", "lnk": "-> f", "hard": "f"}
	prefixed := func(p string) map[string]string {
		out := map[string]string{p: "dir"}
		for k, v := range tree {
			out[p+"/"+k] = v
		}
		return out
	}
	check := func(name string, got, want map[string]string) {
		t.Helper()
		var g, w []string
		for k, v := range got {
			g = append(g, k+"="+v)
		}
		for k, v := range want {
			w = append(w, k+"="+v)
		}
		sort.Strings(g)
		sort.Strings(w)
		if strings.Join(g, " ") != strings.Join(w, " ") {
			t.Errorf("%s:\n got %v\nwant %v", name, g, w)
		}
	}
	// Into an existing directory: under the source's name.
	if err := Copy(ctx, host, filepath.Join(src, "d"), f, "/mnt/vol", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	got := readTree(t, filepath.Join(filepath.Dir(root), "vol"))
	delete(got, "data.txt")
	check("existing dir", got, prefixed("d"))
	// To a missing path: becomes the copy.
	if err := Copy(ctx, host, filepath.Join(src, "d"), f, "/new", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	check("missing dst", readTree(t, filepath.Join(root, "new")), tree)
	// Content only.
	os.Mkdir(filepath.Join(root, "into"), 0o755)
	if err := Copy(ctx, host, filepath.Join(src, "d")+"/.", f, "/into", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	check("content only", readTree(t, filepath.Join(root, "into")), tree)
	// File onto file, file into dir, dir onto file.
	if err := Copy(ctx, host, filepath.Join(src, "d/f"), f, "/etc/passwd", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); string(b) != "f" {
		t.Errorf("file onto file: %q", b)
	}
	if err := Copy(ctx, host, filepath.Join(src, "d"), f, "/etc/passwd", CopyOptions{}); !errors.Is(err, ErrNotDir) {
		t.Errorf("dir onto file: %v", err)
	}
	if err := Copy(ctx, host, filepath.Join(src, "d/f"), f, "/nodir/", CopyOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("file to missing dir/: %v", err)
	}
	if st, err := os.Stat(filepath.Join(root, "new/f")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("mode not kept: %v %v", st, err)
	}
	// Out again, as a tar stream.
	var buf bytes.Buffer
	if err := f.WriteTar(ctx, &buf, "/new", "new", false); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	if err := host.ExtractTar(ctx, &buf, out, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	check("tar round trip", readTree(t, out), prefixed("new"))
	// Read-only mounts refuse writes.
	ro := NewContainerFS(root, false, []FSMount{{Target: "/ro", Source: t.TempDir(), ReadOnly: true}})
	if err := Copy(ctx, host, filepath.Join(src, "d/f"), ro, "/ro/", CopyOptions{}); !errors.Is(err, ErrReadOnlyPath) {
		t.Errorf("read-only mount: %v", err)
	}
}

// Copying into a container with a user namespace is refused with a clear error (its ID-mapped
// mounts have no ID for host root), copying out is not.
func TestFSRefusesWritesIntoUsernsContainer(t *testing.T) {
	d := t.TempDir()
	r, err := New(Config{Root: filepath.Join(d, "root"), RunRoot: filepath.Join(d, "run")})
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(d, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		mode   string
		refuse bool
	}{{"", false}, {"host", false}, {"auto", true}} {
		id := NewID()
		if err := os.MkdirAll(r.dir(id), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := writeJSON(filepath.Join(r.dir(id), "config.json"), ContainerConfig{ID: id, Name: "c", Rootfs: rootfs, UsernsMode: tc.mode}); err != nil {
			t.Fatal(err)
		}
		f, err := r.FS(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.NewExtractor("/tmp", ExtractOptions{})
		if tc.refuse != errors.Is(err, ErrUnsupported) {
			t.Errorf("userns_mode %q: NewExtractor err %v, refuse %v", tc.mode, err, tc.refuse)
		}
		if _, _, err := f.Stat("/tmp", true); err != nil {
			t.Errorf("userns_mode %q: reading the view: %v", tc.mode, err)
		}
	}
}
