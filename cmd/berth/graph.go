package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

// addGraphCommand registers `berth graph`.
func addGraphCommand(root *cobra.Command, a *app) {
	var format string
	cmd := &cobra.Command{
		Use:   "graph",
		Short: "Print the project's dependency graph (Mermaid or Graphviz DOT)",
		Long: `Print the project's service dependency graph: depends_on and the dependencies Compose
adds (links, volumes_from, network_mode/ipc/pid: service:x). Arrows point from a service to
what it needs and are labelled with the condition; dashed arrows are optional (required: false).
Each service shows its replica count.

  berth graph | mermaid-cli ...         Mermaid flowchart (default)
  berth graph --format dot | dot -Tsvg  Graphviz`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			render, ok := graphRenderers[format]
			if !ok {
				return &exitError{code: 1, err: fmt.Errorf("--format %q: use mermaid or dot", format)}
			}
			p, err := a.loadProject(cmd.Context())
			if err != nil {
				return err
			}
			g, err := planner.NewGraph(p)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(a.stdout, render(p, g))
			return err
		},
	}
	cmd.Flags().StringVar(&format, "format", "mermaid", "Output format: mermaid or dot")
	root.AddCommand(cmd)
}

var graphRenderers = map[string]func(*spec.Project, *planner.Graph) string{
	"mermaid": graphMermaid,
	"dot":     graphDOT,
}

// graphArrow is every edge from one service to another, merged into one arrow.
type graphArrow struct {
	from, to string
	label    string // per edge: the condition for depends_on, the kind for implicit edges
	optional bool   // every edge is required: false
}

// graphArrows lists the arrows of service name, in the order of its dependencies.
func graphArrows(g *planner.Graph, name string) []graphArrow {
	var out []graphArrow
	for _, e := range g.Dependencies(name) {
		label := e.Condition
		if e.Kind != planner.EdgeDependsOn {
			label = e.Kind
		}
		if e.Restart {
			label += ", restart"
		}
		if !e.Required {
			label += ", optional"
		}
		if n := len(out); n > 0 && out[n-1].to == e.To {
			out[n-1].label += "; " + label
			out[n-1].optional = out[n-1].optional && !e.Required
			continue
		}
		out = append(out, graphArrow{from: e.From, to: e.To, label: label, optional: !e.Required})
	}
	return out
}

func graphReplicas(p *spec.Project, name string) string {
	s, _ := p.Service(name)
	if s.Scale == 1 {
		return "1 replica"
	}
	return fmt.Sprintf("%d replicas", s.Scale)
}

// graphMermaid renders a Mermaid flowchart; node IDs are positions in the dependency order,
// since service names may hold characters Mermaid reads as syntax.
func graphMermaid(p *spec.Project, g *planner.Graph) string {
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	order := g.Order()
	id := make(map[string]string, len(order))
	for i, name := range order {
		id[name] = fmt.Sprintf("s%d", i)
		fmt.Fprintf(&b, "    %s[\"%s<br/>%s\"]\n", id[name], graphMermaidEscape(name), graphReplicas(p, name))
	}
	for _, name := range order {
		for _, a := range graphArrows(g, name) {
			arrow := "-->"
			if a.optional {
				arrow = "-.->"
			}
			fmt.Fprintf(&b, "    %s %s|%s| %s\n", id[a.from], arrow, graphMermaidEscape(a.label), id[a.to])
		}
	}
	return b.String()
}

func graphMermaidEscape(s string) string {
	r := strings.NewReplacer(`"`, "#quot;", "|", "#124;", "<", "#lt;", ">", "#gt;")
	return r.Replace(s)
}

// graphDOT renders a Graphviz digraph.
func graphDOT(p *spec.Project, g *planner.Graph) string {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", graphDOTQuote(p.Name))
	b.WriteString("    node [shape=box];\n")
	order := g.Order()
	for _, name := range order {
		fmt.Fprintf(&b, "    %s [label=%s];\n", graphDOTQuote(name), graphDOTQuote(name+"\n"+graphReplicas(p, name)))
	}
	for _, name := range order {
		for _, a := range graphArrows(g, name) {
			attrs := "label=" + graphDOTQuote(a.label)
			if a.optional {
				attrs += ", style=dashed"
			}
			fmt.Fprintf(&b, "    %s -> %s [%s];\n", graphDOTQuote(a.from), graphDOTQuote(a.to), attrs)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func graphDOTQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
