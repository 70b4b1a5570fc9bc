package main

import (
	"context"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

// specOptions maps the global flags to the loader's options. Discovery starts in the process's
// working directory and the process environment is used (Environ nil).
func (a *app) specOptions() spec.Options {
	return spec.Options{
		Files:       a.opts.Files,
		ProjectName: a.opts.ProjectName,
		ProjectDir:  a.opts.ProjectDir,
		EnvFiles:    a.opts.EnvFiles,
		Profiles:    a.opts.Profiles,
	}
}

// loadProject loads and validates the project selected by the global flags. Every compose
// command calls it first: a user error (a *spec.Error, exit code 1) stops the command before
// anything is created or changed. Dependency cycles are reported here too.
func (a *app) loadProject(ctx context.Context) (*spec.Project, error) {
	p, err := spec.Load(ctx, a.specOptions())
	if err != nil {
		return nil, err
	}
	if _, err := planner.NewGraph(p); err != nil {
		return nil, err
	}
	return p, nil
}
