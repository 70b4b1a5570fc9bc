package engine

import (
	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

func reconcile(want *spec.Project, have planner.Observed, opt planner.Options) (*planner.Plan, error) {
	return planner.Reconcile(want, have, opt)
}

func planDown(want *spec.Project, have planner.Observed, opt planner.DownOptions) (*planner.Plan, error) {
	return planner.Down(want, have, opt)
}
