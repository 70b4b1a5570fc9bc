//go:build linux && integration

package runtime

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCopyRunningContainer copies in and out of a running container whose process planted
// symlinks pointing at / and climbing out with ../, and through a volume mount.
func TestCopyRunningContainer(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hostDir := t.TempDir()
	secret := filepath.Join(hostDir, "secret")
	if err := os.WriteFile(secret, []byte("HOST\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	vol := filepath.Join(e.root, "vol")
	id := e.create(t, func(c *ContainerConfig) {
		c.Args = []string{"sh", "-c", "ln -s / /tmp/root; ln -s ../../../../../../../../" + strings.TrimPrefix(hostDir, "/") + " /tmp/up; " +
			"echo inside > /tmp/file; echo ready > /data/ready; sleep 300"}
		c.Mounts = []Mount{{Type: "volume", Source: vol, Target: "/data"}}
	})
	if err := e.r.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if _, err := os.Stat(filepath.Join(vol, "ready")); err == nil {
			break
		}
		if i > 200 {
			t.Fatal("container did not get ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	f, err := e.r.FS(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	host := NewContainerFS("/", false, nil)
	// Out: a link climbing to the host's directory resolves inside the container.
	out := t.TempDir()
	if err := Copy(ctx, f, "/tmp/up/secret", host, filepath.Join(out, "s"), CopyOptions{FollowLink: true}); err == nil {
		b, _ := os.ReadFile(filepath.Join(out, "s"))
		t.Fatalf("copied the host's file out of the container: %q", b)
	}
	if err := Copy(ctx, f, "/tmp/root/tmp/file", host, filepath.Join(out, "f"), CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(out, "f")); string(b) != "inside\n" {
		t.Fatalf("copied %q", b)
	}
	// In: through the links, into the rootfs; never onto the host.
	src := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(src, []byte("PWNED\n"), 0o644)
	_ = Copy(ctx, host, src, f, "/tmp/up/", CopyOptions{Extract: ExtractOptions{Owner: &[2]int{0, 0}}})
	_ = Copy(ctx, host, src, f, "/tmp/root/", CopyOptions{Extract: ExtractOptions{Owner: &[2]int{0, 0}}})
	if b, _ := os.ReadFile(secret); string(b) != "HOST\n" {
		t.Fatalf("host file overwritten: %q", b)
	}
	// Into the volume, seen by the container.
	if err := Copy(ctx, host, src, f, "/data/", CopyOptions{}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	code, err := e.r.Exec(ctx, id, ProcessSpec{Args: []string{"cat", "/data/secret", "/secret"}}, Stdio{Stdout: &buf})
	if err != nil || code != 0 || buf.String() != "PWNED\nPWNED\n" {
		t.Fatalf("exec: %q %d %v", buf.String(), code, err)
	}
	if b, _ := os.ReadFile(filepath.Join(vol, "secret")); string(b) != "PWNED\n" {
		t.Fatalf("volume file %q", b)
	}
	// A tar stream of the container's /etc/hosts-less /tmp.
	buf.Reset()
	if err := f.WriteTar(ctx, &buf, "/tmp", "tmp", false); err != nil {
		t.Fatal(err)
	}
	if err := e.r.Stop(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	// Stopped: the same view works.
	if err := Copy(ctx, f, "/data/ready", host, filepath.Join(out, "ready"), CopyOptions{}); err != nil {
		t.Fatal(err)
	}
}
