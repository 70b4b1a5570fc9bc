package planner

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/berth-dev/berth/spec"
)

// ErrOptions classes option combinations that make no sense together
// (--force-recreate with --no-recreate, ...).
var ErrOptions = errors.New("conflicting options")

// ErrNoProject is returned by Reconcile when there is no project to reconcile.
var ErrNoProject = errors.New("no project")

// Reconcile plans `up`: what to do so that have matches want.
//
// Per service, in dependency order, containers are kept, recreated (config changed, image
// changed, --force-recreate, a service:x dependency recreated), created (missing, or scale
// up: numbered above the highest existing) or removed (scale down: out of date first, then
// the highest numbers). Stopped up-to-date containers are started (unless NoStart). A
// dependent's Create/Start waits for its dependencies' Start nodes, or their WaitContainer
// node for service_healthy / service_completed_successfully. One-off containers are never
// touched; orphans are removed only with RemoveOrphans and noted otherwise.
func Reconcile(want *spec.Project, have Observed, opt Options) (*Plan, error) {
	if want == nil {
		return nil, fmt.Errorf("reconcile: %w", ErrNoProject)
	}
	switch {
	case opt.ForceRecreate && opt.NoRecreate:
		return nil, fmt.Errorf("--force-recreate and --no-recreate: %w", ErrOptions)
	case opt.AlwaysRecreateDeps && opt.NoRecreate:
		return nil, fmt.Errorf("--always-recreate-deps and --no-recreate: %w", ErrOptions)
	case opt.Build && opt.NoBuild:
		return nil, fmt.Errorf("--build and --no-build: %w", ErrOptions)
	}
	switch opt.Pull {
	case "", "always", "missing", "never", "build":
	default:
		return nil, &spec.Error{Msg: fmt.Sprintf("--pull %q is not a pull policy", opt.Pull), Hint: "use always, missing, never or build"}
	}
	services, disabled, err := enableTargeted(want, opt)
	if err != nil {
		return nil, err
	}
	for _, name := range sortedKeys(opt.Scale) {
		if !slices.ContainsFunc(services, func(s spec.Service) bool { return s.Name == name }) {
			return nil, &spec.Error{
				Path: "services",
				Msg:  fmt.Sprintf("--scale %s: no such service", name),
				Hint: "the project's services are: " + strings.Join(want.ServiceNames(), ", "),
			}
		}
	}
	g, err := newGraph(services, disabled)
	if err != nil {
		return nil, err
	}
	r := &reconciler{
		want:      want,
		have:      have,
		opt:       opt,
		g:         g,
		b:         builder{plan: &Plan{Project: want.Name}},
		svc:       make([]*spec.Service, len(services)),
		byService: make(map[string][]Container, len(services)),
		st:        make([]*svcState, len(services)),
		netNodes:  map[string]int{},
		volNodes:  map[string]int{},
		imgNodes:  map[string]int{},

		explicitWaits: map[int]bool{},
		hasher:        newServiceHasher(),
	}
	for i := range services {
		r.svc[g.index[services[i].Name]] = &services[i]
	}
	if err := r.run(); err != nil {
		return nil, err
	}
	r.pruneWaits()
	return r.b.plan, nil
}

// enableTargeted returns the services to plan over: the enabled ones plus any disabled
// service named in opt.Services (and, unless NoDeps, the disabled services it needs), as
// Compose enables services named on the command line. The rest stay disabled.
func enableTargeted(want *spec.Project, opt Options) ([]spec.Service, map[string]bool, error) {
	enabled := make(map[string]bool, len(want.Services))
	for _, s := range want.Services {
		enabled[s.Name] = true
	}
	dis := make(map[string]int, len(want.DisabledServices))
	for i, s := range want.DisabledServices {
		dis[s.Name] = i
	}
	var extra []int
	added := map[string]bool{}
	var enable func(name string)
	enable = func(name string) {
		i, ok := dis[name]
		if !ok || added[name] {
			return
		}
		added[name] = true
		extra = append(extra, i)
		if opt.NoDeps {
			return
		}
		for _, d := range rawDeps(&want.DisabledServices[i]) {
			if !enabled[d] {
				enable(d)
			}
		}
	}
	for _, name := range opt.Services {
		if enabled[name] {
			continue
		}
		if _, ok := dis[name]; !ok {
			return nil, nil, &spec.Error{
				Path: "services",
				Msg:  fmt.Sprintf("no such service: %q", name),
				Hint: "the project's services are: " + strings.Join(want.ServiceNames(), ", "),
			}
		}
		enable(name)
	}
	disabled := make(map[string]bool, len(dis))
	for name := range dis {
		if !added[name] {
			disabled[name] = true
		}
	}
	if len(extra) == 0 {
		return want.Services, disabled, nil
	}
	services := slices.Clone(want.Services)
	for _, i := range extra {
		services = append(services, want.DisabledServices[i])
	}
	slices.SortFunc(services, func(a, b spec.Service) int { return strings.Compare(a.Name, b.Name) })
	return services, disabled, nil
}

