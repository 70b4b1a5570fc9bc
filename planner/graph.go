package planner

import (
	"fmt"
	"slices"
	"strings"

	"github.com/berth-dev/berth/spec"
)

// Edge kinds: depends_on and the implicit dependencies Compose adds.
const (
	EdgeDependsOn   = "depends_on"
	EdgeLinks       = "links"
	EdgeVolumesFrom = "volumes_from"
	EdgeNetworkMode = "network_mode"
	EdgeIPC         = "ipc"
	EdgePID         = "pid"
)

// Edge is one dependency: service From needs service To. Implicit edges (every kind but
// depends_on) have Condition spec.ConditionStarted and Required set.
type Edge struct {
	From      string
	To        string
	Kind      string // Edge* constant
	Condition string // spec.Condition*
	Required  bool
	Restart   bool
}

// Graph is the dependency graph of a project's services. It is immutable once built.
type Graph struct {
	names []string       // sorted
	index map[string]int // name -> position in names
	deps  [][]Edge       // by index: edges whose From is the service, sorted by (To, Kind)
	rdeps [][]Edge       // by index: edges whose To is the service, sorted by (From, Kind)
	// depTo[i][k] is the index of deps[i][k].To; rdepFrom[i][k] of rdeps[i][k].From.
	depTo    [][]int32
	rdepFrom [][]int32
	order    []string // topological, dependencies first
	orderIdx []int32  // the same as indexes
}

// NewGraph builds the dependency graph of p's enabled services. A dependency on an undefined
// service, on a service disabled by profiles (unless `required: false`), or a cycle is a
// *spec.Error that names the key to fix.
func NewGraph(p *spec.Project) (*Graph, error) {
	disabled := make(map[string]bool, len(p.DisabledServices))
	for _, s := range p.DisabledServices {
		disabled[s.Name] = true
	}
	return newGraph(p.Services, disabled)
}

// newGraph builds the graph over services; disabled names services that exist but are not
// part of the graph.
func newGraph(services []spec.Service, disabled map[string]bool) (*Graph, error) {
	g := &Graph{
		names: make([]string, len(services)),
		index: make(map[string]int, len(services)),
	}
	for i, s := range services {
		g.names[i] = s.Name
	}
	if !slices.IsSorted(g.names) {
		slices.Sort(g.names)
	}
	for i, n := range g.names {
		g.index[n] = i
	}
	g.deps = make([][]Edge, len(g.names))
	g.rdeps = make([][]Edge, len(g.names))
	g.depTo = make([][]int32, len(g.names))
	g.rdepFrom = make([][]int32, len(g.names))
	indeg := make([]int, len(g.names))
	total := 0
	for i := range services {
		s := &services[i]
		from := g.index[s.Name]
		edges, err := g.serviceEdges(s, disabled)
		if err != nil {
			return nil, err
		}
		g.deps[from] = edges
		to := make([]int32, len(edges))
		for k, e := range edges {
			to[k] = int32(g.index[e.To])
			indeg[to[k]]++
		}
		g.depTo[from] = to
		total += len(edges)
	}
	// One backing array for all reverse edges, cut to size per service.
	all := make([]Edge, 0, total)
	for i, n := range indeg {
		g.rdeps[i] = all[len(all) : len(all) : len(all)+n]
		all = all[:len(all)+n]
	}
	for i := range g.deps {
		for k, e := range g.deps[i] {
			to := g.depTo[i][k]
			g.rdeps[to] = append(g.rdeps[to], e)
		}
	}
	for i := range g.rdeps {
		slices.SortFunc(g.rdeps[i], func(a, b Edge) int {
			if c := strings.Compare(a.From, b.From); c != 0 {
				return c
			}
			return strings.Compare(a.Kind, b.Kind)
		})
		g.rdepFrom[i] = make([]int32, len(g.rdeps[i]))
		for k, e := range g.rdeps[i] {
			g.rdepFrom[i][k] = int32(g.index[e.From])
		}
	}
	if err := g.sort(); err != nil {
		return nil, err
	}
	return g, nil
}

