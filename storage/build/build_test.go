package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/storage"
)

func openStore(t *testing.T) *storage.Store {
	t.Helper()
	s, err := storage.Open(filepath.Join(t.TempDir(), "storage"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// writeFiles creates files under dir: name -> content; a name ending in "/" is a directory.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func build(t *testing.T, s Store, dir, dockerfile string, opt Options) (string, string, error) {
	t.Helper()
	var out bytes.Buffer
	opt.ContextDir = dir
	if dockerfile != "" {
		opt.DockerfileInline = dockerfile
	}
	opt.Progress = &out
	id, err := Build(context.Background(), s, nil, opt)
	return id, out.String(), err
}

func mustBuild(t *testing.T, s Store, dir, dockerfile string, opt Options) (storage.Image, string) {
	t.Helper()
	id, out, err := build(t, s, dir, dockerfile, opt)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	img, err := s.Resolve(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return img, out
}

// readImageFile reads a file from an image's layers (no mount).
func readImageFile(t *testing.T, s *storage.Store, img storage.Image, p string) (string, fs.FileInfo) {
	t.Helper()
	tr := layerTree(s, img.ChainIDs)
	rel, err := tr.resolve(p, true)
	if err != nil {
		t.Fatal(err)
	}
	host, fi, err := tr.lookup(rel)
	if err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	if fi.IsDir() {
		return "", fi
	}
	b, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), fi
}

func imageHas(t *testing.T, s *storage.Store, img storage.Image, p string) bool {
	t.Helper()
	tr := layerTree(s, img.ChainIDs)
	rel, _ := tr.resolve(p, true)
	_, _, err := tr.lookup(rel)
	return err == nil
}

// layerTarNames lists the entries of an image's top layer blob.
func layerTarHeaders(t *testing.T, s *storage.Store, img storage.Image) map[string]*tar.Header {
	t.Helper()
	return layerTarHeadersAt(t, s, img, len(img.Layers)-1)
}

// layerTarHeadersAt is layerTarHeaders for img's layer i.
func layerTarHeadersAt(t *testing.T, s *storage.Store, img storage.Image, i int) map[string]*tar.Header {
	t.Helper()
	f, err := s.LayerBlob(context.Background(), img, i)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		out[h.Name] = h
	}
	return out
}

func TestScratchCopyStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Go binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go toolchain")
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"src/go.mod":  "module hello\n\ngo 1.21\n",
		"src/main.go": "package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"hello\\n\") }\n",
	})
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(dir, "bin", "web"), ".")
	cmd.Dir = filepath.Join(dir, "src")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	writeFiles(t, dir, map[string]string{"web.Dockerfile": "FROM scratch\nCOPY bin/web /web\nENTRYPOINT [\"/web\"]\nEXPOSE 8080\nVOLUME /data\n"})
	s := openStore(t)
	img, out := mustBuild(t, s, dir, "", Options{Dockerfile: "web.Dockerfile", Tags: []string{"hello-web:latest"}})
	if len(img.Layers) != 1 {
		t.Fatalf("layers = %d, want 1", len(img.Layers))
	}
	want := storage.ImageConfig{
		Env: []string{DefaultPath}, Entrypoint: []string{"/web"},
		ExposedPorts: []string{"8080/tcp"}, Volumes: []string{"/data"},
	}
	if d := cmp.Diff(want, img.Config); d != "" {
		t.Errorf("config (-want +got):\n%s", d)
	}
	if diff := cmp.Diff([]string{"hello-web:latest"}, img.RepoTags); diff != "" {
		t.Errorf("tags: %s", diff)
	}
	got, fi := readImageFile(t, s, img, "/web")
	orig, _ := os.ReadFile(filepath.Join(dir, "bin", "web"))
	if got != string(orig) || fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("/web differs from the binary or is not executable (%v)", fi.Mode())
	}
	h := layerTarHeaders(t, s, img)["web"]
	if h == nil || h.Uid != 0 || h.Gid != 0 {
		t.Errorf("layer entry web = %+v, want root-owned", h)
	}
	if !strings.Contains(out, "[2/5] COPY bin/web /web") || !strings.Contains(out, "naming to hello-web:latest") {
		t.Errorf("progress:\n%s", out)
	}
	// The binary runs (it is the file we built).
	run := filepath.Join(t.TempDir(), "web")
	os.WriteFile(run, []byte(got), 0o755)
	if b, err := exec.Command(run).Output(); err != nil || string(b) != "hello\n" {
		t.Errorf("run copied binary: %q %v", b, err)
	}
}

