package spec

import (
	"fmt"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// checkConsistency replaces compose-go's own consistency check, which berth disables: its
// depends_on cycle search walks every path from every service (cubic on a chain, exponential
// on diamonds; a generated 1,000-service chain took ~30 s). The rules are the Compose ones;
// the errors carry the exact key path, and cycles are found in O(services + edges).
func checkConsistency(cp *types.Project, files []string) error {
	var docs []yamlDoc
	fail := func(e *Error) error {
		if docs == nil {
			docs = parseDocs(files)
		}
		return locate(e, docs, e.Path)
	}
	for _, name := range sortedKeys(cp.Services) {
		s := cp.Services[name]
		sp := func(rest ...string) string { return servicePath(name, rest...) }

		if s.Build == nil && s.Image == "" && s.Provider == nil {
			return fail(invalid(nil, "", sp(), "service has neither an image nor a build section",
				"add image: NAME (e.g. image: nginx:1.27) or build: DIRECTORY (e.g. build: .)"))
		}
		if b := s.Build; b != nil {
			if b.Dockerfile != "" && b.DockerfileInline != "" {
				return fail(invalid(nil, "", sp("build"), "dockerfile and dockerfile_inline are both set",
					"keep only one of them"))
			}
			for ctxName, c := range b.AdditionalContexts {
				target, ok := strings.CutPrefix(c, types.ServicePrefix)
				if !ok {
					continue
				}
				t, found := cp.Services[target]
				if !found {
					t, found = cp.DisabledServices[target]
				}
				if !found {
					return fail(invalid(nil, "", sp("build", "additional_contexts", ctxName),
						fmt.Sprintf("refers to undefined service %q", target), serviceNamesHint(cp, target)))
				}
				if t.Build == nil {
					return fail(invalid(nil, "", sp("build", "additional_contexts", ctxName),
						fmt.Sprintf("service %q has no build section to use as a context", target),
						"point additional_contexts at a service that is built, or at a directory"))
				}
			}
			if len(b.Platforms) > 0 && s.Platform != "" && !contains(b.Platforms, s.Platform) {
				return fail(invalid(nil, "", sp("build", "platforms"),
					fmt.Sprintf("must include the service platform %q", s.Platform),
					fmt.Sprintf("add %q to build.platforms, or change platform", s.Platform)))
			}
		}
		if s.NetworkMode != "" && len(s.Networks) > 0 {
			return fail(invalid(nil, "", sp("network_mode"), "network_mode and networks cannot both be set",
				"keep network_mode (the container shares that network stack) or networks, not both"))
		}
		for _, n := range sortedKeys(s.Networks) {
			if _, ok := cp.Networks[n]; !ok {
				return fail(invalid(nil, "", sp("networks"), fmt.Sprintf("network %q is not declared", n),
					fmt.Sprintf("declare it at the top level:\nnetworks:\n  %s: {}", n)))
			}
		}
		if hc := s.HealthCheck; hc != nil && len(hc.Test) > 0 {
			switch hc.Test[0] {
			case "CMD", "CMD-SHELL", "NONE":
			default:
				return fail(invalid(nil, "", sp("healthcheck", "test"), "healthcheck.test must start with CMD, CMD-SHELL or NONE",
					`write test: ["CMD", "curl", "-f", "http://localhost"] or test: curl -f http://localhost`))
			}
		}
		for _, dep := range sortedKeys(s.DependsOn) {
			if _, ok := cp.Services[dep]; ok {
				continue
			}
			if d, ok := cp.DisabledServices[dep]; ok {
				if !s.DependsOn[dep].Required {
					continue
				}
				e := invalid(nil, "", sp("depends_on"), fmt.Sprintf("depends on service %q, which is disabled by profiles", dep),
					fmt.Sprintf("enable it with --profile %s, or mark the dependency required: false", strings.Join(d.Profiles, " --profile ")))
				if docs == nil {
					docs = parseDocs(files)
				}
				return locateDependsOn(e, docs, name, dep)
			}
			e := invalid(nil, "", sp("depends_on"), fmt.Sprintf("depends on undefined service %q", dep), serviceNamesHint(cp, dep))
			if docs == nil {
				docs = parseDocs(files)
			}
			return locateDependsOn(e, docs, name, dep)
		}
		for _, ns := range []struct{ key, val string }{{"network_mode", s.NetworkMode}, {"ipc", s.Ipc}, {"pid", s.Pid}} {
			if ref, ok := strings.CutPrefix(ns.val, types.ServicePrefix); ok {
				if _, found := cp.Services[ref]; !found {
					return fail(invalid(nil, "", sp(ns.key), fmt.Sprintf("refers to undefined service %q", ref), serviceNamesHint(cp, ref)))
				}
			}
		}
		for i, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Source != "" {
				if _, ok := cp.Volumes[v.Source]; !ok {
					return fail(invalid(nil, "", fmt.Sprintf("services.%s.volumes[%d]", name, i),
						fmt.Sprintf("volume %q is not declared", v.Source),
						fmt.Sprintf("declare it at the top level:\nvolumes:\n  %s: {}\n(or write ./%s to bind-mount a directory)", v.Source, v.Source)))
				}
			}
		}
		if s.Build != nil {
			for i, sec := range s.Build.Secrets {
				if _, ok := cp.Secrets[sec.Source]; !ok {
					return fail(invalid(nil, "", fmt.Sprintf("services.%s.build.secrets[%d]", name, i),
						fmt.Sprintf("secret %q is not declared", sec.Source), topLevelHint("secrets", sec.Source)))
				}
			}
		}
		for i, sec := range s.Secrets {
			if _, ok := cp.Secrets[sec.Source]; !ok {
				return fail(invalid(nil, "", fmt.Sprintf("services.%s.secrets[%d]", name, i),
					fmt.Sprintf("secret %q is not declared", sec.Source), topLevelHint("secrets", sec.Source)))
			}
		}
		for i, c := range s.Configs {
			if _, ok := cp.Configs[c.Source]; !ok {
				return fail(invalid(nil, "", fmt.Sprintf("services.%s.configs[%d]", name, i),
					fmt.Sprintf("config %q is not declared", c.Source), topLevelHint("configs", c.Source)))
			}
		}
		for _, m := range sortedKeys(s.Models) {
			if _, ok := cp.Models[m]; !ok {
				return fail(invalid(nil, "", sp("models"), fmt.Sprintf("model %q is not declared", m), topLevelHint("models", m)))
			}
		}

		if s.Scale != nil && *s.Scale < 0 {
			return fail(invalid(nil, "", sp("scale"), "scale must not be negative", "write 0 or more, e.g. scale: 2"))
		}
		if d := s.Deploy; d != nil {
			if d.Replicas != nil && *d.Replicas < 0 {
				return fail(invalid(nil, "", sp("deploy", "replicas"), "replicas must not be negative", "write 0 or more, e.g. replicas: 2"))
			}
			if s.Scale != nil && d.Replicas != nil && *s.Scale != *d.Replicas {
				return fail(invalid(nil, "", sp("scale"), fmt.Sprintf("scale (%d) and deploy.replicas (%d) disagree", *s.Scale, *d.Replicas),
					"keep only one of scale and deploy.replicas"))
			}
			if l := d.Resources.Limits; l != nil {
				if s.CPUS != 0 && float32(l.NanoCPUs) != s.CPUS {
					return fail(invalid(nil, "", sp("cpus"), "cpus and deploy.resources.limits.cpus are both set, to different values",
						"keep only one of cpus and deploy.resources.limits.cpus"))
				}
				if s.MemLimit != 0 && l.MemoryBytes != s.MemLimit {
					return fail(invalid(nil, "", sp("mem_limit"), "mem_limit and deploy.resources.limits.memory are both set, to different values",
						"keep only one of mem_limit and deploy.resources.limits.memory"))
				}
				if s.PidsLimit != 0 && l.Pids != s.PidsLimit {
					return fail(invalid(nil, "", sp("pids_limit"), "pids_limit and deploy.resources.limits.pids are both set, to different values",
						"keep only one of pids_limit and deploy.resources.limits.pids"))
				}
			}
			if r := d.Resources.Reservations; r != nil && s.MemReservation != 0 && r.MemoryBytes != s.MemReservation {
				return fail(invalid(nil, "", sp("mem_reservation"), "mem_reservation and deploy.resources.reservations.memory are both set, to different values",
					"keep only one of mem_reservation and deploy.resources.reservations.memory"))
			}
		}
		if s.ContainerName != "" && s.GetScale() > 1 {
			attr := "scale"
			if s.Scale == nil {
				attr = "deploy.replicas"
			}
			return fail(invalid(nil, "", sp("container_name"), fmt.Sprintf("container_name cannot be used with more than one replica (%s)", attr),
				fmt.Sprintf("remove container_name (berth names replicas <project>-%s-N), or set %s to 1", name, attr)))
		}
		if s.Develop != nil {
			for i, w := range s.Develop.Watch {
				if w.Target == "" && w.Action != types.WatchActionRebuild && w.Action != types.WatchActionRestart {
					return fail(invalid(nil, "", fmt.Sprintf("services.%s.develop.watch[%d]", name, i), "target is required for this action",
						"add target: the path inside the container"))
				}
			}
		}
		mounts := map[string]string{}
		for i, t := range s.Tmpfs {
			target, _, _ := strings.Cut(t, ":")
			loc := fmt.Sprintf("services.%s.tmpfs[%d]", name, i)
			if prev, ok := mounts[target]; ok {
				return fail(invalid(nil, "", loc, fmt.Sprintf("%s is already mounted by %s", target, prev), "mount each container path once"))
			}
			mounts[target] = loc
		}
		for i, v := range s.Volumes {
			loc := fmt.Sprintf("services.%s.volumes[%d]", name, i)
			if prev, ok := mounts[v.Target]; ok {
				return fail(invalid(nil, "", loc, fmt.Sprintf("%s is already mounted by %s", v.Target, prev), "mount each container path once"))
			}
			mounts[v.Target] = loc
		}
	}
	for _, name := range sortedKeys(cp.Secrets) {
		sec := cp.Secrets[name]
		if !bool(sec.External) && sec.File == "" && sec.Environment == "" {
			return fail(invalid(nil, "", "secrets."+name, "secret must declare file or environment",
				"write file: ./path/to/secret or environment: VARIABLE"))
		}
	}
	if cycle := dependsOnCycle(cp); cycle != nil {
		return fail(invalid(nil, "", servicePath(cycle[0], "depends_on"),
			"dependency cycle: "+strings.Join(cycle, " -> "),
			"remove one of these depends_on entries: services cannot wait for each other"))
	}
	return nil
}

