package planner

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/spec"
)

// TestGoldenLoaded plans a compose file loaded by spec.Load, so the planner sees what the
// loader really produces (implicit depends_on, default values, absolute paths).
func TestGoldenLoaded(t *testing.T) {
	load := func(profiles ...string) *spec.Project {
		t.Helper()
		p, err := spec.Load(context.Background(), spec.Options{
			Files:    []string{filepath.Join(goldenDir, "shop.compose.yaml")},
			Profiles: profiles,
			Environ:  []string{},
		})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := load()
	cases := []struct {
		name string
		run  func() (*Plan, error)
	}{
		{"loaded_up_fresh", up(p, Observed{}, Options{})},
		{"loaded_up_noop", up(p, upState(p), Options{})},
		{"loaded_up_scale_web", up(p, upState(p), Options{Scale: map[string]int{"web": 3}})},
		{"loaded_up_dev_profile", up(load("dev"), upState(p), Options{})},
		{"loaded_down", down(p, upState(load("dev")), DownOptions{Volumes: true, RemoveImages: "local"})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plan, err := c.run()
			if err != nil {
				t.Fatal(err)
			}
			checkDAG(t, plan)
			checkGolden(t, c.name, plan.String())
		})
	}
}