func TestMetadataAndArgs(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"app/a.txt": "A", "app/sub/b.txt": "B"})
	df := `ARG BASE=scratch
ARG VERSION=1.0
FROM ${BASE} AS base
ARG VERSION
ARG WHO=world
ENV GREETING="hello $WHO" V=$VERSION
ENV OLD legacy value
LABEL org.example.version=$VERSION "with space"="x y"
WORKDIR /srv
WORKDIR app
COPY app/ ./
USER 1000:1000
SHELL ["/bin/ash", "-eo", "pipefail", "-c"]
CMD echo $GREETING
HEALTHCHECK --interval=5s --retries=3 CMD ["/bin/check", "-q"]
STOPSIGNAL SIGINT
ONBUILD COPY . /onbuild
EXPOSE 80 53/udp 9000-9001
`
	img, out := mustBuild(t, s, dir, df, Options{Args: map[string]string{"WHO": "berth", "UNUSED": "x"}, Labels: map[string]string{"extra": "1"}})
	c := img.Config
	wantEnv := []string{DefaultPath, "GREETING=hello berth", "V=1.0", "OLD=legacy value"}
	if d := cmp.Diff(wantEnv, c.Env); d != "" {
		t.Errorf("env (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"org.example.version": "1.0", "with space": "x y", "extra": "1"}, c.Labels); d != "" {
		t.Errorf("labels: %s", d)
	}
	if c.WorkingDir != "/srv/app" || c.User != "1000:1000" || c.StopSignal != "SIGINT" {
		t.Errorf("workdir/user/stopsignal = %q %q %q", c.WorkingDir, c.User, c.StopSignal)
	}
	if d := cmp.Diff([]string{"/bin/ash", "-eo", "pipefail", "-c", "echo $GREETING"}, c.Cmd); d != "" {
		t.Errorf("cmd: %s", d)
	}
	if c.Healthcheck == nil || c.Healthcheck.Interval.Seconds() != 5 || c.Healthcheck.Retries != 3 ||
		!cmp.Equal(c.Healthcheck.Test, []string{"CMD", "/bin/check", "-q"}) {
		t.Errorf("healthcheck = %+v", c.Healthcheck)
	}
	if d := cmp.Diff([]string{"COPY . /onbuild"}, c.OnBuild); d != "" {
		t.Errorf("onbuild: %s", d)
	}
	if d := cmp.Diff([]string{"53/udp", "80/tcp", "9000/tcp", "9001/tcp"}, c.ExposedPorts); d != "" {
		t.Errorf("ports: %s", d)
	}
	if got, _ := readImageFile(t, s, img, "/srv/app/sub/b.txt"); got != "B" {
		t.Errorf("b.txt = %q", got)
	}
	if !strings.Contains(out, "UNUSED") {
		t.Errorf("no warning about the unused build arg:\n%s", out)
	}
	// ENTRYPOINT resets an inherited CMD; CMD in the same stage is kept.
	img2, _ := mustBuild(t, s, dir, "FROM "+img.ID+"\nENTRYPOINT [\"/x\"]\n", Options{})
	if img2.Config.Cmd != nil || len(img2.Config.OnBuild) != 0 {
		t.Errorf("cmd = %q onbuild = %q, want both reset", img2.Config.Cmd, img2.Config.OnBuild)
	}
	// The ONBUILD trigger ran in the child build.
	if !imageHas(t, s, img2, "/onbuild/app/a.txt") {
		t.Errorf("ONBUILD COPY did not run")
	}
}

