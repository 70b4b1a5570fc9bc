package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

// specOptions maps the global flags to the loader's options. Discovery starts in the process's
// working directory and the process environment is used (Environ nil).
func (a *app) specOptions() spec.Options {
	opt := spec.Options{
		Files:       a.opts.Files,
		ProjectName: a.opts.ProjectName,
		ProjectDir:  a.opts.ProjectDir,
		EnvFiles:    a.opts.EnvFiles,
		Profiles:    a.opts.Profiles,
	}
	// Remember validated inputs and loaded projects under the state root, but never create the
	// root for it (a dry run or `config` on a machine without state leaves nothing behind).
	if fi, err := os.Stat(a.opts.Root); err == nil && fi.IsDir() {
		opt.Validated = spec.DirValidationCache{Dir: filepath.Join(a.opts.Root, "cache", "compose-validated")}
		opt.Loaded = spec.DirLoadCache{Dir: filepath.Join(a.opts.Root, "cache", "compose-loaded")}
	}
	return opt
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
	for _, w := range projectUnsupported(p) {
		fmt.Fprintln(a.stderr, "WARN", w)
	}
	return p, nil
}

// projectUnsupported names the keys of p that load fine but that berth does not act on yet, so
// that a user is told instead of finding out from a container that behaves differently.
func projectUnsupported(p *spec.Project) []string {
	var out []string
	add := func(svc, key, value string) {
		out = append(out, fmt.Sprintf("services.%s.%s: %q is not supported by berth yet and is ignored", svc, key, value))
	}
	for _, s := range p.Services {
		if s.MacAddress != "" {
			add(s.Name, "mac_address", s.MacAddress)
		}
		if s.Logging != nil && s.Logging.Driver != "" && s.Logging.Driver != "json-file" && s.Logging.Driver != "local" {
			add(s.Name, "logging.driver", s.Logging.Driver)
		}
	}
	return out
}