// dependsOnCycle returns a depends_on cycle among enabled services (first service repeated at
// the end), or nil: a depth-first search with colours, O(services + edges).
func dependsOnCycle(cp *types.Project) []string {
	const (
		white = iota
		grey
		black
	)
	colour := make(map[string]int, len(cp.Services))
	var stack []string
	var found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		colour[n] = grey
		stack = append(stack, n)
		s := cp.Services[n]
		deps := make([]string, 0, len(s.DependsOn))
		for d := range s.DependsOn {
			deps = append(deps, d)
		}
		sort.Strings(deps)
		for _, d := range deps {
			if _, ok := cp.Services[d]; !ok {
				continue
			}
			switch colour[d] {
			case grey:
				for i, x := range stack {
					if x == d {
						found = append(append([]string{}, stack[i:]...), d)
						return true
					}
				}
			case white:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		colour[n] = black
		return false
	}
	for _, n := range sortedKeys(cp.Services) {
		if colour[n] == white && visit(n) {
			return found
		}
	}
	return nil
}

func serviceNamesHint(cp *types.Project, name string) string {
	names := sortedKeys(cp.Services)
	if c := closest(name, names); c != "" {
		return fmt.Sprintf("did you mean %q?", c)
	}
	if len(names) <= 20 {
		return "defined services: " + strings.Join(names, ", ")
	}
	return "define the service under services:, or remove the reference"
}

func topLevelHint(key, name string) string {
	return fmt.Sprintf("declare it at the top level:\n%s:\n  %s:\n    file: ./%s.txt", key, name, name)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
