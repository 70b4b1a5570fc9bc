package planner

import (
	"maps"
	"slices"
	"testing"

	"github.com/berth-dev/berth/spec"
)

// webStack is the project most scenarios start from: web (2 ports) -> api -> db (volume).
func webStack(extra ...svcOpt) *spec.Project {
	return project(
		svc("web", append([]svcOpt{image("nginx"), port(80), dependsOn("api", spec.ConditionStarted)}, extra...)...),
		svc("api", dependsOn("db", spec.ConditionStarted), env("DB", "db")),
		svc("db", image("postgres"), volume("data", "/var/lib/postgresql/data")),
	)
}

type scenario struct {
	name string
	run  func() (*Plan, error)
}

// up and down snapshot have: scenarios go on changing their copy afterwards.
func up(p *spec.Project, have Observed, opt Options) func() (*Plan, error) {
	have = cloneObserved(have)
	return func() (*Plan, error) { return Reconcile(p, have, opt) }
}

func down(p *spec.Project, have Observed, opt DownOptions) func() (*Plan, error) {
	have = cloneObserved(have)
	return func() (*Plan, error) { return Down(p, have, opt) }
}

func cloneObserved(o Observed) Observed {
	o.Containers = slices.Clone(o.Containers)
	o.Networks = slices.Clone(o.Networks)
	o.Volumes = slices.Clone(o.Volumes)
	o.Images = maps.Clone(o.Images)
	return o
}

