package planner

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/planner")

const goldenDir = "../testdata/planner"

// checkGolden compares got with testdata/planner/<name>.golden (or rewrites it with -update).
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join(goldenDir, name+".golden")
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test ./planner -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s mismatch (-golden +got):\n%s", path, diff)
	}
}

type svcOpt func(*spec.Service)

// svc makes a service as spec.Load would: image, default network, scale 1.
func svc(name string, opts ...svcOpt) spec.Service {
	s := spec.Service{
		Name:        name,
		Image:       "img/" + name,
		Environment: map[string]string{},
		Networks:    map[string]spec.ServiceNetwork{"default": {}},
		DependsOn:   map[string]spec.Dependency{},
		Labels:      map[string]string{},
		Scale:       1,
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func image(ref string) svcOpt { return func(s *spec.Service) { s.Image = ref } }
func scale(n int) svcOpt      { return func(s *spec.Service) { s.Scale = n } }
func env(k, v string) svcOpt  { return func(s *spec.Service) { s.Environment[k] = v } }
func port(p uint32) svcOpt {
	return func(s *spec.Service) { s.Ports = append(s.Ports, spec.Port{Target: p, Protocol: "tcp"}) }
}

func dependsOn(to, cond string) svcOpt {
	return func(s *spec.Service) { s.DependsOn[to] = spec.Dependency{Condition: cond, Required: true} }
}

func dep(to string, d spec.Dependency) svcOpt {
	return func(s *spec.Service) { s.DependsOn[to] = d }
}

func profiles(p ...string) svcOpt { return func(s *spec.Service) { s.Profiles = p } }

func networks(keys ...string) svcOpt {
	return func(s *spec.Service) {
		s.Networks = map[string]spec.ServiceNetwork{}
		for _, k := range keys {
			s.Networks[k] = spec.ServiceNetwork{}
		}
	}
}

func volume(source, target string) svcOpt {
	return func(s *spec.Service) {
		s.Volumes = append(s.Volumes, spec.Mount{Type: spec.MountVolume, Source: source, Target: target})
	}
}

func healthcheck() svcOpt {
	return func(s *spec.Service) { s.Healthcheck = &spec.Healthcheck{Test: []string{"CMD", "true"}, Retries: 3} }
}

// project builds project "p" the way spec.Load returns it: services split by profile and
// sorted, a default network, and every network and volume a service names declared.
func project(services ...spec.Service) *spec.Project {
	return projectWithProfiles(nil, services...)
}

func projectWithProfiles(active []string, services ...spec.Service) *spec.Project {
	p := &spec.Project{
		Name:     "p",
		Networks: map[string]spec.Network{},
		Volumes:  map[string]spec.Volume{},
	}
	for _, s := range services {
		enabled := len(s.Profiles) == 0
		for _, pr := range s.Profiles {
			if slices.Contains(active, pr) {
				enabled = true
			}
		}
		if enabled {
			p.Services = append(p.Services, s)
		} else {
			p.DisabledServices = append(p.DisabledServices, s)
		}
		for k := range s.Networks {
			p.Networks[k] = spec.Network{Name: "p_" + k, Driver: "bridge"}
		}
		for _, m := range s.Volumes {
			if m.Type == spec.MountVolume && m.Source != "" {
				p.Volumes[m.Source] = spec.Volume{Name: "p_" + m.Source, Driver: "local"}
			}
		}
	}
	slices.SortFunc(p.Services, func(a, b spec.Service) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(p.DisabledServices, func(a, b spec.Service) int { return strings.Compare(a.Name, b.Name) })
	return p
}

func imageID(ref string) string { return "sha256:" + ref }

// upState is what a completed `up` of p leaves behind: every service's replicas running with
// the current hashes, networks, volumes and images present.
func upState(p *spec.Project) Observed {
	o := Observed{Images: map[string]string{}}
	for _, s := range p.Services {
		ref := s.ImageName(p.Name)
		o.Images[ref] = imageID(ref)
		for n := 1; n <= s.Scale; n++ {
			o.Containers = append(o.Containers, container(p, s, n, StateRunning))
		}
	}
	for _, k := range sortedKeys(p.Networks) {
		o.Networks = append(o.Networks, Network{Name: p.Networks[k].Name, Hash: NetworkHash(p.Networks[k])})
	}
	for _, k := range sortedKeys(p.Volumes) {
		o.Volumes = append(o.Volumes, Volume{Name: p.Volumes[k].Name})
	}
	return o
}

func container(p *spec.Project, s spec.Service, n int, state string) Container {
	name := ContainerName(p.Name, s, n)
	ref := s.ImageName(p.Name)
	return Container{
		ID:          "id-" + name,
		Name:        name,
		Service:     s.Name,
		Number:      n,
		ConfigHash:  ServiceHash(s),
		FieldHashes: FieldHashes(s),
		ImageID:     imageID(ref),
		State:       state,
	}
}

// set changes the observed container of service number n.
func set(o *Observed, service string, n int, f func(*Container)) {
	for i := range o.Containers {
		c := &o.Containers[i]
		if c.Service == service && c.Number == n && !c.OneOff {
			f(c)
			return
		}
	}
	panic("no container " + service)
}
