package main

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

// configOptions are the flags of `berth config`.
type configOptions struct {
	format   string
	quiet    bool
	services bool
	volumes  bool
	networks bool
	images   bool
	profiles bool
	hash     string
}

// addConfigCommands registers `berth config`.
func addConfigCommands(root *cobra.Command, a *app) {
	var o configOptions
	cmd := &cobra.Command{
		Use:   "config [OPTIONS]",
		Short: "Parse, resolve and render the compose file in canonical format",
		Long: `Validate the project and print it normalized, as "docker compose config" does:
variables interpolated, files merged, extends and include resolved, env_file entries merged
into environment, paths made absolute. With -q, only validate (exit code 1 on error).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return configRun(cmd, a, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.format, "format", "yaml", "Output format: yaml or json")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Only validate the configuration, print nothing")
	f.BoolVar(&o.services, "services", false, "Print the service names, one per line (dependencies first)")
	f.BoolVar(&o.volumes, "volumes", false, "Print the volume names, one per line")
	f.BoolVar(&o.networks, "networks", false, "Print the network names, one per line")
	f.BoolVar(&o.images, "images", false, "Print the image names, one per line")
	f.BoolVar(&o.profiles, "profiles", false, "Print the profile names, one per line")
	f.StringVar(&o.hash, "hash", "", `Print the config hash of services ("SERVICE[,SERVICE...]" or "*" for all), one per line`)
	root.AddCommand(cmd)
}

func configRun(cmd *cobra.Command, a *app, o configOptions) error {
	ctx := cmd.Context()
	if o.format != "yaml" && o.format != "json" {
		return &exitError{code: 1, err: fmt.Errorf("unsupported format %q: use --format yaml or --format json", o.format)}
	}
	listing := o.services || o.volumes || o.networks || o.images || o.profiles || o.hash != ""
	if !listing {
		// loadProject also checks dependency cycles, so that -q validates what `up` would.
		if _, err := a.loadProject(ctx); err != nil {
			return err
		}
		if o.quiet {
			return nil
		}
		out, err := spec.Render(ctx, a.specOptions(), o.format)
		if err != nil {
			return err
		}
		if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
			out = append(out, '\n')
		}
		_, err = a.stdout.Write(out)
		return err
	}

	p, err := a.loadProject(ctx)
	if err != nil {
		return err
	}
	if o.quiet {
		return nil
	}
	var lines []string
	switch {
	case o.services:
		g, err := planner.NewGraph(p)
		if err != nil {
			return err
		}
		lines = g.Order()
	case o.volumes:
		lines = configSortedKeys(p.Volumes)
	case o.networks:
		lines = configSortedKeys(p.Networks)
	case o.hash != "":
		lines, err = configHashes(p, o.hash)
		if err != nil {
			return err
		}
	case o.profiles:
		lines = p.Profiles
	case o.images:
		for _, s := range p.Services {
			lines = append(lines, s.ImageName(p.Name))
		}
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(a.stdout, l); err != nil {
			return err
		}
	}
	return nil
}

// configHashes prints "<service> <hash>" for the selected services, sorted by name.
func configHashes(p *spec.Project, sel string) ([]string, error) {
	var names []string
	if sel == "*" {
		names = p.ServiceNames()
	} else {
		for _, n := range strings.Split(sel, ",") {
			if n = strings.TrimSpace(n); n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	lines := make([]string, 0, len(names))
	for _, n := range names {
		s, ok := p.Service(n)
		if !ok {
			hint := "services: " + strings.Join(p.ServiceNames(), ", ")
			for _, d := range p.DisabledServices {
				if d.Name == n {
					hint = fmt.Sprintf("%q is disabled by profiles: enable it with --profile %s", n, strings.Join(d.Profiles, " or --profile "))
				}
			}
			return nil, &spec.Error{Path: "--hash", Msg: fmt.Sprintf("no such service: %s", n), Hint: hint, Err: spec.ErrInvalid}
		}
		lines = append(lines, n+" "+planner.ServiceHash(s))
	}
	return lines, nil
}

func configSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
