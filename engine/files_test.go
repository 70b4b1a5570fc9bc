package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/spec"
)

// dirLayers is a Layers whose containers have a real directory under root, as storage's do:
// the rootfs is <root>/<id>/merged and Remove deletes <root>/<id>.
type dirLayers struct {
	fakeLayers
	root string
}

func (d *dirLayers) Mount(ctx context.Context, id, image string) (string, error) {
	if _, err := d.fakeLayers.Mount(ctx, id, image); err != nil {
		return "", err
	}
	p := filepath.Join(d.root, id, "merged")
	return p, os.MkdirAll(p, 0o755)
}

func (d *dirLayers) Remove(ctx context.Context, id string) error {
	if err := d.fakeLayers.Remove(ctx, id); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(d.root, id))
}

func filesEngine(t *testing.T) (*Engine, *fakes, string) {
	t.Helper()
	f := newFakes()
	cfg := f.config()
	cfg.RunRoot = t.TempDir()
	layers := t.TempDir()
	cfg.Layers = &dirLayers{fakeLayers: fakeLayers{w: f.w}, root: layers}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e, f, layers
}

func filesProject(t *testing.T) (*spec.Project, string) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "db_password.txt")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BERTH_TEST_TOKEN", "tok-123")
	mode := uint32(0o400)
	p := &spec.Project{
		Name: "proj",
		Secrets: map[string]spec.FileObject{
			"db_password": {Name: "proj_db_password", File: file},
			"token":       {Name: "proj_token", Environment: "BERTH_TEST_TOKEN"},
		},
		Configs: map[string]spec.FileObject{
			"app_conf": {Name: "proj_app_conf", Content: "key=value\n"},
		},
		Services: []spec.Service{{
			Name: "web", Image: "busybox", NetworkMode: "none",
			Secrets: []spec.FileRef{
				{Source: "db_password"},
				{Source: "token", Target: "api/token", Mode: &mode},
			},
			Configs: []spec.FileRef{
				{Source: "app_conf", Target: "/etc/app.conf"},
				{Source: "app_conf"},
			},
		}},
	}
	return p, file
}

func TestFilesMounts(t *testing.T) {
	e, f, layers := filesEngine(t)
	p, file := filesProject(t)
	ctx := context.Background()
	id, err := e.CreateContainer(ctx, p, p.Services[0], CreateOptions{Name: "proj-web-1", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := f.rt.cs[id]
	got := map[string]Mount{}
	for _, m := range c.cfg.Mounts {
		got[m.Target] = m
	}
	for _, tc := range []struct {
		target, content string
		mode            os.FileMode
		source          string // "" means a file the engine wrote under the container's dir
	}{
		{"/run/secrets/db_password", "s3cret\n", 0, file},
		{"/run/secrets/api/token", "tok-123", 0o400, ""},
		{"/etc/app.conf", "key=value\n", 0o444, ""},
		{"/app_conf", "key=value\n", 0o444, ""},
	} {
		m, ok := got[tc.target]
		if !ok {
			t.Errorf("no mount at %s; mounts %+v", tc.target, c.cfg.Mounts)
			continue
		}
		if m.Type != "bind" || !m.ReadOnly {
			t.Errorf("%s: mount %+v, want a read-only bind", tc.target, m)
		}
		if tc.source != "" {
			if m.Source != tc.source {
				t.Errorf("%s: source %s, want %s", tc.target, m.Source, tc.source)
			}
			continue
		}
		if !strings.HasPrefix(m.Source, filepath.Join(layers, id)+"/") {
			t.Errorf("%s: source %s is not under the container's directory", tc.target, m.Source)
		}
		b, err := os.ReadFile(m.Source)
		if err != nil || string(b) != tc.content {
			t.Errorf("%s: content %q, %v; want %q", tc.target, b, err, tc.content)
		}
		if st, err := os.Stat(m.Source); err != nil || st.Mode().Perm() != tc.mode {
			t.Errorf("%s: mode %v, %v; want %v", tc.target, st.Mode().Perm(), err, tc.mode)
		}
	}
	// No temporary files are left next to the written ones.
	ents, _ := os.ReadDir(filepath.Join(layers, id, filesDirName))
	for _, de := range ents {
		if strings.HasPrefix(de.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", de.Name())
		}
	}
	if err := e.RemoveContainer(ctx, p, id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(layers, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("container directory left after remove: %v", err)
	}
}

func TestFilesErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		edit  func(p *spec.Project)
		want  []string
		class error
	}{
		{"external secret", func(p *spec.Project) {
			p.Secrets["db_password"] = spec.FileObject{Name: "db_password", External: true}
		}, []string{"service web", `secret "db_password"`, "external secrets are not supported by berth; use file:"}, ErrUnsupported},
		{"external config", func(p *spec.Project) {
			p.Configs["app_conf"] = spec.FileObject{Name: "app_conf", External: true}
		}, []string{"service web", `config "app_conf"`, "external configs are not supported by berth; use file:"}, ErrUnsupported},
		{"missing file", func(p *spec.Project) {
			p.Secrets["db_password"] = spec.FileObject{Name: "db_password", File: "/nonexistent/berth/pw.txt"}
		}, []string{"service web", `secret "db_password"`, "/nonexistent/berth/pw.txt"}, ErrNotFound},
		{"unset environment", func(p *spec.Project) {
			p.Secrets["token"] = spec.FileObject{Name: "token", Environment: "BERTH_TEST_UNSET_VAR"}
		}, []string{"service web", `secret "token"`, "BERTH_TEST_UNSET_VAR"}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, f, layers := filesEngine(t)
			p, _ := filesProject(t)
			tc.edit(p)
			_, err := e.CreateContainer(ctx, p, p.Services[0], CreateOptions{Name: "proj-web-1", Number: 1})
			if err == nil {
				t.Fatal("create succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !errors.Is(err, tc.class) {
				t.Errorf("error %v is not %v", err, tc.class)
			}
			// The references are checked before anything is made.
			if calls := f.w.Calls(); len(calls) != 0 {
				t.Errorf("a failing create did work first: %v", calls)
			}
			if len(f.rt.cs) != 0 {
				t.Errorf("containers left: %v", f.rt.cs)
			}
			if ents, _ := os.ReadDir(layers); len(ents) != 0 {
				t.Errorf("container directories left: %v", ents)
			}
		})
	}
}

func TestFileTarget(t *testing.T) {
	for _, tc := range []struct {
		kind fileKind
		ref  spec.FileRef
		want string
	}{
		{kindSecret, spec.FileRef{Source: "a"}, "/run/secrets/a"},
		{kindSecret, spec.FileRef{Source: "a", Target: "b"}, "/run/secrets/b"},
		{kindSecret, spec.FileRef{Source: "a", Target: "/etc/b"}, "/etc/b"},
		{kindConfig, spec.FileRef{Source: "a"}, "/a"},
		{kindConfig, spec.FileRef{Source: "a", Target: "/etc/a.conf"}, "/etc/a.conf"},
		{kindConfig, spec.FileRef{Source: "a", Target: "etc/a.conf"}, "/etc/a.conf"},
	} {
		if got := fileTarget(tc.kind, tc.ref); got != tc.want {
			t.Errorf("fileTarget(%s, %+v) = %s, want %s", tc.kind, tc.ref, got, tc.want)
		}
	}
}
