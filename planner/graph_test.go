package planner

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/spec"
)

func TestGraphOrderAndEdges(t *testing.T) {
	p := project(
		svc("web", dependsOn("api", spec.ConditionStarted), func(s *spec.Service) { s.Links = []string{"cache:redis", "cache"} }),
		svc("api", dependsOn("db", spec.ConditionHealthy), func(s *spec.Service) { s.IPC = "service:db"; s.PID = "service:db" }),
		svc("db", healthcheck()),
		svc("cache"),
		svc("sidecar", func(s *spec.Service) {
			s.NetworkMode = "service:api"
			s.VolumesFrom = []string{"db:ro", "container:other"}
		}),
		svc("zeta"),
	)
	g, err := NewGraph(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"cache", "db", "api", "sidecar", "web", "zeta"}, g.Order()); diff != "" {
		t.Errorf("Order (-want +got):\n%s", diff)
	}
	started := spec.ConditionStarted
	wantDeps := map[string][]Edge{
		"web": {
			{From: "web", To: "api", Kind: EdgeDependsOn, Condition: started, Required: true},
			{From: "web", To: "cache", Kind: EdgeLinks, Condition: started, Required: true},
		},
		"api": {
			{From: "api", To: "db", Kind: EdgeDependsOn, Condition: spec.ConditionHealthy, Required: true},
			{From: "api", To: "db", Kind: EdgeIPC, Condition: started, Required: true},
			{From: "api", To: "db", Kind: EdgePID, Condition: started, Required: true},
		},
		"sidecar": {
			{From: "sidecar", To: "api", Kind: EdgeNetworkMode, Condition: started, Required: true},
			{From: "sidecar", To: "db", Kind: EdgeVolumesFrom, Condition: started, Required: true},
		},
		"db":    nil,
		"nope":  nil,
		"cache": nil,
	}
	for name, want := range wantDeps {
		if diff := cmp.Diff(want, g.Dependencies(name)); diff != "" {
			t.Errorf("Dependencies(%s) (-want +got):\n%s", name, diff)
		}
	}
	var from []string
	for _, e := range g.Dependents("db") {
		from = append(from, e.From+"/"+e.Kind)
	}
	if diff := cmp.Diff([]string{"api/depends_on", "api/ipc", "api/pid", "sidecar/volumes_from"}, from); diff != "" {
		t.Errorf("Dependents(db) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"api", "cache", "db", "sidecar", "web", "zeta"}, g.Services()); diff != "" {
		t.Errorf("Services (-want +got):\n%s", diff)
	}
}

