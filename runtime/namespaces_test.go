package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseNSMode(t *testing.T) {
	for _, tc := range []struct {
		v    string
		ipc  bool
		want nsMode
		bad  bool
	}{
		{v: "", want: nsMode{}},
		{v: "private", ipc: true, want: nsMode{}},
		{v: "host", want: nsMode{kind: NSHost}},
		{v: "container:db", want: nsMode{kind: "container", ref: "db"}},
		{v: "container:db", ipc: true, want: nsMode{kind: "container", ref: "db"}},
		{v: "shareable", ipc: true, want: nsMode{kind: NSShareable}},
		{v: "none", ipc: true, want: nsMode{kind: NSNone}},
		{v: "shareable", bad: true},
		{v: "none", bad: true},
		{v: "container:", bad: true},
		{v: "service:db", bad: true}, // the engine resolves services to containers
		{v: "bogus", ipc: true, bad: true},
	} {
		got, err := parseNSMode(tc.v, tc.ipc)
		if tc.bad {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("parseNSMode(%q, %v) = %+v, %v; want ErrInvalid", tc.v, tc.ipc, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("parseNSMode(%q, %v) = %+v, %v; want %+v", tc.v, tc.ipc, got, err, tc.want)
		}
	}
}

func testSpec() *specs.Spec {
	return &specs.Spec{
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc"},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm"},
		},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.PIDNamespace}, {Type: specs.MountNamespace}, {Type: specs.IPCNamespace},
		}},
	}
}

func nsTypes(s *specs.Spec) []specs.LinuxNamespaceType {
	var out []specs.LinuxNamespaceType
	for _, n := range s.Linux.Namespaces {
		out = append(out, n.Type)
	}
	return out
}

func TestApplyNamespacesHostAndNone(t *testing.T) {
	r := &Runtime{root: t.TempDir()}
	s := testSpec()
	if err := r.applyNamespaces(&ContainerConfig{PIDMode: "host", IPCMode: "host"}, s, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]specs.LinuxNamespaceType{specs.MountNamespace}, nsTypes(s)); diff != "" {
		t.Errorf("host pid+ipc namespaces (-want +got):\n%s", diff)
	}
	if m := s.Mounts[1]; m.Type != "bind" || m.Source != "/dev/shm" {
		t.Errorf("ipc host: /dev/shm is %+v, want a bind of the host's", m)
	}

	s = testSpec()
	if err := r.applyNamespaces(&ContainerConfig{IPCMode: "none"}, s, nil); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool { return m.Destination == "/dev/shm" }) {
		t.Errorf("ipc none still mounts /dev/shm: %+v", s.Mounts)
	}
	if len(s.Linux.Namespaces) != 3 {
		t.Errorf("ipc none changed namespaces: %v", nsTypes(s))
	}

	if err := r.applyNamespaces(&ContainerConfig{PIDMode: "shareable"}, testSpec(), nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("pid shareable: %v, want ErrInvalid", err)
	}
}

func TestParseVolumesFrom(t *testing.T) {
	for _, tc := range []struct{ in, ref, mode string }{
		{"web", "web", ""}, {"web:ro", "web", "ro"}, {"abc123:rw", "abc123", "rw"},
	} {
		ref, mode, err := parseVolumesFrom(tc.in)
		if err != nil || ref != tc.ref || mode != tc.mode {
			t.Errorf("parseVolumesFrom(%q) = %q, %q, %v", tc.in, ref, mode, err)
		}
	}
	for _, bad := range []string{"", ":ro", "web:rx"} {
		if _, _, err := parseVolumesFrom(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("parseVolumesFrom(%q): %v, want ErrInvalid", bad, err)
		}
	}
}

func TestInheritMounts(t *testing.T) {
	src := []Mount{
		{Type: "volume", Source: "/v/_data", Target: "/data"},
		{Type: "bind", Source: "/h", Target: "/h", ReadOnly: true, Options: []string{"ro", "rshared"}},
		{Type: "tmpfs", Target: "/t"},
	}
	want := map[string][]Mount{
		"": {
			{Type: "volume", Source: "/v/_data", Target: "/data"},
			{Type: "bind", Source: "/h", Target: "/h", ReadOnly: true, Options: []string{"ro", "rshared"}},
		},
		"ro": {
			{Type: "volume", Source: "/v/_data", Target: "/data", ReadOnly: true},
			{Type: "bind", Source: "/h", Target: "/h", ReadOnly: true, Options: []string{"rshared"}},
		},
		"rw": {
			{Type: "volume", Source: "/v/_data", Target: "/data"},
			{Type: "bind", Source: "/h", Target: "/h", Options: []string{"rshared"}},
		},
	}
	for mode, w := range want {
		got := inheritMounts(src, mode)
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("inheritMounts(%q) (-want +got):\n%s", mode, diff)
		}
	}
	if src[1].Options[0] != "ro" {
		t.Error("inheritMounts changed its input")
	}
}

// TestResolveVolumesFrom runs the create-time resolution against containers recorded on disk
// (no container runs).
func TestResolveVolumesFrom(t *testing.T) {
	r := &Runtime{root: t.TempDir()}
	src := ContainerConfig{ID: NewID(), Name: "src", Mounts: []Mount{
		{Type: "volume", Source: "/v/a/_data", Target: "/a"},
		{Type: "volume", Source: "/v/b/_data", Target: "/b"},
		{Type: "tmpfs", Target: "/t"},
	}}
	src2 := ContainerConfig{ID: NewID(), Name: "src2", Mounts: []Mount{
		{Type: "bind", Source: "/h", Target: "/a"},
		{Type: "bind", Source: "/h2", Target: "/c"},
	}}
	for _, c := range []ContainerConfig{src, src2} {
		if err := os.MkdirAll(r.dir(c.ID), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := writeJSON(filepath.Join(r.dir(c.ID), "config.json"), c); err != nil {
			t.Fatal(err)
		}
	}
	c := &ContainerConfig{ID: NewID(), VolumesFrom: []string{"src:ro", src2.ID[:10]},
		Mounts: []Mount{{Type: "bind", Source: "/own", Target: "/b"}}}
	if err := r.resolveVolumesFrom(c); err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Type: "bind", Source: "/own", Target: "/b"},
		{Type: "volume", Source: "/v/a/_data", Target: "/a", ReadOnly: true},
		{Type: "bind", Source: "/h2", Target: "/c"},
	}
	if diff := cmp.Diff(want, c.Mounts); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{src.ID + ":ro", src2.ID}, c.VolumesFrom); diff != "" {
		t.Errorf("volumesFrom (-want +got):\n%s", diff)
	}
	if err := r.resolveVolumesFrom(&ContainerConfig{ID: NewID(), VolumesFrom: []string{"missing"}}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown source: %v, want ErrNotFound", err)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{`/a\040b`: "/a b", `/plain`: "/plain", `/x\134y`: `/x\y`, `/end\04`: `/end\04`} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
