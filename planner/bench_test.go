package planner

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/berth-dev/berth/spec"
)

// bigProject generates n services forming a random DAG (fixed seed): each service depends on
// about 3 earlier ones, with a mix of conditions, and carries a realistic amount of config.
// The observed state has one container per service: ~90% up to date and running, ~5% with a
// changed config, ~5% stopped.
func bigProject(n int) (*spec.Project, Observed) {
	rng := rand.New(rand.NewPCG(1, 2))
	conds := []string{spec.ConditionStarted, spec.ConditionStarted, spec.ConditionHealthy, spec.ConditionCompleted}
	services := make([]spec.Service, n)
	for i := range services {
		name := fmt.Sprintf("svc%05d", i)
		s := svc(name, port(uint32(8000+i%1000)), volume("data", "/data/"+name), healthcheck(),
			env("SERVICE", name), env("LOG_LEVEL", "info"), env("REGION", "eu-west-1"), env("REPLICA_OF", "none"))
		s.Labels["team"] = fmt.Sprintf("team-%d", i%17)
		s.Command = []string{"/bin/server", "--name", name}
		if i > 0 {
			for range 3 {
				to := fmt.Sprintf("svc%05d", rng.IntN(i))
				s.DependsOn[to] = spec.Dependency{Condition: conds[rng.IntN(len(conds))], Required: true}
			}
		}
		services[i] = s
	}
	p := project(services...)
	have := upState(p)
	for i := range have.Containers {
		c := &have.Containers[i]
		c.Health = "healthy"
		switch r := rng.IntN(100); {
		case r < 5:
			c.ConfigHash = "old"
		case r < 10:
			c.State, c.Health = StateExited, ""
		}
	}
	return p, have
}

// reportCPU adds the process CPU time per op since start as "cpu-ns/op".
func reportCPU(b *testing.B, start time.Duration) {
	if start > 0 && b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

func BenchmarkNewGraph5000(b *testing.B) {
	p, _ := bigProject(5000)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		if _, err := NewGraph(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReconcile5000(b *testing.B) {
	p, have := bigProject(5000)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	var nodes int
	for b.Loop() {
		plan, err := Reconcile(p, have, Options{})
		if err != nil {
			b.Fatal(err)
		}
		nodes = len(plan.Nodes)
	}
	b.ReportMetric(float64(nodes), "actions")
}

func BenchmarkReconcile5000Fresh(b *testing.B) {
	p, _ := bigProject(5000)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	var nodes int
	for b.Loop() {
		plan, err := Reconcile(p, Observed{}, Options{})
		if err != nil {
			b.Fatal(err)
		}
		nodes = len(plan.Nodes)
	}
	b.ReportMetric(float64(nodes), "actions")
}

func BenchmarkDown5000(b *testing.B) {
	p, have := bigProject(5000)
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		if _, err := Down(p, have, DownOptions{Volumes: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlanString5000(b *testing.B) {
	p, _ := bigProject(5000)
	plan, err := Reconcile(p, Observed{}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	defer reportCPU(b, processCPU())
	for b.Loop() {
		_ = plan.String()
	}
}