func TestMultiStageCopyFrom(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"x.txt": "stage0", "y.txt": "unused"})
	df := `FROM scratch AS build
COPY x.txt /out/x.txt
COPY x.txt /out/link-target
FROM scratch AS unused
COPY does-not-exist /
FROM scratch
COPY --from=build /out/ /dist/
COPY --from=0 --chown=7:8 --chmod=600 /out/x.txt /single
`
	img, out := mustBuild(t, s, dir, df, Options{})
	if got, _ := readImageFile(t, s, img, "/dist/x.txt"); got != "stage0" {
		t.Errorf("/dist/x.txt = %q", got)
	}
	h := layerTarHeaders(t, s, img)["single"]
	if h == nil || h.Uid != 7 || h.Gid != 8 || h.Mode != 0o600 {
		t.Errorf("single = %+v", h)
	}
	if strings.Contains(out, "does-not-exist") {
		t.Errorf("an unneeded stage was built:\n%s", out)
	}
	// --target builds an earlier stage.
	img2, _ := mustBuild(t, s, dir, df, Options{Target: "build"})
	if !imageHas(t, s, img2, "/out/x.txt") || imageHas(t, s, img2, "/dist") {
		t.Errorf("target build has the wrong content")
	}
}

func TestCacheHitsAndMisses(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "1", "b": "2", "c/d": "3"})
	df := `FROM scratch
ENV X=1
COPY a /a
LABEL l=1
COPY b /b
WORKDIR /w
COPY c /c
ENV Y=2
COPY a /a2
CMD ["/a"]
`
	first, out1 := mustBuild(t, s, dir, df, Options{Tags: []string{"cached:1"}})
	if strings.Contains(out1, "CACHED") {
		t.Errorf("first build used the cache:\n%s", out1)
	}
	n1 := countImages(t, s)
	second, out2 := mustBuild(t, s, dir, df, Options{})
	if second.ID != first.ID {
		t.Errorf("rebuild made a new image %s != %s", second.ID, first.ID)
	}
	if got := strings.Count(out2, "CACHED"); got != 5 {
		t.Errorf("rebuild: %d steps cached, want 5:\n%s", got, out2)
	}
	if countImages(t, s) != n1 {
		t.Errorf("rebuild created images")
	}
	// mtime only: still cached.
	os.Chtimes(filepath.Join(dir, "b"), first.Created.Add(-1e12), first.Created.Add(-1e12))
	if third, out := mustBuild(t, s, dir, df, Options{}); third.ID != first.ID {
		t.Errorf("touching a file invalidated the cache:\n%s", out)
	}
	// Change b: steps before it cached, it and after rebuilt.
	writeFiles(t, dir, map[string]string{"b": "changed"})
	fourth, out4 := mustBuild(t, s, dir, df, Options{})
	if fourth.ID == first.ID {
		t.Fatal("change not picked up")
	}
	if got := strings.Count(out4, "CACHED"); got != 1 {
		t.Errorf("after change: %d cached, want 1 (COPY a):\n%s", got, out4)
	}
	if got, _ := readImageFile(t, s, fourth, "/b"); got != "changed" {
		t.Errorf("/b = %q", got)
	}
	// --no-cache ignores everything.
	_, out5 := mustBuild(t, s, dir, df, Options{NoCache: true})
	if strings.Contains(out5, "CACHED") {
		t.Errorf("--no-cache used the cache:\n%s", out5)
	}
	// A build arg change that reaches the config rebuilds (no stale final image).
	df2 := "FROM scratch\nARG V=1\nENV V=$V\nCOPY a /a\n"
	i1, _ := mustBuild(t, s, dir, df2, Options{})
	i2, _ := mustBuild(t, s, dir, df2, Options{Args: map[string]string{"V": "2"}})
	if i1.ID == i2.ID || !contains(i2.Config.Env, "V=2") {
		t.Errorf("build arg change ignored: %v", i2.Config.Env)
	}
	held, err := CachedImages(s.Root(), "")
	if err != nil || len(held) == 0 || held[fourth.ID] {
		t.Errorf("CachedImages = %v, %v", held, err)
	}
	// Prune drops the cache's untagged images, keeps the tagged one.
	res, err := Prune(context.Background(), s, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Entries == 0 || len(res.Deleted) == 0 {
		t.Errorf("prune = %+v", res)
	}
	if _, err := s.Resolve(context.Background(), "cached:1"); err != nil {
		t.Errorf("tagged image pruned: %v", err)
	}
	for _, img := range []storage.Image{fourth, i1, i2} {
		if _, err := s.Resolve(context.Background(), img.ID); err != nil {
			t.Errorf("untagged build result %s pruned: %v", img.ID, err)
		}
	}
	if _, out := mustBuild(t, s, dir, df, Options{}); strings.Contains(out, "CACHED") {
		t.Errorf("cache survived prune:\n%s", out)
	}
}

