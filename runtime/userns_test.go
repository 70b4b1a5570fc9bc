package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUsernsEnabled(t *testing.T) {
	for mode, want := range map[string]bool{"": false, "host": false, "auto": true} {
		if got, err := usernsEnabled(mode); err != nil || got != want {
			t.Errorf("usernsEnabled(%q) = %v, %v", mode, got, err)
		}
	}
	for _, bad := range []string{"keep-id", "private", "AUTO"} {
		if _, err := usernsEnabled(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("usernsEnabled(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

func TestIDPoolAndAlloc(t *testing.T) {
	dir := t.TempDir()
	subuid, subgid := filepath.Join(dir, "subuid"), filepath.Join(dir, "subgid")
	if p := defaultIDPool(subuid, subgid); p != (idPool{uid: 1 << 30, gid: 1 << 30, count: 65536 * 4096}) {
		t.Errorf("pool without files = %+v", p)
	}
	os.WriteFile(subuid, []byte("alice:100000:65536\nberth:300000:131072\n"), 0o644)
	if p := defaultIDPool(subuid, subgid); p.uid != 1<<30 {
		t.Errorf("pool with a subuid entry only = %+v, want the default", p)
	}
	os.WriteFile(subgid, []byte("berth:400000:196608\n"), 0o644)
	pool := defaultIDPool(subuid, subgid)
	if pool != (idPool{uid: 300000, gid: 400000, count: 131072}) {
		t.Fatalf("pool = %+v", pool)
	}
	m1, err := allocIDMap(pool, nil)
	if err != nil || m1 != (IDMap{HostUID: 300000, HostGID: 400000, Size: 65536}) {
		t.Fatalf("first = %+v, %v", m1, err)
	}
	m2, err := allocIDMap(pool, []ContainerConfig{{IDMap: &m1}, {}})
	if err != nil || m2 != (IDMap{HostUID: 365536, HostGID: 465536, Size: 65536}) {
		t.Fatalf("second = %+v, %v", m2, err)
	}
	if _, err := allocIDMap(pool, []ContainerConfig{{IDMap: &m1}, {IDMap: &m2}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("full pool: %v, want ErrInvalid", err)
	}
	// A freed range is reused.
	if m, _ := allocIDMap(pool, []ContainerConfig{{IDMap: &m2}}); m != m1 {
		t.Errorf("after the first is removed: %+v, want %+v", m, m1)
	}
}

func TestParseOverlayLayers(t *testing.T) {
	const merged = "/var/lib/berth/storage/mounts/c1/merged"
	info := "" +
		"26 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n" +
		"45 26 0:38 / " + merged + " rw,relatime - overlay none rw,lowerdir+=/s/layers/top/diff,lowerdir+=/s/layers/base\\040x/diff,upperdir=/s/mounts/c1/upper,workdir=/s/mounts/c1/work,uuid=on\n" +
		"46 26 0:39 / /legacy rw - overlay overlay rw,lowerdir=/a\\:b:/c,upperdir=/u/up,workdir=/u/wk\n" +
		"47 26 0:40 / /rel rw - overlay overlay rw,lowerdir=l/AB:l/CD,upperdir=mounts/x/upper,workdir=mounts/x/work\n" +
		"48 26 0:41 / /plain rw - ext4 /dev/vdb rw\n" +
		"49 26 0:42 / /split rw - overlay overlay rw,lowerdir+=/l,upperdir=/a/upper,workdir=/b/work\n"
	got, err := parseOverlayLayers(info, merged)
	if err != nil {
		t.Fatal(err)
	}
	want := IDMappedRootfs{Source: merged, Lower: []string{"/s/layers/top/diff", "/s/layers/base x/diff"},
		Upper: "/s/mounts/c1/upper", Work: "/s/mounts/c1/work"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lowerdir+ (-want +got):\n%s", diff)
	}
	got, err = parseOverlayLayers(info, "/legacy")
	if err != nil || !cmp.Equal(got.Lower, []string{"/a:b", "/c"}) {
		t.Errorf("legacy lowerdir = %+v, %v", got, err)
	}
	for _, dir := range []string{"/rel", "/plain", "/split", "/missing"} {
		if _, err := parseOverlayLayers(info, dir); !errors.Is(err, ErrUserns) {
			t.Errorf("%s: %v, want ErrUserns", dir, err)
		}
	}
}

func TestCheckReachable(t *testing.T) {
	dir := t.TempDir()
	closed := filepath.Join(dir, "closed")
	if err := os.MkdirAll(filepath.Join(closed, "c"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(closed, 0o700)
	uid := uint32(os.Getuid()) + 12345 // an ID that owns nothing here
	if err := checkReachable(filepath.Join(closed, "c", "rootfs"), uid, uid); !errors.Is(err, ErrInvalid) {
		t.Errorf("through a 0700 directory: %v, want ErrInvalid", err)
	}
}
