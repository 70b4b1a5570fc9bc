package build

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/berth-dev/berth/storage"
)

// A FROM image missing locally is pulled on demand from a registry (an in-process one on
// loopback), and used for FROM and COPY --from.
func TestFromPullsOnDemand(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	ctx := context.Background()

	// Publish a base image built here.
	src := openStore(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"etc/os-release": "ID=base\n", "passwd": "root:x:0:0::/:/bin/sh\nsvc:x:42:43::/:/bin/sh\n"})
	base, _ := mustBuild(t, src, dir, "FROM scratch\nCOPY etc/ /etc/\nCOPY passwd /etc/passwd\nENV BASE=1\n", Options{})
	ref := host + "/test/base:1"
	if _, err := src.Push(ctx, base.ID, ref, storage.PushOptions{}); err != nil {
		t.Fatal(err)
	}

	dst, err := storage.Open(filepath.Join(t.TempDir(), "storage"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Close() })
	writeFiles(t, dir, map[string]string{"app": "app"})
	img, out := mustBuild(t, dst, dir, "FROM "+ref+"\nCOPY --chown=svc app /app\nCOPY --from="+ref+" /etc/os-release /copied\n", Options{})
	if !contains(img.Config.Env, "BASE=1") {
		t.Errorf("env = %v", img.Config.Env)
	}
	if got, _ := readImageFile(t, dst, img, "/copied"); got != "ID=base\n" {
		t.Errorf("/copied = %q", got)
	}
	if h := layerTarHeaders(t, dst, img)["copied"]; h == nil {
		t.Errorf("layer lacks copied")
	}
	if !strings.Contains(out, "pulling "+ref) {
		t.Errorf("progress:\n%s", out)
	}
	if _, err := dst.Resolve(ctx, ref); err != nil {
		t.Errorf("pulled base not stored: %v", err)
	}
}