func countImages(t *testing.T, s *storage.Store) int {
	l, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return len(l)
}

func TestDockerignore(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		".dockerignore": "# comment\n*.log\nsecret/\nnode_modules\n!keep.log\n",
		"a.log":         "x", "keep.log": "k", "main.go": "m", "secret/key": "s",
		"node_modules/x/y": "n", "sub/b.log": "sublog",
	})
	img, _ := mustBuild(t, s, dir, "FROM scratch\nCOPY . /app/\n", Options{})
	for p, want := range map[string]bool{
		"/app/main.go": true, "/app/keep.log": true, "/app/a.log": false, "/app/secret": false,
		"/app/node_modules": false, "/app/sub/b.log": true, "/app/.dockerignore": true,
	} {
		if got := imageHas(t, s, img, p); got != want {
			t.Errorf("%s present = %v, want %v", p, got, want)
		}
	}
	_, _, err := build(t, s, dir, "FROM scratch\nCOPY secret/key /k\n", Options{})
	if !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), ".dockerignore") || !strings.Contains(err.Error(), "secret/key") {
		t.Errorf("excluded source: %v", err)
	}
	// A Dockerfile-specific ignore file wins.
	writeFiles(t, dir, map[string]string{"x.Dockerfile": "FROM scratch\nCOPY . /app/\n", "x.Dockerfile.dockerignore": "main.go\n"})
	img2, _ := mustBuild(t, s, dir, "", Options{Dockerfile: "x.Dockerfile"})
	if imageHas(t, s, img2, "/app/main.go") || !imageHas(t, s, img2, "/app/a.log") {
		t.Errorf("x.Dockerfile.dockerignore not applied")
	}
}

