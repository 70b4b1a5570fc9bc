package planner

import (
	"encoding/json"
	"slices"
	"strings"
)

// Detail is the text in parentheses after an action in Plan.String(): its reason, plus what
// kind of work it is where the kind alone does not say (build or pull, external, optional).
func Detail(a Action) string {
	var parts []string
	add := func(s string) {
		if s != "" {
			parts = append(parts, s)
		}
	}
	switch a := a.(type) {
	case EnsureNetwork:
		if a.External {
			add("external")
		}
		add(a.Reason)
	case EnsureVolume:
		if a.External {
			add("external")
		}
		add(a.Reason)
	case EnsureImage:
		switch {
		case a.Build:
			add("build")
		case a.Pull:
			add("pull")
		}
		add(a.Reason)
	case CreateContainer:
		add(a.Reason)
	case StartContainer:
		add(a.Reason)
	case WaitContainer:
		add(a.Condition)
		if !a.Required {
			add("optional")
		}
		add(a.Reason)
	case StopContainer:
		add(a.Reason)
	case RemoveContainer:
		add(a.Reason)
		if a.Volumes {
			add("with anonymous volumes")
		}
	case RecreateContainer:
		add(a.Reason)
	case RemoveNetwork:
		add(a.Reason)
	case RemoveVolume:
		add(a.Reason)
	case RemoveImage:
		add(a.Reason)
	}
	return strings.Join(parts, ", ")
}

// String renders the plan one action per line, as `berth up --dry-run` prints it:
//
//	#3 CreateContainer service:web:1 (missing) <- #1 #2
//
// followed by the notes, each on a line starting with "note: ". An empty plan reads
// "nothing to do". The text depends only on the plan.
func (p *Plan) String() string {
	var b strings.Builder
	if len(p.Nodes) == 0 {
		b.WriteString("nothing to do\n")
	}
	for _, n := range p.Nodes {
		b.WriteByte('#')
		b.WriteString(itoa(n.ID))
		b.WriteByte(' ')
		b.WriteString(n.Action.Kind())
		b.WriteByte(' ')
		b.WriteString(n.Action.Resource())
		if d := Detail(n.Action); d != "" {
			b.WriteString(" (")
			b.WriteString(d)
			b.WriteByte(')')
		}
		if len(n.Deps) > 0 {
			b.WriteString(" <-")
			for _, d := range n.Deps {
				b.WriteString(" #")
				b.WriteString(itoa(d))
			}
		}
		b.WriteByte('\n')
	}
	for _, note := range p.Notes {
		b.WriteString("note: ")
		b.WriteString(note)
		b.WriteByte('\n')
	}
	return b.String()
}

type jsonNode struct {
	ID       int    `json:"id"`
	Kind     string `json:"kind"`
	Resource string `json:"resource"`
	Detail   string `json:"detail,omitempty"`
	Deps     []int  `json:"deps"`
	Action   Action `json:"action"`
}

type jsonPlan struct {
	Project string     `json:"project"`
	Actions []jsonNode `json:"actions"`
	Notes   []string   `json:"notes"`
}

// MarshalJSON encodes the plan for `--dry-run --format json`:
//
//	{"project":"p","actions":[{"id":1,"kind":"EnsureNetwork","resource":"network:p_default",
//	  "detail":"missing","deps":[],"action":{"Key":"default","Name":"p_default",...}}],"notes":[]}
func (p Plan) MarshalJSON() ([]byte, error) {
	out := jsonPlan{Project: p.Project, Actions: make([]jsonNode, len(p.Nodes)), Notes: p.Notes}
	if out.Notes == nil {
		out.Notes = []string{}
	}
	for i, n := range p.Nodes {
		deps := n.Deps
		if deps == nil {
			deps = []int{}
		}
		out.Actions[i] = jsonNode{
			ID: n.ID, Kind: n.Action.Kind(), Resource: n.Action.Resource(),
			Detail: Detail(n.Action), Deps: deps, Action: n.Action,
		}
	}
	return json.Marshal(out)
}

// builder appends nodes with increasing IDs, starting at 1.
type builder struct {
	plan *Plan
}

// add appends a and returns its ID. deps may hold zeros (meaning "none") and duplicates.
func (b *builder) add(a Action, deps ...int) int {
	var ds []int
	for _, d := range deps {
		if d > 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) > 1 {
		slices.Sort(ds)
		ds = slices.Compact(ds)
	}
	id := len(b.plan.Nodes) + 1
	b.plan.Nodes = append(b.plan.Nodes, Node{ID: id, Action: a, Deps: ds})
	return id
}
