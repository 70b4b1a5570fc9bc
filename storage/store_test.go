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
	"time"

	"github.com/google/go-cmp/cmp"
)

type tarEntry struct {
	name, body, link string
	typ              byte
	mode             int64
	size             int64 // overrides len(body) in the header if set
	devmajor         int64
}

func mkTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, ModTime: time.Unix(1700000000, 0), Devmajor: e.devmajor}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
			if h.Typeflag == tar.TypeDir {
				h.Mode = 0o755
			}
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func openStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "storage"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestImportResolveTag(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	data := mkTar(t, tarEntry{name: "bin/", typ: tar.TypeDir}, tarEntry{name: "bin/hello", body: "hi", mode: 0o755}, tarEntry{name: "etc/motd", body: "welcome"})
	img, err := s.Import(ctx, bytes.NewReader(data), ImportOptions{Ref: "example", Changes: []string{`CMD ["/bin/hello"]`, "ENV A=1 B=\"two words\"", "EXPOSE 80", "WORKDIR /srv", "HEALTHCHECK --interval=5s --start-interval=1s CMD true"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.Layers) != 1 || len(img.RepoTags) != 1 || img.RepoTags[0] != "example:latest" {
		t.Fatalf("image: %+v", img)
	}
	if got := img.Config.Cmd; len(got) != 1 || got[0] != "/bin/hello" {
		t.Errorf("cmd %v", got)
	}
	if img.Config.Healthcheck == nil || img.Config.Healthcheck.StartInterval != time.Second {
		t.Errorf("healthcheck %+v", img.Config.Healthcheck)
	}
	if img.Size != int64(len("hi")+len("welcome")) {
		t.Errorf("size %d", img.Size)
	}
	for _, ref := range []string{"example", "example:latest", "docker.io/library/example:latest", img.ID, img.ID[7:], img.ID[7:19]} {
		got, err := s.Resolve(ctx, ref)
		if err != nil || got.ID != img.ID {
			t.Errorf("Resolve(%q) = %v, %v", ref, got.ID, err)
		}
	}
	if _, err := s.Resolve(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(nope) err = %v", err)
	}
	b, err := os.ReadFile(filepath.Join(s.LayerPath(img.ChainIDs[0]), "bin/hello"))
	if err != nil || string(b) != "hi" {
		t.Fatalf("layer content %q %v", b, err)
	}
	if err := s.Tag(ctx, "example", "reg.local:5000/x/y:v1"); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Resolve(ctx, "reg.local:5000/x/y:v1")
	if got.ID != img.ID || len(got.RepoTags) != 2 {
		t.Errorf("after tag: %+v", got.RepoTags)
	}
	// Importing the same content again shares the layer.
	img2, err := s.Import(ctx, bytes.NewReader(data), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img2.ChainIDs[0] != img.ChainIDs[0] {
		t.Errorf("layer not shared")
	}
}

func TestConcurrentImportsShareLayer(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "storage")
	data := mkTar(t, tarEntry{name: "a", body: strings.Repeat("a", 1<<20)}, tarEntry{name: "b", body: "b"})
	errc := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func(i int) {
			s, err := Open(root)
			if err != nil {
				errc <- err
				return
			}
			defer s.Close()
			_, err = s.Import(ctx, bytes.NewReader(data), ImportOptions{Ref: fmt.Sprintf("c:%d", i)})
			errc <- err
		}(i)
	}
	for i := 0; i < 4; i++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	s := openStoreAt(t, root)
	imgs, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tags := 0
	for _, img := range imgs {
		tags += len(img.RepoTags)
	}
	if tags != 4 {
		t.Errorf("%d tags, want 4", tags)
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "layers")); len(ents) != 1 {
		t.Errorf("%d layers, want 1 shared", len(ents))
	}
}

func openStoreAt(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestParseChanges(t *testing.T) {
	c, err := ParseChanges(ImageConfig{Env: []string{"A=0", "PATH=/bin"}}, []string{
		"ENV A=1", "ENV B two words", `CMD echo hi`, `ENTRYPOINT ["/init"]`, "EXPOSE 80 53/udp",
		`VOLUME ["/data"]`, "WORKDIR /srv", "WORKDIR app", "USER 1000:1000", `LABEL a=b "c"="d e"`,
		"STOPSIGNAL SIGINT", "HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ImageConfig{
		Env: []string{"PATH=/bin", "A=1", "B=two words"}, Cmd: []string{"/bin/sh", "-c", "echo hi"}, Entrypoint: []string{"/init"},
		ExposedPorts: []string{"80/tcp", "53/udp"}, Volumes: []string{"/data"}, WorkingDir: "/srv/app", User: "1000:1000",
		Labels: map[string]string{"a": "b"}, StopSignal: "SIGINT",
		Healthcheck: &Healthcheck{Test: []string{"CMD-SHELL", "curl -f http://localhost/"}, Interval: 5 * time.Second, Retries: 3},
	}
	want.Labels[`"c"`] = "d e"
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("ParseChanges (-want +got):\n%s", diff)
	}
	if _, err := ParseChanges(ImageConfig{}, []string{"RUN rm -rf /"}); !errors.Is(err, ErrInvalidFormat) {
		t.Errorf("RUN accepted: %v", err)
	}
}