func TestCopyGlobsAndDestinations(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a", "b.txt": "b", "c.md": "c", "d/e.txt": "e"})
	os.Symlink("a.txt", filepath.Join(dir, "link"))
	df := `FROM scratch
COPY *.txt /txt/
COPY ["d", "/dir"]
COPY link /followed
COPY d/e.txt /dir/renamed
WORKDIR /w
COPY a.txt .
COPY a.txt rel
`
	img, _ := mustBuild(t, s, dir, df, Options{})
	for p, want := range map[string]string{"/txt/a.txt": "a", "/txt/b.txt": "b", "/dir/e.txt": "e", "/followed": "a", "/dir/renamed": "e", "/w/a.txt": "a", "/w/rel": "a"} {
		if got, _ := readImageFile(t, s, img, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if imageHas(t, s, img, "/txt/c.md") {
		t.Error("glob matched c.md")
	}
	_, _, err := build(t, s, dir, "FROM scratch\nCOPY a.txt b.txt /nodir\n", Options{})
	if !errors.Is(err, ErrSyntax) {
		t.Errorf("several sources to a file: %v", err)
	}
	_, _, err = build(t, s, dir, "FROM scratch\nCOPY ../etc/passwd /x\n", Options{})
	if !errors.Is(err, ErrSource) {
		t.Errorf("source outside context: %v", err)
	}
}

func TestAddExtractsLocalTar(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "pkg/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "pkg/file", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2})
	tw.Write([]byte("hi"))
	tw.WriteHeader(&tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Close()
	zw.Close()
	os.WriteFile(filepath.Join(dir, "pkg.tar.gz"), buf.Bytes(), 0o644)
	img, _ := mustBuild(t, s, dir, "FROM scratch\nADD pkg.tar.gz /opt/\nCOPY pkg.tar.gz /raw.tgz\n", Options{})
	if got, _ := readImageFile(t, s, img, "/opt/pkg/file"); got != "hi" {
		t.Errorf("/opt/pkg/file = %q", got)
	}
	if !imageHas(t, s, img, "/opt/escape") || imageHas(t, s, img, "/escape") {
		t.Errorf("../escape not kept inside /opt")
	}
	if !imageHas(t, s, img, "/raw.tgz") {
		t.Errorf("COPY extracted the archive")
	}
	_, _, err := build(t, s, dir, "FROM scratch\nADD https://example.com/x /x\n", Options{})
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("ADD URL: %v", err)
	}
}

func TestErrorsNameTheLine(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "a"})
	for _, tc := range []struct {
		name, df string
		line     int
		class    error
		text     string
	}{
		{"unknown", "FROM scratch\nCOPY a /a\nFROBNICATE x\n", 3, ErrSyntax, "FROBNICATE"},
		{"missing source", "FROM scratch\n\nCOPY nope /x\n", 3, ErrSource, `"nope"`},
		{"bad flag", "FROM scratch\nCOPY --frm=x a /a\n", 2, ErrSyntax, "--frm"},
		{"before from", "ENV A=1\nFROM scratch\n", 1, ErrSyntax, "ENV"},
		{"no from", "ARG X=1\n", 0, ErrSyntax, "no FROM"},
		{"bad expose", "FROM scratch\nEXPOSE http\n", 2, ErrSyntax, "http"},
		{"unknown base", "FROM nosuchimage:1\n", 1, ErrBaseImage, "nosuchimage"},
		{"run without runtime", "FROM scratch\nCOPY a /a\nRUN true\n", 3, ErrNoRunner, "RUN"},
		{"shell form SHELL", "FROM scratch\nSHELL /bin/sh\n", 2, ErrSyntax, "JSON"},
		{"bad syntax", "FROM scratch\nENV A=\"unterminated\n", 2, ErrSyntax, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := build(t, s, dir, tc.df, Options{})
			if !errors.Is(err, tc.class) {
				t.Fatalf("err = %v, want %v", err, tc.class)
			}
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("err = %T, want *Error", err)
			}
			if be.Line != tc.line {
				t.Errorf("line = %d, want %d (%v)", be.Line, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("%q does not mention %q", err, tc.text)
			}
		})
	}
}

// fakeMounter runs RUN steps without root: Mount gives a plain directory that already holds
// the image's files; the fake runner edits it; the new layer is what changed (a copy of the
// whole upper directory, which is what CreateFromDir reads).
type fakeMounter struct {
	*storage.Store
	dirs map[string]string
}

func (f *fakeMounter) Mount(ctx context.Context, cid, image string) (string, error) {
	d, err := os.MkdirTemp("", "fake-rootfs-")
	if err != nil {
		return "", err
	}
	f.dirs[cid] = d
	return d, nil
}
func (f *fakeMounter) Unmount(ctx context.Context, cid string) error { return nil }
func (f *fakeMounter) UpperDir(cid string) string                    { return f.dirs[cid] }
func (f *fakeMounter) RemoveContainerLayer(ctx context.Context, cid string) error {
	os.RemoveAll(f.dirs[cid])
	delete(f.dirs, cid)
	return nil
}

type fakeRunner struct {
	calls []RunSpec
}