// rawDeps lists the services s refers to, before any validation.
func rawDeps(s *spec.Service) []string {
	var out []string
	for name := range s.DependsOn {
		out = append(out, name)
	}
	for _, l := range s.Links {
		name, _, _ := strings.Cut(l, ":")
		out = append(out, name)
	}
	for _, v := range s.VolumesFrom {
		if !strings.HasPrefix(v, "container:") {
			name, _, _ := strings.Cut(v, ":")
			out = append(out, name)
		}
	}
	for _, m := range []string{s.NetworkMode, s.IPC, s.PID} {
		if name, ok := strings.CutPrefix(m, "service:"); ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

type reconciler struct {
	want *spec.Project
	have Observed
	opt  Options
	g    *Graph
	b    builder

	// Per service, by graph index.
	svc      []*spec.Service
	targeted []bool
	selected []bool
	st       []*svcState // set once planned
	needWait [][]waitNeed

	byService map[string][]Container // non-one-off containers by service, sorted by number

	netNodes map[string]int // network key -> EnsureNetwork node (0: nothing to do)
	volNodes map[string]int // volume key -> EnsureVolume node
	imgNodes map[string]int // image ref -> EnsureImage node
	images   map[string]*imagePlan

	explicitWaits map[int]bool // WaitContainer nodes asked for by Options.Wait
	hasher        *serviceHasher
}

// svcState is what later services need to know about a planned service.
type svcState struct {
	starts   []int          // StartContainer nodes
	creates  []int          // CreateContainer / RecreateContainer nodes
	waits    map[string]int // condition -> WaitContainer node (absent or 0: none needed)
	replaced bool           // its containers are new ones: dependents sharing a namespace follow
}

type waitNeed struct {
	condition  string
	required   bool
	dependents []string // services whose depends_on asks for the condition
	explicit   bool     // Options.Wait
}

func (w waitNeed) reason() string {
	var parts []string
	if len(w.dependents) > 0 {
		parts = append(parts, "for "+strings.Join(w.dependents, ", "))
	}
	if w.explicit {
		parts = append(parts, "--wait")
	}
	return strings.Join(parts, "; ")
}

func (r *reconciler) run() error {
	r.selectServices()
	r.groupContainers()
	r.orphans()
	if err := r.networks(); err != nil {
		return err
	}
	if err := r.volumes(); err != nil {
		return err
	}
	r.planWaits()
	r.planImages()
	decisions := make([]*decision, len(r.svc))
	for _, i := range r.g.orderIdx {
		if !r.selected[i] {
			continue
		}
		d, err := r.decide(int(i))
		if err != nil {
			return err
		}
		decisions[i] = d
	}
	// Images first, in the order services need them, as Compose pulls and builds before it
	// creates anything.
	for _, i := range r.g.orderIdx {
		if d := decisions[i]; d != nil && d.needImage && r.images[d.ref].action.Reason != "" {
			if _, ok := r.imgNodes[d.ref]; !ok {
				r.imgNodes[d.ref] = r.b.add(r.images[d.ref].action)
			}
		}
	}
	for _, i := range r.g.orderIdx {
		if d := decisions[i]; d != nil {
			r.emit(int(i), d)
		}
	}
	return nil
}

// selectServices computes the targeted services and, unless NoDeps, their transitive dependencies.
func (r *reconciler) selectServices() {
	n := len(r.svc)
	r.targeted = make([]bool, n)
	r.selected = make([]bool, n)
	if len(r.opt.Services) == 0 {
		for i := range r.targeted {
			r.targeted[i] = true
			r.selected[i] = true
		}
		return
	}
	for _, name := range r.opt.Services {
		r.targeted[r.g.index[name]] = true
	}
	var visit func(i int32)
	visit = func(i int32) {
		if r.selected[i] {
			return
		}
		r.selected[i] = true
		if r.opt.NoDeps {
			return
		}
		for _, j := range r.g.depTo[i] {
			visit(j)
		}
	}
	for i, t := range r.targeted {
		if t {
			visit(int32(i))
		}
	}
}

func (r *reconciler) groupContainers() {
	for _, c := range r.have.Containers {
		if c.OneOff {
			continue
		}
		r.byService[c.Service] = append(r.byService[c.Service], c)
	}
	for _, cs := range r.byService {
		sortContainers(cs)
	}
}

func sortContainers(cs []Container) {
	slices.SortFunc(cs, func(a, b Container) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		if a.Number != b.Number {
			return a.Number - b.Number
		}
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}

// knownServices are the project's services, enabled or not: their containers are not orphans.
func knownServices(p *spec.Project) map[string]bool {
	known := make(map[string]bool, len(p.Services)+len(p.DisabledServices))
	for _, s := range p.Services {
		known[s.Name] = true
	}
	for _, s := range p.DisabledServices {
		known[s.Name] = true
	}
	return known
}

func isRunning(c Container) bool {
	switch c.State {
	case StateRunning, StateRestarting, StatePaused:
		return true
	}
	return false
}

// orphans handles containers of services the project no longer defines.
func (r *reconciler) orphans() {
	known := knownServices(r.want)
	var orphans []Container
	for _, c := range r.have.Containers {
		if !c.OneOff && !known[c.Service] {
			orphans = append(orphans, c)
		}
	}
	if len(orphans) == 0 {
		return
	}
	sortContainers(orphans)
	if !r.opt.RemoveOrphans {
		r.b.plan.Notes = append(r.b.plan.Notes, orphanNote(orphans))
		return
	}
	removeContainers(&r.b, orphans, "orphan", false, nil)
}

func orphanNote(orphans []Container) string {
	names := make([]string, len(orphans))
	oneOff := false
	for i, c := range orphans {
		names[i] = c.Name
		oneOff = oneOff || c.OneOff
	}
	what := "belong to services this project no longer defines"
	if oneOff {
		what = "are one-off containers or belong to services this project no longer defines"
	}
	return fmt.Sprintf("orphan containers (%s) %s; run with --remove-orphans to remove them", strings.Join(names, ", "), what)
}

// removeContainers adds Stop (when running) and Remove nodes for cs. stopDeps gives extra
// dependencies of each container's StopContainer (may be nil). It returns the Remove nodes.
func removeContainers(b *builder, cs []Container, reason string, volumes bool, stopDeps func(Container) []int) []int {
	removes := make([]int, 0, len(cs))
	for _, c := range cs {
		stop := 0
		var deps []int
		if stopDeps != nil {
			deps = stopDeps(c)
		}
		if isRunning(c) {
			stop = b.add(StopContainer{ID: c.ID, Service: c.Service, Number: c.Number, Name: c.Name, Reason: reason}, deps...)
			deps = nil
		}
		deps = append(deps, stop)
		removes = append(removes, b.add(RemoveContainer{ID: c.ID, Service: c.Service, Number: c.Number, Name: c.Name, Reason: reason, Volumes: volumes}, deps...))
	}
	return removes
}

func (r *reconciler) networks() error {
	keys := map[string]bool{}
	for i, sel := range r.selected {
		if sel {
			for k := range r.svc[i].Networks {
				keys[k] = true
			}
		}
	}
	observed := make(map[string]Network, len(r.have.Networks))
	for _, n := range r.have.Networks {
		observed[n.Name] = n
	}
	for _, key := range sortedKeys(keys) {
		n, ok := r.want.Networks[key]
		if !ok {
			return &spec.Error{
				Path: "networks",
				Msg:  fmt.Sprintf("network %q is used by a service but not defined", key),
				Hint: "declare it under the top-level networks key",
			}
		}
		name := n.Name
		if name == "" {
			name = r.want.Name + "_" + key
		}
		o, exists := observed[name]
		if !exists {
			r.netNodes[key] = r.b.add(EnsureNetwork{Key: key, Name: name, External: n.External, Reason: "missing"})
			continue
		}
		if !n.External && o.Hash != "" && o.Hash != NetworkHash(n) {
			r.b.plan.Notes = append(r.b.plan.Notes, fmt.Sprintf(
				"network %s has changed since it was created; run `berth down` and `berth up` to recreate it", name))
		}
	}
	return nil
}

func (r *reconciler) volumes() error {
	keys := map[string]bool{}
	for i, sel := range r.selected {
		if !sel {
			continue
		}
		for _, m := range r.svc[i].Volumes {
			if m.Type == spec.MountVolume && m.Source != "" {
				keys[m.Source] = true
			}
		}
	}
	observed := make(map[string]bool, len(r.have.Volumes))
	for _, v := range r.have.Volumes {
		observed[v.Name] = true
	}
	for _, key := range sortedKeys(keys) {
		v, ok := r.want.Volumes[key]
		if !ok {
			return &spec.Error{
				Path: "volumes",
				Msg:  fmt.Sprintf("volume %q is used by a service but not defined", key),
				Hint: "declare it under the top-level volumes key",
			}
		}
		name := v.Name
		if name == "" {
			name = r.want.Name + "_" + key
		}
		if !observed[name] {
			r.volNodes[key] = r.b.add(EnsureVolume{Key: key, Name: name, External: v.External, Reason: "missing"})
		}
	}
	return nil
}

// planWaits records which services must be waited for, with what condition: the targets of
// service_healthy / service_completed_successfully dependencies, and every service with
// Options.Wait.
func (r *reconciler) planWaits() {
	r.needWait = make([][]waitNeed, len(r.svc))
	if r.opt.NoStart {
		return
	}
	need := func(service int32, cond string) *waitNeed {
		ws := r.needWait[service]
		for i := range ws {
			if ws[i].condition == cond {
				return &ws[i]
			}
		}
		r.needWait[service] = append(ws, waitNeed{condition: cond})
		return &r.needWait[service][len(ws)]
	}
	for _, i := range r.g.orderIdx {
		if !r.selected[i] {
			continue
		}
		for k, e := range r.g.deps[i] {
			to := r.g.depTo[i][k]
			if r.selected[to] && (e.Condition == spec.ConditionHealthy || e.Condition == spec.ConditionCompleted) {
				w := need(to, e.Condition)
				w.required = w.required || e.Required
				w.dependents = append(w.dependents, e.From)
			}
		}
	}
	if r.opt.Wait {
		for _, i := range r.g.orderIdx {
			if !r.selected[i] {
				continue
			}
			// A one-shot that others wait to complete is waited for completion, not running.
			cond := spec.ConditionStarted
			if s := r.svc[i]; s.Healthcheck != nil && !s.Healthcheck.Disable {
				cond = spec.ConditionHealthy
			}
			for _, w := range r.needWait[i] {
				if w.condition == spec.ConditionCompleted {
					cond = spec.ConditionCompleted
				}
			}
			w := need(i, cond)
			w.required, w.explicit = true, true
		}
	}
	for _, ws := range r.needWait {
		slices.SortFunc(ws, func(a, b waitNeed) int { return strings.Compare(a.condition, b.condition) })
		for i := range ws {
			slices.Sort(ws[i].dependents)
		}
	}
}

// imagePlan is how a service's image is made present, merged over the services sharing the
// reference (a service that can build it wins).
type imagePlan struct {
	action    EnsureImage // Reason "" means nothing to do unless forced
	always    bool        // ensure it whatever the containers need (build / pull always)
	mayChange bool        // the image ID may differ afterwards
}

// imageFor decides a service's image action; see imagePlan.
func (r *reconciler) imageFor(s *spec.Service, ref string) imagePlan {
	present := r.have.Images[ref] != ""
	policy, src := s.PullPolicy, "pull_policy "
	if r.opt.Pull != "" {
		policy, src = r.opt.Pull, "--pull "
	}
	a := EnsureImage{Service: s.Name, Ref: ref}
	if s.Build != nil && !r.opt.NoBuild {
		switch {
		case r.opt.Build:
			a.Build, a.Reason = true, "--build"
			return imagePlan{a, true, true}
		case policy == "build":
			a.Build, a.Reason = true, src+policy
			return imagePlan{a, true, true}
		case !present:
			a.Build, a.Reason = true, "missing"
			return imagePlan{action: a}
		}
	}
	if policy == "always" {
		a.Pull, a.Reason = true, src+policy
		return imagePlan{a, true, true}
	}
	if !present {
		a.Reason = "missing"
		if policy == "never" {
			a.Reason = "missing, " + src + "never"
		}
	}
	return imagePlan{action: a}
}

// planImages decides every selected service's image, per reference.
func (r *reconciler) planImages() {
	r.images = map[string]*imagePlan{}
	for _, i := range r.g.orderIdx {
		if !r.selected[i] {
			continue
		}
		s := r.svc[i]
		ref := s.ImageName(r.want.Name)
		p := r.imageFor(s, ref)
		old, ok := r.images[ref]
		switch {
		case !ok:
			r.images[ref] = &p
		case p.action.Build && !old.action.Build, p.action.Reason != "" && old.action.Reason == "":
			p.always, p.mayChange = p.always || old.always, p.mayChange || old.mayChange
			r.images[ref] = &p
		default:
			old.always, old.mayChange = old.always || p.always, old.mayChange || p.mayChange
		}
	}
}

// gates are the nodes a service's Create/Start must wait for: per dependency, its
// WaitContainer node for healthy/completed conditions, else its Start nodes (or its Create
// nodes when nothing starts).
func (r *reconciler) gates(i int) []int {
	var gates []int
	for k, e := range r.g.deps[i] {
		dst := r.st[r.g.depTo[i][k]]
		if dst == nil {
			continue
		}
		if e.Condition == spec.ConditionHealthy || e.Condition == spec.ConditionCompleted {
			if id := dst.waits[e.Condition]; id > 0 {
				gates = append(gates, id)
			}
			continue
		}
		if len(dst.starts) > 0 {
			gates = append(gates, dst.starts...)
		} else {
			gates = append(gates, dst.creates...)
		}
	}
	return gates
}

type candidate struct {
	c      Container
	reason string // why it must be recreated, "" if up to date
	// ifImageChanged: up to date, but recreated if a build or pull changes the image.
	ifImageChanged bool
}

// decision is what the planner decided for one service, before any node is added.
type decision struct {
	scale      int
	existing   int
	hash       string
	ref        string
	keep       []candidate // sorted by number
	drop       []Container // scale down
	maxNum     int         // highest existing number
	restartDep string      // a `restart: true` dependency that is replaced
	needImage  bool        // a container is created or recreated
}

// decide classifies service i's containers: kept (maybe recreated), dropped, or created.
// Services are decided in dependency order, so a dependency's replaced flag is known.
func (r *reconciler) decide(i int) (*decision, error) {
	s := r.svc[i]
	name := s.Name
	st := &svcState{waits: map[string]int{}}
	r.st[i] = st
	d := &decision{scale: s.Scale, ref: s.ImageName(r.want.Name)}
	if v, ok := r.opt.Scale[name]; ok {
		d.scale = v
	}
	if d.scale < 0 {
		return nil, &spec.Error{Path: "services." + name + ".scale", Msg: fmt.Sprintf("scale %d is negative", d.scale), Hint: "use 0 or more"}
	}
	if d.scale > 1 && s.ContainerName != "" {
		return nil, &spec.Error{
			Path: "services." + name + ".container_name",
			Msg:  fmt.Sprintf("container_name %q cannot be used with %d replicas: container names are unique", s.ContainerName, d.scale),
			Hint: "remove container_name, or use one replica",
		}
	}
	existing := r.byService[name]
	d.existing = len(existing)
	d.hash = r.hasher.hash(s)
	imageID := r.have.Images[d.ref]
	img := r.images[d.ref]

	// Dependencies that were replaced: a service sharing their namespaces or volumes must be
	// recreated; one with `restart: true` restarted.
	var nsDep string
	for k, e := range r.g.deps[i] {
		dst := r.st[r.g.depTo[i][k]]
		if dst == nil || !dst.replaced {
			continue
		}
		if e.Kind != EdgeDependsOn && e.Kind != EdgeLinks && nsDep == "" {
			nsDep = e.To + " recreated, via " + e.Kind
		}
		if e.Restart && d.restartDep == "" {
			d.restartDep = e.To
		}
	}

	forced := ""
	if !r.opt.NoRecreate {
		if r.targeted[i] && r.opt.ForceRecreate {
			forced = "--force-recreate"
		} else if !r.targeted[i] && r.opt.AlwaysRecreateDeps {
			forced = "--always-recreate-deps"
		}
	}
	var fields map[string]string // FieldHashes(*s), computed when first needed
	outdated := func(c Container) string {
		switch {
		case r.opt.NoRecreate:
			return ""
		case forced != "":
			return forced
		case c.ConfigHash != d.hash:
			if c.FieldHashes != nil && fields == nil {
				fields = FieldHashes(*s)
			}
			return configReason(c, fields)
		case imageID != "" && c.ImageID != "" && c.ImageID != imageID:
			return "image changed"
		case nsDep != "":
			return "dependency " + nsDep
		}
		return ""
	}

	cands := make([]candidate, len(existing))
	for k, c := range existing {
		cands[k] = candidate{c: c, reason: outdated(c)}
		d.maxNum = max(d.maxNum, c.Number)
	}
	// Keep up-to-date containers with the lowest numbers; scale down removes out-of-date
	// containers first, then the highest numbers.
	slices.SortStableFunc(cands, func(a, b candidate) int {
		if (a.reason == "") != (b.reason == "") {
			if a.reason == "" {
				return -1
			}
			return 1
		}
		return a.c.Number - b.c.Number
	})
	d.keep = cands[:min(d.scale, len(cands))]
	for _, c := range cands[len(d.keep):] {
		d.drop = append(d.drop, c.c)
	}
	slices.SortFunc(d.keep, func(a, b candidate) int { return a.c.Number - b.c.Number })
	sortContainers(d.drop)

	d.needImage = (img.always && d.scale > 0) || d.scale > len(d.keep)
	for k := range d.keep {
		c := &d.keep[k]
		if c.reason == "" && img.mayChange && !r.opt.NoRecreate {
			c.ifImageChanged = true
		}
		if c.reason != "" || c.ifImageChanged {
			d.needImage = true
		}
		if c.reason != "" {
			st.replaced = true
		}
	}
	if d.existing == 0 && d.scale > 0 {
		st.replaced = true
	}
	return d, nil
}

// emit adds service i's nodes: scale-down removals, recreates, (re)starts, creates, waits.
func (r *reconciler) emit(i int, d *decision) {
	s := r.svc[i]
	name := s.Name
	st := r.st[i]
	gates := r.gates(i)
	img := r.images[d.ref]

	infra := []int{r.imgNodes[d.ref]}
	for k := range s.Networks {
		infra = append(infra, r.netNodes[k])
	}
	for _, m := range s.Volumes {
		if m.Type == spec.MountVolume && m.Source != "" {
			infra = append(infra, r.volNodes[m.Source])
		}
	}
	createDeps := append(infra, gates...)

	if len(d.drop) > 0 {
		removeContainers(&r.b, d.drop, fmt.Sprintf("scale %d -> %d", d.existing, d.scale), false, nil)
	}
	for _, k := range d.keep {
		c := k.c
		switch {
		case k.reason != "" || k.ifImageChanged:
			a := RecreateContainer{ID: c.ID, Service: name, Number: c.Number, Name: ContainerName(r.want.Name, *s, c.Number), Hash: d.hash, Reason: k.reason}
			if k.ifImageChanged {
				a.OnlyIfImageChanged = true
				a.Reason = "image may change: " + img.action.Reason
			}
			id := r.b.add(a, createDeps...)
			st.creates = append(st.creates, id)
			if !r.opt.NoStart {
				st.starts = append(st.starts, r.b.add(StartContainer{Service: name, Number: c.Number, Name: a.Name, Reason: "recreated"}, append(gates, id)...))
			}
		case d.restartDep != "" && isRunning(c) && !r.opt.NoStart:
			reason := "dependency " + d.restartDep + " recreated, restart: true"
			stop := r.b.add(StopContainer{ID: c.ID, Service: name, Number: c.Number, Name: c.Name, Reason: reason}, gates...)
			st.starts = append(st.starts, r.b.add(StartContainer{Service: name, Number: c.Number, Name: c.Name, Reason: reason}, append(gates, stop)...))
		case !isRunning(c) && !r.opt.NoStart:
			st.starts = append(st.starts, r.b.add(StartContainer{Service: name, Number: c.Number, Name: c.Name, Reason: c.State}, gates...))
		}
	}
	if n := d.scale - len(d.keep); n > 0 {
		reason := "missing"
		if d.existing > 0 {
			reason = fmt.Sprintf("scale %d -> %d", d.existing, d.scale)
		}
		for k := 1; k <= n; k++ {
			num := d.maxNum + k
			cname := ContainerName(r.want.Name, *s, num)
			id := r.b.add(CreateContainer{Service: name, Number: num, Name: cname, Hash: d.hash, Reason: reason}, createDeps...)
			st.creates = append(st.creates, id)
			if !r.opt.NoStart {
				st.starts = append(st.starts, r.b.add(StartContainer{Service: name, Number: num, Name: cname, Reason: "created"}, append(gates, id)...))
			}
		}
	}

	if d.scale == 0 {
		return
	}
	for _, w := range r.needWait[i] {
		if len(st.starts) == 0 && len(st.creates) == 0 && satisfied(d.keep, w.condition) {
			continue
		}
		id := r.b.add(WaitContainer{
			Service: name, Condition: w.condition, Required: w.required, Reason: w.reason(),
		}, st.starts...)
		st.waits[w.condition] = id
		if w.explicit {
			r.explicitWaits[id] = true
		}
	}
}

// pruneWaits drops WaitContainer nodes that nothing depends on and that Options.Wait did not
// ask for: a dependency's wait matters only to dependents that are being created or started.
// The remaining nodes are renumbered, keeping their order.
func (r *reconciler) pruneWaits() {
	nodes := r.b.plan.Nodes
	used := make([]bool, len(nodes)+1)
	for _, n := range nodes {
		for _, d := range n.Deps {
			used[d] = true
		}
	}
	renumber := make([]int, len(nodes)+1)
	kept := nodes[:0]
	for _, n := range nodes {
		if _, ok := n.Action.(WaitContainer); ok && !used[n.ID] && !r.explicitWaits[n.ID] {
			continue
		}
		renumber[n.ID] = len(kept) + 1
		n.ID = len(kept) + 1
		for i, d := range n.Deps {
			n.Deps[i] = renumber[d] // a dropped node has no dependents, so d was kept
		}
		kept = append(kept, n)
	}
	r.b.plan.Nodes = kept
}

// satisfied reports whether untouched containers already meet cond, so no wait is needed.
func satisfied(keep []candidate, cond string) bool {
	if len(keep) == 0 {
		return false
	}
	for _, k := range keep {
		c := k.c
		switch cond {
		case spec.ConditionHealthy:
			if c.State != StateRunning || c.Health != "healthy" {
				return false
			}
		case spec.ConditionCompleted:
			if c.State != StateExited || c.ExitCode != 0 {
				return false
			}
		default:
			if c.State != StateRunning {
				return false
			}
		}
	}
	return true
}

func configReason(c Container, fields map[string]string) string {
	if c.FieldHashes == nil {
		return "config changed"
	}
	fs := changedFields(c.FieldHashes, fields)
	if len(fs) == 0 {
		return "config changed"
	}
	return "config changed: " + strings.Join(fs, ", ")
}
