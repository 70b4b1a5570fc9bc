package storage

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Interop with other OCI tools. Debian packages: skopeo, umoci.

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package %q); skipping interop test", name, name)
	}
	return p
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out.String()
}

func saveToFile(t *testing.T, s *Store, ref string, format SaveFormat) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.Save(context.Background(), f, []string{ref}, format); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInteropSkopeo(t *testing.T) {
	skopeo := needTool(t, "skopeo")
	ctx := context.Background()
	s := openStore(t)
	img := twoLayerImage(t, s, "interop:v1")

	// skopeo reads both of berth's archive formats.
	dockerTar := saveToFile(t, s, "interop:v1", SaveDocker)
	out := runTool(t, skopeo, "inspect", "--config", "docker-archive:"+dockerTar)
	if !strings.Contains(out, `"/app"`) {
		t.Errorf("skopeo inspect docker-archive config: %s", out)
	}
	ociTar := saveToFile(t, s, "interop:v1", SaveOCI)
	out = runTool(t, skopeo, "inspect", "--raw", "oci-archive:"+ociTar)
	if !strings.Contains(out, strings.TrimPrefix(img.ID, "sha256:")) {
		t.Errorf("skopeo inspect oci-archive: manifest does not name config %s: %s", img.ID, out)
	}

	// skopeo writes an OCI layout and a (legacy) docker archive that berth loads.
	layout := filepath.Join(t.TempDir(), "layout")
	runTool(t, skopeo, "--insecure-policy", "copy", "oci-archive:"+ociTar, "oci:"+layout+":copied")
	dst := openStore(t)
	imgs, err := dst.Load(ctx, nil, layout, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if imgs[0].ID != img.ID {
		t.Errorf("skopeo oci layout: loaded %s, want %s", imgs[0].ID, img.ID)
	}
	legacy := filepath.Join(t.TempDir(), "legacy.tar")
	runTool(t, skopeo, "--insecure-policy", "copy", "oci:"+layout+":copied", "docker-archive:"+legacy+":legacy:v2")
	imgs, err = dst.Load(ctx, nil, legacy, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if imgs[0].Layers[1] != img.Layers[1] || len(imgs[0].RepoTags) != 1 || imgs[0].RepoTags[0] != "legacy:v2" {
		t.Errorf("skopeo docker-archive: %+v", imgs[0])
	}

	// skopeo reads what berth pushed to a registry.
	reg := startRegistry(t)
	if _, err := s.Push(ctx, "interop:v1", reg+"/interop/app:v1", PushOptions{}); err != nil {
		t.Fatal(err)
	}
	out = runTool(t, skopeo, "inspect", "--tls-verify=false", "docker://"+reg+"/interop/app:v1")
	if !strings.Contains(out, img.Layers[0][7:19]) && !strings.Contains(out, "Layers") {
		t.Errorf("skopeo inspect registry: %s", out)
	}
}

func TestInteropUmoci(t *testing.T) {
	umoci := needTool(t, "umoci")
	ctx := context.Background()
	s := openStore(t)
	twoLayerImage(t, s, "umoci:v1")
	ociTar := saveToFile(t, s, "umoci:v1", SaveOCI)
	layout := filepath.Join(t.TempDir(), "layout")
	os.MkdirAll(layout, 0o755)
	runTool(t, "tar", "-xf", ociTar, "-C", layout)
	// umoci unpacks berth's layout (tag "v1" is the ref.name annotation).
	bundle := filepath.Join(t.TempDir(), "bundle")
	runTool(t, umoci, "unpack", "--rootless", "--image", layout+":v1", bundle)
	if b, err := os.ReadFile(filepath.Join(bundle, "rootfs", "etc", "os-release")); err != nil || string(b) != "ID=test" {
		t.Fatalf("umoci unpack: %q %v", b, err)
	}
	// umoci adds a layer; berth loads the result.
	os.WriteFile(filepath.Join(bundle, "rootfs", "added"), []byte("by umoci"), 0o644)
	runTool(t, umoci, "repack", "--image", layout+":v2", bundle)
	dst := openStore(t)
	imgs, err := dst.Load(ctx, nil, layout, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, img := range imgs {
		if len(img.Layers) == 3 {
			found = true
			if b, err := os.ReadFile(filepath.Join(dst.LayerPath(img.ChainIDs[2]), "added")); err != nil || string(b) != "by umoci" {
				t.Errorf("umoci layer: %q %v", b, err)
			}
		}
	}
	if !found {
		t.Errorf("umoci's image not loaded: %d images", len(imgs))
	}
}