// Run interprets "write FILE TEXT", "fail CODE" and "echo TEXT" (the last shell word).
func (r *fakeRunner) Run(ctx context.Context, spec RunSpec) (int, error) {
	r.calls = append(r.calls, spec)
	cmd := spec.Args[len(spec.Args)-1]
	f := strings.Fields(cmd)
	switch f[0] {
	case "write":
		os.WriteFile(filepath.Join(spec.Rootfs, f[1]), []byte(strings.Join(f[2:], " ")), 0o644)
	case "fail":
		spec.Stdout.Write([]byte("compiling...\nerror: it broke\n"))
		if f[1] == "7" {
			return 7, nil
		}
		return 1, nil
	case "echo":
		spec.Stdout.Write([]byte(strings.Join(f[1:], " ") + "\n"))
	}
	return 0, nil
}

func TestRunWithFakeRunner(t *testing.T) {
	s := openStore(t)
	m := &fakeMounter{Store: s, dirs: map[string]string{}}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "a"})
	df := "FROM scratch\nCOPY a /a\nARG MODE=fast\nENV E=1\nWORKDIR /work\nUSER 5\nRUN write made by-run\nRUN [\"/bin/x\", \"echo\", \"exec form\"]\nRUN --network=none echo hi\n"
	r := &fakeRunner{}
	var out bytes.Buffer
	id, err := Build(context.Background(), m, r, Options{ContextDir: dir, DockerfileInline: df, Progress: &out, Name: "svc"})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(r.calls) != 3 {
		t.Fatalf("runner calls = %d", len(r.calls))
	}
	c := r.calls[0]
	if d := cmp.Diff([]string{"/bin/sh", "-c", "write made by-run"}, c.Args); d != "" {
		t.Errorf("args: %s", d)
	}
	if d := cmp.Diff([]string{"MODE=fast", DefaultPath, "E=1"}, c.Env); d != "" {
		t.Errorf("env: %s", d)
	}
	if c.WorkingDir != "/work" || c.User != "5" || c.Network != "default" || r.calls[2].Network != "none" {
		t.Errorf("spec = %+v", c)
	}
	if d := cmp.Diff([]string{"/bin/x", "echo", "exec form"}, r.calls[1].Args); d != "" {
		t.Errorf("exec form: %s", d)
	}
	img, _ := s.Resolve(context.Background(), id)
	if got, _ := readImageFile(t, s, img, "/made"); got != "by-run" {
		t.Errorf("/made = %q", got)
	}
	if !strings.Contains(out.String(), "[svc] [8/9] ") || !strings.Contains(out.String(), "exec form") {
		t.Errorf("progress:\n%s", out.String())
	}
	// Cached: the runner is not called again.
	r.calls = nil
	if id2, err := Build(context.Background(), m, r, Options{ContextDir: dir, DockerfileInline: df}); err != nil || id2 != id || len(r.calls) != 0 {
		t.Errorf("rebuild: %v, same=%v, calls=%d", err, id2 == id, len(r.calls))
	}
	// A build arg change reruns RUN.
	if _, err := Build(context.Background(), m, r, Options{ContextDir: dir, DockerfileInline: df, Args: map[string]string{"MODE": "slow"}}); err != nil || len(r.calls) != 3 {
		t.Errorf("arg change: %v, calls=%d", err, len(r.calls))
	}
}

func TestFailingRunLeavesNoImage(t *testing.T) {
	s := openStore(t)
	m := &fakeMounter{Store: s, dirs: map[string]string{}}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a": "a"})
	mustBuild(t, s, dir, "FROM scratch\nCOPY a /a\n", Options{})
	before := countImages(t, s)
	var out bytes.Buffer
	_, err := Build(context.Background(), m, &fakeRunner{}, Options{
		ContextDir: dir, DockerfileInline: "FROM scratch\nCOPY a /a\nRUN fail 7\nCOPY a /b\n", Progress: &out, Tags: []string{"broken:latest"},
	})
	var be *Error
	if !errors.As(err, &be) || be.ExitCode != 7 || be.Line != 3 || !errors.Is(err, ErrStepFailed) {
		t.Fatalf("err = %#v", err)
	}
	if !strings.Contains(err.Error(), "error: it broke") || !strings.Contains(err.Error(), "code 7") {
		t.Errorf("error lacks output or code: %v", err)
	}
	if !strings.Contains(out.String(), "error: it broke") {
		t.Errorf("output not streamed:\n%s", out.String())
	}
	if countImages(t, s) != before {
		t.Errorf("failed build left images")
	}
	if _, err := s.Resolve(context.Background(), "broken:latest"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("failed build was tagged")
	}
	if len(m.dirs) != 0 {
		t.Errorf("container layer left behind")
	}
}

