package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/berth-dev/berth/planner"
)

func TestUpNoopDown(t *testing.T) {
	f := newFakes()
	cfg := f.config()
	cfg.RunRoot = t.TempDir()
	e, _ := New(cfg)
	p := testProject()
	// Stamp hashes the way the planner expects.
	ctx := context.Background()
	plan, err := e.Up(ctx, p, UpOptions{}, nil)
	if err != nil {
		t.Fatalf("up: %v\nplan:\n%v", err, plan)
	}
	cs, _ := e.Containers(ctx, "proj")
	if len(cs) != 2 {
		t.Fatalf("containers = %+v", cs)
	}
	for _, c := range cs {
		if c.State != planner.StateRunning {
			t.Errorf("%s is %s", c.Name, c.State)
		}
	}
	// A second up has nothing to do.
	plan, err = e.Plan(ctx, p, UpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Nodes) != 0 {
		t.Errorf("no-op up plans %d actions:\n%v", len(plan.Nodes), plan.Nodes)
	}
	// Scale web to 3 without recreating web-1.
	before := f.rt.byName("proj-web-1").cfg.ID
	if _, err := e.Up(ctx, p, UpOptions{Options: planner.Options{Scale: map[string]int{"web": 3}}}, nil); err != nil {
		t.Fatal(err)
	}
	if f.rt.byName("proj-web-1").cfg.ID != before || f.rt.byName("proj-web-3") == nil {
		t.Errorf("scale recreated or did not create")
	}
	// A config change recreates.
	p.Services[1].Environment = map[string]string{"X": "1"}
	if _, err := e.Up(ctx, p, UpOptions{Options: planner.Options{Scale: map[string]int{"web": 3}}}, nil); err != nil {
		t.Fatal(err)
	}
	if f.rt.byName("proj-web-1").cfg.ID == before {
		t.Errorf("config change did not recreate")
	}
	if _, err := e.Down(ctx, p, DownOptions{DownOptions: planner.DownOptions{Volumes: true}}, nil); err != nil {
		t.Fatal(err)
	}
	cs, _ = e.Containers(ctx, "proj")
	if len(cs) != 0 || len(f.net.nets) != 0 || len(f.vol.vols) != 0 {
		t.Errorf("after down: containers %v, networks %v, volumes %v\n%s", cs, f.net.nets, f.vol.vols, strings.Join(f.w.Calls(), "\n"))
	}
}