func TestGraphErrors(t *testing.T) {
	tests := []struct {
		name     string
		p        *spec.Project
		wantPath string
		wantMsg  string
	}{
		{
			name:     "two-cycle",
			p:        project(svc("b", dependsOn("a", spec.ConditionStarted)), svc("a", dependsOn("b", spec.ConditionHealthy))),
			wantPath: "services.a.depends_on",
			wantMsg:  "dependency cycle: a -> b -> a",
		},
		{
			name: "cycle off a tail, through links",
			p: project(
				svc("entry", dependsOn("x", spec.ConditionStarted)),
				svc("x", func(s *spec.Service) { s.Links = []string{"y:alias"} }),
				svc("y", dependsOn("x", spec.ConditionStarted)),
			),
			wantPath: "services.x.links",
			wantMsg:  "dependency cycle: x -> y -> x",
		},
		{
			name:     "undefined",
			p:        project(svc("a", dependsOn("ghost", spec.ConditionStarted))),
			wantPath: "services.a.depends_on",
			wantMsg:  `service "a" depends on undefined service "ghost"`,
		},
		{
			name:     "undefined volumes_from",
			p:        project(svc("a", func(s *spec.Service) { s.VolumesFrom = []string{"ghost:rw"} })),
			wantPath: "services.a.volumes_from",
			wantMsg:  `service "a" depends on undefined service "ghost"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewGraph(tt.p)
			var se *spec.Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want *spec.Error", err)
			}
			if se.Path != tt.wantPath || se.Msg != tt.wantMsg || se.Hint == "" {
				t.Errorf("got {%q, %q, hint %q}, want {%q, %q, a hint}", se.Path, se.Msg, se.Hint, tt.wantPath, tt.wantMsg)
			}
			if !errors.Is(err, spec.ErrInvalid) {
				t.Errorf("error does not wrap spec.ErrInvalid")
			}
		})
	}
}

func TestReconcileErrorClasses(t *testing.T) {
	p := webStack()
	if _, err := Reconcile(p, Observed{}, Options{NoRecreate: true, AlwaysRecreateDeps: true}); !errors.Is(err, ErrOptions) {
		t.Errorf("err = %v, want ErrOptions", err)
	}
	if _, err := Reconcile(nil, Observed{}, Options{}); !errors.Is(err, ErrNoProject) {
		t.Errorf("err = %v, want ErrNoProject", err)
	}
	if _, err := Down(p, Observed{}, DownOptions{RemoveImages: "some"}); !errors.Is(err, spec.ErrInvalid) {
		t.Errorf("err = %v, want spec.ErrInvalid", err)
	}
}

func TestPlanJSON(t *testing.T) {
	p := project(svc("web"))
	plan, err := Reconcile(p, Observed{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan.Notes = nil
	b, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Project string `json:"project"`
		Actions []struct {
			ID       int            `json:"id"`
			Kind     string         `json:"kind"`
			Resource string         `json:"resource"`
			Detail   string         `json:"detail"`
			Deps     []int          `json:"deps"`
			Action   map[string]any `json:"action"`
		} `json:"actions"`
		Notes []string `json:"notes"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if got.Project != "p" || len(got.Actions) != 4 || got.Notes == nil {
		t.Fatalf("unexpected plan JSON: %s", b)
	}
	create := got.Actions[2]
	if create.ID != 3 || create.Kind != "CreateContainer" || create.Resource != "service:web:1" ||
		create.Detail != "missing" || !cmp.Equal(create.Deps, []int{1, 2}) || create.Action["Name"] != "p-web-1" {
		t.Errorf("CreateContainer node = %+v", create)
	}
	if got.Actions[0].Deps == nil {
		t.Errorf("deps of a root node encode as null, want []")
	}
}

// TestReconcileInputOrder: the plan does not depend on the order of observed containers.
func TestReconcileInputOrder(t *testing.T) {
	p := webStack()
	p.Services[0].Scale = 3
	have := upState(p)
	set(&have, "api", 2, func(c *Container) { c.ConfigHash = "old" })
	have.Containers = append(have.Containers, container(p, svc("old"), 1, StateRunning))
	want, err := Reconcile(p, have, Options{Scale: map[string]int{"api": 2}, RemoveOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(have.Containers)/2; i++ {
		j := len(have.Containers) - 1 - i
		have.Containers[i], have.Containers[j] = have.Containers[j], have.Containers[i]
	}
	got, err := Reconcile(p, have, Options{Scale: map[string]int{"api": 2}, RemoveOrphans: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.String(), got.String()); diff != "" {
		t.Errorf("plan depends on input order (-first +reversed):\n%s", diff)
	}
}

// TestPurity: Reconcile and Down leave their inputs alone.
func TestPurity(t *testing.T) {
	p := webStack()
	have := upState(p)
	set(&have, "api", 1, func(c *Container) { c.ConfigHash = "old" })
	before := cloneObserved(have)
	pBefore := webStack()
	if _, err := Reconcile(p, have, Options{Scale: map[string]int{"web": 0}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Down(p, have, DownOptions{Volumes: true}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, have); diff != "" {
		t.Errorf("observed state changed (-before +after):\n%s", diff)
	}
	if diff := cmp.Diff(pBefore, p); diff != "" {
		t.Errorf("project changed (-before +after):\n%s", diff)
	}
}

func TestServiceHashIgnoresScaleDependsOnProfilesBuild(t *testing.T) {
	a := svc("web")
	b := svc("web", scale(5), dependsOn("db", spec.ConditionHealthy), profiles("x"),
		func(s *spec.Service) { s.Build = &spec.Build{Context: "/x"} })
	if ServiceHash(a) != ServiceHash(b) {
		t.Error("hash changed by scale, depends_on, profiles or build")
	}
	c := svc("web", env("A", "1"))
	if ServiceHash(a) == ServiceHash(c) {
		t.Error("hash ignores environment")
	}
	if diff := cmp.Diff([]string{"environment"}, changedFields(FieldHashes(a), FieldHashes(c))); diff != "" {
		t.Errorf("changed fields (-want +got):\n%s", diff)
	}
	if _, ok := FieldHashes(a)["stop_grace_period"]; !ok {
		t.Error("FieldHashes misses stop_grace_period")
	}
	for k := range FieldHashes(a) {
		if k == "scale" || k == "depends_on" || k == "profiles" || k == "build" {
			t.Errorf("FieldHashes has excluded key %q", k)
		}
	}
}

// TestOrderMatchesReference checks Order on a random 400-service DAG against the definition:
// repeatedly take the smallest-named service whose dependencies are all placed.
func TestOrderMatchesReference(t *testing.T) {
	p, _ := bigProject(400)
	g, err := NewGraph(p)
	if err != nil {
		t.Fatal(err)
	}
	placed := map[string]bool{}
	var want []string
	for len(want) < len(p.Services) {
		for _, s := range p.Services { // sorted by name
			if placed[s.Name] {
				continue
			}
			ready := true
			for d := range s.DependsOn {
				ready = ready && placed[d]
			}
			if ready {
				placed[s.Name] = true
				want = append(want, s.Name)
				break
			}
		}
	}
	if diff := cmp.Diff(want, g.Order()); diff != "" {
		t.Errorf("Order differs from the reference (-want +got):\n%s", diff)
	}
}

// TestServiceHasherMatchesServiceHash: the reusing hasher Reconcile uses gives ServiceHash.
func TestServiceHasherMatchesServiceHash(t *testing.T) {
	p, _ := bigProject(30)
	services := append(p.Services,
		svc("b", func(s *spec.Service) { s.Build = &spec.Build{Context: "/x"}; s.Profiles = []string{"a"} }),
		svc("e", func(s *spec.Service) {
			s.Extensions = map[string]any{"x-a": []any{1, "two", map[string]any{"k": true}}}
			s.Command = []string{}
		}),
		spec.Service{Name: "zero"},
	)
	h := newServiceHasher()
	seen := map[string]string{}
	for _, s := range services {
		got, want := h.hash(&s), ServiceHash(s)
		if got != want {
			t.Errorf("%s: hasher %s, ServiceHash %s", s.Name, got, want)
		}
		if other, dup := seen[want]; dup {
			t.Errorf("%s and %s hash the same", s.Name, other)
		}
		seen[want] = s.Name
	}
}

// TestPlanJSONValue: a Plan value (not only a pointer) encodes through MarshalJSON.
func TestPlanJSONValue(t *testing.T) {
	plan, err := Reconcile(project(svc("web")), Observed{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(plan)
	b, _ := json.Marshal(*plan)
	if string(a) != string(b) || !json.Valid(a) {
		t.Errorf("pointer and value encode differently:\n%s\n%s", a, b)
	}
}
