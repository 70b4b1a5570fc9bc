package planner

import (
	"fmt"
	"slices"

	"github.com/berth-dev/berth/spec"
)

// Down plans `down`: stop the project's containers in reverse dependency order (a service
// stops only after every service that depends on it has stopped), remove them, then remove
// the project's networks (not external ones), with opt.Volumes its named volumes (not
// external) and anonymous volumes, and with opt.RemoveImages its images ("local": images
// built for services without an image name; "all": every service's image).
//
// Containers of services enabled or disabled by profiles are removed. Orphans (containers of
// services the project does not define) and one-off containers are removed only with
// opt.RemoveOrphans, and noted otherwise. want may be nil when no compose file is at hand:
// then every container observed is the project's, and every observed network (and volume,
// with opt.Volumes) is removed.
func Down(want *spec.Project, have Observed, opt DownOptions) (*Plan, error) {
	switch opt.RemoveImages {
	case "", "local", "all":
	default:
		return nil, &spec.Error{Msg: fmt.Sprintf("--rmi %q is not valid", opt.RemoveImages), Hint: "use local or all"}
	}
	plan := &Plan{}
	b := builder{plan: plan}
	if want == nil {
		return downWithoutProject(b, have, opt), nil
	}
	plan.Project = want.Name
	all := make([]spec.Service, 0, len(want.Services)+len(want.DisabledServices))
	all = append(all, want.Services...)
	all = append(all, want.DisabledServices...)
	g, err := newGraph(all, nil)
	if err != nil {
		return nil, err
	}
	known := knownServices(want)
	byService := map[string][]Container{}
	var orphans []Container
	for _, c := range have.Containers {
		if c.OneOff || !known[c.Service] {
			orphans = append(orphans, c)
			continue
		}
		byService[c.Service] = append(byService[c.Service], c)
	}
	sortContainers(orphans)

	var removes []int
	if len(orphans) > 0 {
		if opt.RemoveOrphans {
			removes = append(removes, removeContainers(&b, orphans, "orphan", opt.Volumes, nil)...)
		} else {
			plan.Notes = append(plan.Notes, orphanNote(orphans))
		}
	}

	// Stop dependents first: walk the order backwards, so every dependent's Stop nodes exist
	// (with smaller IDs) when its dependency's Stop nodes are added.
	// after[s] are the Stop nodes a dependency of s must wait for: s's own, or, when s has
	// nothing running, those of its dependents (so a chain with a stopped link still stops
	// from the top).
	stops := map[string][]int{}
	after := map[string][]int{}
	order := g.Order()
	for i := len(order) - 1; i >= 0; i-- {
		name := order[i]
		cs := byService[name]
		sortContainers(cs)
		var deps []int
		for _, e := range g.Dependents(name) {
			deps = append(deps, after[e.From]...)
		}
		for _, c := range cs {
			if isRunning(c) {
				stops[name] = append(stops[name], b.add(StopContainer{ID: c.ID, Service: c.Service, Number: c.Number, Name: c.Name, Reason: "down"}, deps...))
			}
		}
		if len(stops[name]) > 0 {
			after[name] = stops[name]
		} else {
			slices.Sort(deps)
			after[name] = slices.Compact(deps)
		}
	}
	for _, name := range order {
		cs := byService[name]
		j := 0
		for _, c := range cs {
			stop := 0
			if isRunning(c) {
				stop = stops[name][j]
				j++
			}
			removes = append(removes, b.add(RemoveContainer{ID: c.ID, Service: c.Service, Number: c.Number, Name: c.Name, Reason: "down", Volumes: opt.Volumes}, stop))
		}
	}

	observedNets := map[string]bool{}
	for _, n := range have.Networks {
		observedNets[n.Name] = true
	}
	for _, key := range sortedKeys(want.Networks) {
		n := want.Networks[key]
		name := n.Name
		if name == "" {
			name = want.Name + "_" + key
		}
		if !n.External && observedNets[name] {
			b.add(RemoveNetwork{Key: key, Name: name, Reason: "down"}, removes...)
		}
	}
	if opt.Volumes {
		observedVols := map[string]bool{}
		for _, v := range have.Volumes {
			observedVols[v.Name] = true
		}
		for _, key := range sortedKeys(want.Volumes) {
			v := want.Volumes[key]
			name := v.Name
			if name == "" {
				name = want.Name + "_" + key
			}
			if !v.External && observedVols[name] {
				b.add(RemoveVolume{Key: key, Name: name, Reason: "down -v"}, removes...)
			}
		}
	}
	if opt.RemoveImages != "" {
		refs := map[string]bool{}
		for _, s := range all {
			if opt.RemoveImages == "all" || (s.Build != nil && s.Image == "") {
				ref := s.ImageName(want.Name)
				if have.Images[ref] != "" {
					refs[ref] = true
				}
			}
		}
		for _, ref := range sortedKeys(refs) {
			b.add(RemoveImage{Ref: ref, Reason: "--rmi " + opt.RemoveImages}, removes...)
		}
	}
	return plan, nil
}

func downWithoutProject(b builder, have Observed, opt DownOptions) *Plan {
	var cs, oneOffs []Container
	for _, c := range have.Containers {
		if c.OneOff {
			oneOffs = append(oneOffs, c)
		} else {
			cs = append(cs, c)
		}
	}
	if opt.RemoveOrphans {
		cs = append(cs, oneOffs...)
	} else if len(oneOffs) > 0 {
		sortContainers(oneOffs)
		b.plan.Notes = append(b.plan.Notes, orphanNote(oneOffs))
	}
	sortContainers(cs)
	removes := removeContainers(&b, cs, "down", opt.Volumes, nil)
	nets := map[string]bool{}
	for _, n := range have.Networks {
		nets[n.Name] = true
	}
	for _, name := range sortedKeys(nets) {
		b.add(RemoveNetwork{Name: name, Reason: "down"}, removes...)
	}
	if opt.Volumes {
		vols := map[string]bool{}
		for _, v := range have.Volumes {
			vols[v.Name] = true
		}
		for _, name := range sortedKeys(vols) {
			b.add(RemoveVolume{Name: name, Reason: "down -v"}, removes...)
		}
	}
	return b.plan
}