func TestExtractContext(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "Dockerfile", Typeflag: tar.TypeReg, Mode: 0o644, Size: 25})
	tw.Write([]byte("FROM scratch\nCOPY f /f\n\n\n"))
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("F"))
	tw.WriteHeader(&tar.Header{Name: "evil", Typeflag: tar.TypeSymlink, Linkname: "/"})
	tw.WriteHeader(&tar.Header{Name: "evil/outside", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("X"))
	tw.Close()
	dir := t.TempDir()
	if err := ExtractContext(context.Background(), &buf, dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "f")); string(b) != "F" {
		t.Errorf("f = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "outside")); err != nil {
		t.Errorf("symlinked write not kept inside the context: %v", err)
	}
	s := openStore(t)
	img, _ := mustBuild(t, s, dir, "", Options{})
	if got, _ := readImageFile(t, s, img, "/f"); got != "F" {
		t.Errorf("/f = %q", got)
	}
	// A plain Dockerfile on stdin.
	dir2 := t.TempDir()
	if err := ExtractContext(context.Background(), strings.NewReader("FROM scratch\nLABEL a=b\n"), dir2); err != nil {
		t.Fatal(err)
	}
	img2, _ := mustBuild(t, s, dir2, "", Options{})
	if img2.Config.Labels["a"] != "b" {
		t.Errorf("labels = %v", img2.Config.Labels)
	}
}

func TestTreeWhiteoutsAndSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		// Whiteouts are character devices; only root can make them. The symlink part runs anyway.
		t.Log("skipping whiteouts (needs root)")
	}
	lower, upper := t.TempDir(), t.TempDir()
	writeFiles(t, lower, map[string]string{"usr/bin/x": "x", "gone": "g", "opq/old": "o", "keep/k": "k"})
	os.Symlink("usr/bin", filepath.Join(lower, "bin"))
	os.Symlink("/etc/../../../../usr/bin/x", filepath.Join(upper, "abs"))
	tr := tree{dirs: []string{upper, lower}}
	if r, _ := tr.resolve("/bin/x", true); r != "usr/bin/x" {
		t.Errorf("resolve /bin/x = %q", r)
	}
	if r, _ := tr.resolve("/abs", true); r != "usr/bin/x" {
		t.Errorf("resolve /abs = %q (must stay inside the root)", r)
	}
	if os.Geteuid() == 0 {
		syscall.Mknod(filepath.Join(upper, "gone"), syscall.S_IFCHR, 0)
		os.MkdirAll(filepath.Join(upper, "opq"), 0o755)
		writeFiles(t, upper, map[string]string{"opq/new": "n"})
		if err := syscall.Setxattr(filepath.Join(upper, "opq"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := tr.lookup("gone"); err == nil {
			t.Error("whited-out file visible")
		}
		if _, _, err := tr.lookup("opq/old"); err == nil {
			t.Error("file under opaque dir visible")
		}
		ents, _ := tr.readDir("opq")
		if len(ents) != 1 || ents[0].name != "new" {
			t.Errorf("readDir(opq) = %v", ents)
		}
		ents, _ = tr.readDir("")
		var names []string
		for _, e := range ents {
			names = append(names, e.name)
		}
		if d := cmp.Diff([]string{"abs", "bin", "keep", "opq", "usr"}, names); d != "" {
			t.Errorf("readDir(root): %s", d)
		}
	}
}

func openBenchStore(b *testing.B) (*storage.Store, error) {
	return storage.Open(filepath.Join(b.TempDir(), "storage"))
}

func writeFilesB(b *testing.B, dir string, files map[string]string) {
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHeredocs(t *testing.T) {
	s := openStore(t)
	m := &fakeMounter{Store: s, dirs: map[string]string{}}
	dir := t.TempDir()
	df := "FROM scratch\nENV NAME=berth\nCOPY <<EOF /etc/app.conf\nname=\"$NAME\"\nEOF\nCOPY <<'RAW' <<B /d/\nraw $NAME\nRAW\nb\nB\nRUN <<EOT\necho one\necho two\nEOT\nRUN cat <<'X' > /f\nhello\nX\n"
	r := &fakeRunner{}
	id, err := Build(context.Background(), m, r, Options{ContextDir: dir, DockerfileInline: df})
	if err != nil {
		t.Fatal(err)
	}
	img, _ := s.Resolve(context.Background(), id)
	for p, want := range map[string]string{"/etc/app.conf": "name=\"berth\"\n", "/d/RAW": "raw $NAME\n", "/d/B": "b\n"} {
		if got, _ := readImageFile(t, s, img, p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if len(r.calls) != 2 {
		t.Fatalf("calls = %d", len(r.calls))
	}
	if d := cmp.Diff([]string{"/bin/sh", "-c", "echo one\necho two\n"}, r.calls[0].Args); d != "" {
		t.Errorf("RUN <<EOT: %s", d)
	}
	if d := cmp.Diff([]string{"/bin/sh", "-c", "cat <<'X' > /f\nhello\nX\n"}, r.calls[1].Args); d != "" {
		t.Errorf("RUN cat <<X: %s", d)
	}
}

func TestChownByName(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"passwd": "root:x:0:0:root:/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\n",
		"group":  "root:x:0:\nstaff:x:50:\n",
		"f":      "f",
	})
	df := "FROM scratch\nCOPY passwd /etc/passwd\nCOPY group /etc/group\nCOPY --chown=app f /a\nCOPY --chown=app:staff f /b\nCOPY --chown=10 f /c\n"
	img, _ := mustBuild(t, s, dir, df, Options{})
	want := map[string][2]int{"a": {1001, 1002}, "b": {1001, 50}, "c": {10, 10}}
	for name, ids := range want {
		// Each COPY is its own layer: find the header in the layer that has the file.
		found := false
		for i := range img.ChainIDs {
			if h := layerTarHeadersAt(t, s, img, i)[name]; h != nil {
				found = true
				if h.Uid != ids[0] || h.Gid != ids[1] {
					t.Errorf("%s owner = %d:%d, want %d:%d", name, h.Uid, h.Gid, ids[0], ids[1])
				}
			}
		}
		if !found {
			t.Errorf("%s not in any layer", name)
		}
	}
	_, _, err := build(t, s, dir, "FROM scratch\nCOPY --chown=nobody f /x\n", Options{})
	if !errors.Is(err, ErrSource) || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("unknown user: %v", err)
	}
}

func TestHashCacheSeesSameSizeSameMtimeChange(t *testing.T) {
	s := openStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"f": "aaaa"})
	p := filepath.Join(dir, "f")
	fi, _ := os.Stat(p)
	df := "FROM scratch\nCOPY f /f\n"
	first, _ := mustBuild(t, s, dir, df, Options{})
	os.WriteFile(p, []byte("bbbb"), 0o644)
	os.Chtimes(p, fi.ModTime(), fi.ModTime()) // same size, same mtime: only ctime tells
	second, _ := mustBuild(t, s, dir, df, Options{})
	if second.ID == first.ID {
		t.Fatal("content change with the same size and mtime was missed")
	}
	if got, _ := readImageFile(t, s, second, "/f"); got != "bbbb" {
		t.Errorf("/f = %q", got)
	}
}