func scenarios() []scenario {
	var out []scenario
	add := func(name string, run func() (*Plan, error)) { out = append(out, scenario{name, run}) }

	p := webStack()
	add("up_fresh", up(p, Observed{}, Options{}))
	add("up_noop", up(p, upState(p), Options{}))

	{ // web's environment and ports changed; the observed container recorded field hashes.
		old := webStack()
		have := upState(old)
		changed := webStack(env("MODE", "prod"), port(443))
		add("up_config_changed", up(changed, have, Options{}))
		set(&have, "web", 1, func(c *Container) { c.FieldHashes = nil })
		add("up_config_changed_no_field_hashes", up(changed, have, Options{}))
	}
	{
		have := upState(p)
		have.Images["postgres"] = "sha256:newer"
		add("up_image_changed", up(p, have, Options{}))
	}
	{
		add("up_scale_1_to_3", up(p, upState(p), Options{Scale: map[string]int{"api": 3}}))
		p3 := webStack()
		p3.Services[0].Scale = 3 // api
		have := upState(p3)
		set(&have, "api", 2, func(c *Container) { c.ConfigHash = "old" })
		add("up_scale_3_to_1", up(p, have, Options{}))
		// A gap in the numbers: new replicas go above the highest.
		have = upState(p)
		set(&have, "api", 1, func(c *Container) { c.Number = 4; c.Name = "p-api-4" })
		add("up_scale_up_numbering", up(p, have, Options{Scale: map[string]int{"api": 2}}))
		add("up_scale_to_0", up(p, upState(p3), Options{Scale: map[string]int{"api": 0}}))
	}
	{
		have := upState(p)
		old := svc("worker")
		have.Containers = append(have.Containers,
			container(p, old, 1, StateRunning), container(p, old, 2, StateExited))
		add("up_orphans_noted", up(p, have, Options{}))
		add("up_orphans_removed", up(p, have, Options{RemoveOrphans: true}))
	}
	add("up_force_recreate", up(p, upState(p), Options{ForceRecreate: true}))
	add("up_force_recreate_one_service", up(p, upState(p), Options{ForceRecreate: true, Services: []string{"api"}}))
	add("up_always_recreate_deps", up(p, upState(p), Options{AlwaysRecreateDeps: true, Services: []string{"web"}}))
	{
		have := upState(p)
		set(&have, "api", 1, func(c *Container) { c.ConfigHash = "old"; c.State = StateExited })
		add("up_no_recreate", up(p, have, Options{NoRecreate: true}))
		add("up_recreate_stopped", up(p, have, Options{}))
	}
	add("up_no_deps", up(p, Observed{}, Options{Services: []string{"web"}, NoDeps: true}))
	add("up_service_with_deps", up(p, Observed{}, Options{Services: []string{"api"}}))
	{
		have := upState(p)
		for i := range have.Containers {
			have.Containers[i].State = StateExited
		}
		add("up_start_stopped", up(p, have, Options{}))
		add("up_no_start", up(p, Observed{}, Options{NoStart: true}))
	}

	conds := project(
		svc("app",
			dependsOn("db", spec.ConditionHealthy),
			dependsOn("migrate", spec.ConditionCompleted),
			dep("cache", spec.Dependency{Condition: spec.ConditionStarted, Required: false}),
			dependsOn("auth", spec.ConditionStarted)),
		svc("db", healthcheck()),
		svc("migrate", dependsOn("db", spec.ConditionHealthy)),
		svc("cache"),
		svc("auth", scale(2)),
	)
	add("up_depends_on_conditions", up(conds, Observed{}, Options{}))
	{
		// Everything up; db healthy, migrate exited 0: the one-shot runs again, db needs no wait.
		have := upState(conds)
		set(&have, "db", 1, func(c *Container) { c.Health = "healthy" })
		set(&have, "migrate", 1, func(c *Container) { c.State = StateExited })
		add("up_depends_on_conditions_rerun", up(conds, have, Options{}))
		set(&have, "db", 1, func(c *Container) { c.Health = "starting" })
		set(&have, "migrate", 1, func(c *Container) { c.State = StateRunning })
		add("up_depends_on_conditions_not_ready", up(conds, have, Options{}))
	}
	add("up_wait", up(conds, Observed{}, Options{Wait: true}))

	{
		prof := func(active ...string) *spec.Project {
			return projectWithProfiles(active,
				svc("web"),
				svc("debug", profiles("dev"), dependsOn("web", spec.ConditionStarted)),
				svc("tools", profiles("ops"), dependsOn("debug", spec.ConditionStarted)),
			)
		}
		add("up_profiles_default", up(prof(), Observed{}, Options{}))
		add("up_profiles_dev", up(prof("dev"), Observed{}, Options{}))
		add("up_profiles_target_disabled", up(prof(), Observed{}, Options{Services: []string{"tools"}}))
		// Containers of a disabled service are not orphans.
		have := upState(prof("dev"))
		add("up_profiles_disabled_not_orphan", up(prof(), have, Options{RemoveOrphans: true}))
	}
	{
		nv := project(
			svc("proxy", networks("front", "outside")),
			svc("app", networks("front", "back"), volume("data", "/data"), volume("shared", "/shared"),
				func(s *spec.Service) {
					s.Volumes = append(s.Volumes, spec.Mount{Type: spec.MountBind, Source: "/srv", Target: "/srv"},
						spec.Mount{Type: spec.MountVolume, Target: "/anon"})
				}),
			svc("db", networks("back"), volume("data", "/var/lib/db")),
		)
		nv.Networks["outside"] = spec.Network{Name: "outside", External: true}
		nv.Volumes["shared"] = spec.Volume{Name: "shared", External: true}
		add("up_networks_volumes", up(nv, Observed{Networks: []Network{{Name: "outside"}}, Volumes: []Volume{{Name: "shared"}}}, Options{}))
		have := upState(nv)
		have.Networks = append(have.Networks[:0:0], Network{Name: "outside"}, Network{Name: "p_back", Hash: "old"}, Network{Name: "p_front", Hash: NetworkHash(nv.Networks["front"])})
		have.Volumes = nil
		add("up_networks_volumes_partial", up(nv, have, Options{}))
	}
	{
		have := upState(p)
		oneoff := container(p, p.Services[0], 1, StateRunning)
		oneoff.OneOff, oneoff.Name, oneoff.ID = true, "p-api-run-1a2b", "id-run"
		gone := container(p, svc("gone"), 1, StateExited)
		gone.OneOff, gone.Name, gone.ID = true, "p-gone-run-3c4d", "id-gone-run"
		have.Containers = append(have.Containers, oneoff, gone)
		add("up_oneoff_untouched", up(p, have, Options{RemoveOrphans: true, ForceRecreate: true, Services: []string{"api"}, NoDeps: true}))
		add("down_oneoff_noted", down(p, have, DownOptions{}))
		add("down_oneoff_removed", down(p, have, DownOptions{RemoveOrphans: true}))
	}
	{
		chain := project(
			svc("a", dependsOn("b", spec.ConditionStarted)),
			svc("b", dependsOn("c", spec.ConditionHealthy)),
			svc("c", dependsOn("d", spec.ConditionCompleted), healthcheck()),
			svc("d", dependsOn("e", spec.ConditionStarted)),
			svc("e"),
		)
		add("up_deep_chain", up(chain, Observed{}, Options{}))
		have := upState(chain)
		set(&have, "e", 1, func(c *Container) { c.ConfigHash = "old" })
		add("up_deep_chain_leaf_changed", up(chain, have, Options{}))
		add("down_deep_chain", down(chain, upState(chain), DownOptions{}))
	}
	{
		diamond := project(
			svc("top", dependsOn("left", spec.ConditionStarted), dependsOn("right", spec.ConditionStarted)),
			svc("left", dependsOn("base", spec.ConditionHealthy)),
			svc("right", dependsOn("base", spec.ConditionHealthy), scale(2)),
			svc("base", healthcheck()),
		)
		add("up_diamond", up(diamond, Observed{}, Options{}))
		add("down_diamond", down(diamond, upState(diamond), DownOptions{}))
	}
	{
		builds := project(
			svc("app", image(""), func(s *spec.Service) { s.Build = &spec.Build{Context: "/src/app", Dockerfile: "Dockerfile"} }),
			svc("worker", image("p-app"), dependsOn("app", spec.ConditionStarted)),
			svc("edge", image("nginx"), func(s *spec.Service) { s.PullPolicy = "always" }),
		)
		add("up_build_missing", up(builds, Observed{}, Options{}))
		add("up_build_flag", up(builds, upState(builds), Options{Build: true}))
		add("up_pull_always", up(builds, upState(builds), Options{Pull: "always", Services: []string{"edge"}}))
	}
	{
		shared := project(
			svc("vpn", healthcheck()),
			svc("client", func(s *spec.Service) { s.NetworkMode = "service:vpn"; s.Networks = nil }),
			svc("logs", func(s *spec.Service) { s.VolumesFrom = []string{"vpn:ro"} }),
			svc("app", dep("vpn", spec.Dependency{Condition: spec.ConditionHealthy, Required: true, Restart: true}),
				func(s *spec.Service) { s.Links = []string{"vpn:tunnel"} }),
		)
		add("up_implicit_edges", up(shared, Observed{}, Options{}))
		have := upState(shared)
		set(&have, "vpn", 1, func(c *Container) { c.ConfigHash = "old" })
		add("up_shared_namespace_dep_recreated", up(shared, have, Options{}))
	}

	// down
	add("down_basic", down(p, upState(p), DownOptions{}))
	{
		have := upState(p)
		set(&have, "api", 1, func(c *Container) { c.State = StateExited })
		old := svc("worker")
		have.Containers = append(have.Containers, container(p, old, 1, StateRunning))
		add("down_orphans_noted", down(p, have, DownOptions{}))
		add("down_orphans_removed", down(p, have, DownOptions{RemoveOrphans: true}))
	}
	{
		builds := project(
			svc("app", image(""), func(s *spec.Service) { s.Build = &spec.Build{Context: "/src/app"} }, volume("data", "/data")),
			svc("db", image("postgres"), volume("db", "/db")),
		)
		builds.Volumes["ext"] = spec.Volume{Name: "ext", External: true}
		builds.Networks["outside"] = spec.Network{Name: "outside", External: true}
		have := upState(builds)
		have.Volumes = append(have.Volumes, Volume{Name: "ext"})
		have.Networks = append(have.Networks, Network{Name: "outside"})
		add("down_volumes_rmi_local", down(builds, have, DownOptions{Volumes: true, RemoveImages: "local"}))
		add("down_rmi_all", down(builds, have, DownOptions{RemoveImages: "all"}))
		add("down_without_project", down(nil, have, DownOptions{Volumes: true}))
	}
	{
		prof := projectWithProfiles(nil, svc("web"), svc("debug", profiles("dev"), dependsOn("web", spec.ConditionStarted)))
		have := upState(projectWithProfiles([]string{"dev"}, svc("web"), svc("debug", profiles("dev"), dependsOn("web", spec.ConditionStarted))))
		add("down_disabled_profile_services", down(prof, have, DownOptions{}))
	}
	add("down_nothing", down(p, Observed{}, DownOptions{Volumes: true}))

	// errors
	add("error_cycle", up(project(
		svc("a", dependsOn("b", spec.ConditionStarted)),
		svc("b", func(s *spec.Service) { s.Links = []string{"c"} }),
		svc("c", func(s *spec.Service) { s.VolumesFrom = []string{"a"} }),
	), Observed{}, Options{}))
	add("error_self_cycle", up(project(svc("a", dependsOn("a", spec.ConditionStarted))), Observed{}, Options{}))
	add("error_undefined_dependency", up(project(svc("a", func(s *spec.Service) { s.NetworkMode = "service:nope"; s.Networks = nil })), Observed{}, Options{}))
	add("error_disabled_dependency", up(projectWithProfiles(nil, svc("a", dependsOn("b", spec.ConditionStarted)), svc("b", profiles("x"))), Observed{}, Options{}))
	add("ok_disabled_optional_dependency", up(projectWithProfiles(nil,
		svc("a", dep("b", spec.Dependency{Condition: spec.ConditionHealthy})), svc("b", profiles("x"))), Observed{}, Options{}))
	add("error_container_name_scale", up(project(svc("a", func(s *spec.Service) { s.ContainerName = "fixed" })), Observed{}, Options{Scale: map[string]int{"a": 2}}))
	add("error_unknown_service", up(p, Observed{}, Options{Services: []string{"nope"}}))
	add("error_force_and_no_recreate", up(p, Observed{}, Options{ForceRecreate: true, NoRecreate: true}))
	add("container_name", up(project(svc("a", func(s *spec.Service) { s.ContainerName = "fixed" })), Observed{}, Options{}))
	return out
}