func (g *Graph) serviceEdges(s *spec.Service, disabled map[string]bool) ([]Edge, error) {
	edges := make([]Edge, 0, len(s.DependsOn)+len(s.Links)+len(s.VolumesFrom))
	add := func(kind, to, cond string, required, restart bool) error {
		if _, ok := g.index[to]; !ok {
			if disabled[to] {
				if !required {
					return nil
				}
				return &spec.Error{
					Path: "services." + s.Name + "." + kind,
					Msg:  fmt.Sprintf("service %q needs service %q, which is disabled by its profiles", s.Name, to),
					Hint: fmt.Sprintf("enable a profile of %q with --profile, or mark the dependency `required: false`", to),
				}
			}
			return &spec.Error{
				Path: "services." + s.Name + "." + kind,
				Msg:  fmt.Sprintf("service %q depends on undefined service %q", s.Name, to),
				Hint: "define the service, or fix the name",
			}
		}
		edges = append(edges, Edge{From: s.Name, To: to, Kind: kind, Condition: cond, Required: required, Restart: restart})
		return nil
	}
	for _, to := range sortedKeys(s.DependsOn) {
		d := s.DependsOn[to]
		cond := d.Condition
		if cond == "" {
			cond = spec.ConditionStarted
		}
		if err := add(EdgeDependsOn, to, cond, d.Required, d.Restart); err != nil {
			return nil, err
		}
	}
	for _, l := range s.Links {
		to, _, _ := strings.Cut(l, ":")
		if err := add(EdgeLinks, to, spec.ConditionStarted, true, false); err != nil {
			return nil, err
		}
	}
	for _, v := range s.VolumesFrom {
		if strings.HasPrefix(v, "container:") {
			continue
		}
		to, _, _ := strings.Cut(v, ":")
		if err := add(EdgeVolumesFrom, to, spec.ConditionStarted, true, false); err != nil {
			return nil, err
		}
	}
	for _, m := range [...]struct{ kind, val string }{
		{EdgeNetworkMode, s.NetworkMode}, {EdgeIPC, s.IPC}, {EdgePID, s.PID},
	} {
		if to, ok := strings.CutPrefix(m.val, "service:"); ok {
			if err := add(m.kind, to, spec.ConditionStarted, true, false); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(edges, func(a, b Edge) int {
		if c := strings.Compare(a.To, b.To); c != 0 {
			return c
		}
		return strings.Compare(a.Kind, b.Kind)
	})
	// The same (To, Kind) twice (e.g. two links to one service) is one edge.
	edges = slices.CompactFunc(edges, func(a, b Edge) bool { return a.To == b.To && a.Kind == b.Kind })
	return edges, nil
}

// minHeap is a min-heap of service indexes; indexes follow name order, so the smallest
// name that is ready comes out first.
type minHeap []int32

func (h *minHeap) push(x int32) {
	*h = append(*h, x)
	a := *h
	for i := len(a) - 1; i > 0; {
		p := (i - 1) / 2
		if a[p] <= a[i] {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

func (h *minHeap) pop() int32 {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		l, m := 2*i+1, i
		if l < len(a) && a[l] < a[m] {
			m = l
		}
		if r := l + 1; r < len(a) && a[r] < a[m] {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}

// sort computes the topological order (Kahn's algorithm, smallest name first among the
// ready ones) or reports a cycle.
func (g *Graph) sort() error {
	n := len(g.names)
	pending := make([]int, n) // unmet dependency edges
	h := make(minHeap, 0, n)
	for i := range n {
		pending[i] = len(g.deps[i])
		if pending[i] == 0 {
			h = append(h, int32(i)) // ascending: already a heap
		}
	}
	g.order = make([]string, 0, n)
	g.orderIdx = make([]int32, 0, n)
	for len(h) > 0 {
		i := h.pop()
		g.order = append(g.order, g.names[i])
		g.orderIdx = append(g.orderIdx, i)
		for _, j := range g.rdepFrom[i] {
			pending[j]--
			if pending[j] == 0 {
				h.push(j)
			}
		}
	}
	if len(g.order) == n {
		return nil
	}
	return g.cycleError(pending)
}

// cycleError finds a cycle among the services left with unmet dependencies: each of them has
// a dependency that is also left, so following the smallest such one must loop.
func (g *Graph) cycleError(pending []int) error {
	start := -1
	for i := range g.names {
		if pending[i] > 0 {
			start = i
			break
		}
	}
	seen := map[int]int{} // index -> position in path
	var path []int
	var kinds []string // kinds[k] is the kind of edge path[k] -> path[k+1]
	cur := start
	for {
		if pos, ok := seen[cur]; ok {
			path = path[pos:]
			kinds = kinds[pos:]
			break
		}
		seen[cur] = len(path)
		path = append(path, cur)
		for _, e := range g.deps[cur] {
			j := g.index[e.To]
			if pending[j] > 0 {
				kinds = append(kinds, e.Kind)
				cur = j
				break
			}
		}
	}
	// Rotate so the cycle starts at its smallest name: the same cycle always reads the same.
	m := 0
	for k := range path {
		if path[k] < path[m] {
			m = k
		}
	}
	path = append(path[m:], path[:m]...)
	kinds = append(kinds[m:], kinds[:m]...)
	names := make([]string, 0, len(path)+1)
	for _, i := range path {
		names = append(names, g.names[i])
	}
	names = append(names, names[0])
	return &spec.Error{
		Path: "services." + names[0] + "." + kinds[0],
		Msg:  "dependency cycle: " + strings.Join(names, " -> "),
		Hint: "services cannot depend on each other in a circle; remove one of these dependencies",
	}
}

// Order returns the services in a deterministic topological order: every service comes after
// all of its dependencies; among services that are ready at the same time, by name.
func (g *Graph) Order() []string { return slices.Clone(g.order) }

// Services returns the graph's services sorted by name.
func (g *Graph) Services() []string { return slices.Clone(g.names) }

// Dependencies returns the edges from service to the services it needs, sorted by (To, Kind).
func (g *Graph) Dependencies(service string) []Edge {
	i, ok := g.index[service]
	if !ok || len(g.deps[i]) == 0 {
		return nil
	}
	return slices.Clone(g.deps[i])
}

// Dependents returns the edges of the services that need service, sorted by (From, Kind).
func (g *Graph) Dependents(service string) []Edge {
	i, ok := g.index[service]
	if !ok || len(g.rdeps[i]) == 0 {
		return nil
	}
	return slices.Clone(g.rdeps[i])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
