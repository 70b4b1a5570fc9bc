package engine

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
	"github.com/google/go-cmp/cmp"
)

// TestSharedNamespacesAndVolumes checks how an up hands volumes_from, pid and ipc to the
// runtime: service references become the service's first container, container references
// pass through, and a service another joins with ipc: service:NAME becomes shareable.
func TestSharedNamespacesAndVolumes(t *testing.T) {
	f := newFakes()
	cfg := f.config()
	cfg.RunRoot = t.TempDir()
	e, _ := New(cfg)
	p := &spec.Project{
		Name: "proj",
		Services: []spec.Service{
			{Name: "a", Image: "busybox", Scale: 2, NetworkMode: "none"},
			{Name: "b", Image: "busybox", Scale: 1, NetworkMode: "none",
				VolumesFrom: []string{"a:ro", "container:outside", "container:other:rw", "a"},
				PID:         "service:a", IPC: "service:a", UsernsMode: "host"},
			{Name: "c", Image: "busybox", Scale: 1, NetworkMode: "none", IPC: "host", PID: "container:x"},
		},
	}
	ctx := context.Background()
	if plan, err := e.Up(ctx, p, UpOptions{}, nil); err != nil {
		t.Fatalf("up: %v\nplan:\n%v", err, plan)
	}
	a1 := f.rt.byName("proj-a-1").cfg
	b := f.rt.byName("proj-b-1").cfg.Service
	want := []string{a1.ID + ":ro", "outside", "other:rw", a1.ID}
	if diff := cmp.Diff(want, b.VolumesFrom); diff != "" {
		t.Errorf("b's volumes_from (-want +got):\n%s", diff)
	}
	if b.PID != "container:"+a1.ID || b.IPC != "container:"+a1.ID || b.UsernsMode != "host" {
		t.Errorf("b: pid %q ipc %q userns %q, want container:%s", b.PID, b.IPC, b.UsernsMode, a1.ID)
	}
	if a1.Service.IPC != "shareable" || f.rt.byName("proj-a-2").cfg.Service.IPC != "shareable" {
		t.Errorf("a's ipc = %q, want shareable", a1.Service.IPC)
	}
	c := f.rt.byName("proj-c-1").cfg.Service
	if c.IPC != "host" || c.PID != "container:x" {
		t.Errorf("c: ipc %q pid %q, want them unchanged", c.IPC, c.PID)
	}
	// The project's own definition is not rewritten.
	if p.Services[1].PID != "service:a" || p.Services[0].IPC != "" {
		t.Errorf("project changed: %+v", p.Services[:2])
	}
}

func TestSharedNeedsRunningService(t *testing.T) {
	f := newFakes()
	cfg := f.config()
	cfg.RunRoot = t.TempDir()
	e, _ := New(cfg)
	p := &spec.Project{Name: "proj", Services: []spec.Service{
		{Name: "b", Image: "busybox", Scale: 1, NetworkMode: "none", PID: "service:a"},
	}}
	x := e.newExec(p, planner.Observed{}, NopProgress{})
	svc := p.Services[0]
	err := x.resolveShared(context.Background(), &svc)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "pid: service a has no running container") {
		t.Errorf("resolveShared: %v", err)
	}
}

// The config hash covers volumes_from, pid, ipc and userns_mode: changing one recreates.
func TestSharedSettingsChangeTheHash(t *testing.T) {
	base := spec.Service{Name: "b", Image: "busybox", VolumesFrom: []string{"a"}}
	h := planner.ServiceHash(base)
	for name, mod := range map[string]func(*spec.Service){
		"volumes_from mode": func(s *spec.Service) { s.VolumesFrom = []string{"a:ro"} },
		"volumes_from none": func(s *spec.Service) { s.VolumesFrom = nil },
		"pid":               func(s *spec.Service) { s.PID = "service:a" },
		"ipc":               func(s *spec.Service) { s.IPC = "shareable" },
		"userns_mode":       func(s *spec.Service) { s.UsernsMode = "auto" },
	} {
		s := base
		s.VolumesFrom = append([]string(nil), base.VolumesFrom...)
		mod(&s)
		if planner.ServiceHash(s) == h {
			t.Errorf("%s: the config hash did not change", name)
		}
	}
}