func TestGolden(t *testing.T) {
	names := map[string]bool{}
	for _, sc := range scenarios() {
		if names[sc.name] {
			t.Fatalf("duplicate scenario %s", sc.name)
		}
		names[sc.name] = true
		t.Run(sc.name, func(t *testing.T) {
			plan, err := sc.run()
			var got string
			if err != nil {
				got = "error: " + err.Error() + "\n"
			} else {
				got = plan.String()
				checkDAG(t, plan)
				// Planning twice gives the same text: no map order leaks out.
				again, _ := sc.run()
				if again.String() != got {
					t.Errorf("plan is not deterministic:\n%s\nthen:\n%s", got, again.String())
				}
			}
			checkGolden(t, sc.name, got)
		})
	}
}

// checkDAG verifies the Plan invariant: IDs are 1..n in order, and deps point backwards.
func checkDAG(t *testing.T, p *Plan) {
	t.Helper()
	for i, n := range p.Nodes {
		if n.ID != i+1 {
			t.Fatalf("node %d has ID %d", i, n.ID)
		}
		prev := 0
		for _, d := range n.Deps {
			if d <= prev || d >= n.ID {
				t.Fatalf("node #%d: deps %v not sorted, unique and earlier", n.ID, n.Deps)
			}
			prev = d
		}
	}
}
