package build

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// instruction is one parsed Dockerfile instruction.
type instruction struct {
	cmd   string   // lower case: "copy", "run", ...
	line  int      // first line
	orig  string   // as written (continuations joined)
	flags []string // "--from=x", ...
	args  []string // the parser's argument nodes
	json  bool     // exec (JSON) form
	node  *parser.Node
	docs  []parser.Heredoc
}

// stage is one FROM and the instructions after it.
type stage struct {
	index  int
	name   string // lower-cased AS name, "" if none
	from   instruction
	base   string // FROM's image argument, unexpanded
	instrs []instruction
}

type dockerfile struct {
	name     string
	escape   rune
	metaArgs []instruction // ARGs before the first FROM
	stages   []*stage
	warnings []string
}

var knownInstructions = map[string]bool{
	"from": true, "arg": true, "env": true, "label": true, "workdir": true, "copy": true,
	"add": true, "run": true, "expose": true, "volume": true, "user": true, "cmd": true,
	"entrypoint": true, "healthcheck": true, "stopsignal": true, "onbuild": true,
	"shell": true, "maintainer": true,
}

func parseDockerfile(name string, content []byte) (*dockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(content))
	if err != nil {
		line := 0
		var le *parser.LocationError
		if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
			line = le.Locations[0][0].Start.Line
		}
		return nil, &Error{File: name, Line: line, Err: fmt.Errorf("%v: %w", err, ErrSyntax)}
	}
	df := &dockerfile{name: name, escape: res.EscapeToken}
	for _, w := range res.Warnings {
		df.warnings = append(df.warnings, w.Short)
	}
	var cur *stage
	for _, n := range res.AST.Children {
		ins := toInstruction(n)
		bad := func(format string, args ...any) error {
			return &Error{File: name, Line: ins.line, Instruction: ins.orig, Err: fmt.Errorf(format+": %w", append(args, ErrSyntax)...)}
		}
		if !knownInstructions[ins.cmd] {
			return nil, bad("unknown instruction %s", strings.ToUpper(n.Value))
		}
		if len(n.Heredocs) > 0 && ins.cmd != "run" && ins.cmd != "copy" && ins.cmd != "add" {
			return nil, bad("heredocs (<<EOF) work only with RUN, COPY and ADD")
		}
		switch ins.cmd {
		case "from":
			args := ins.args
			if len(args) != 1 && !(len(args) == 3 && strings.EqualFold(args[1], "as")) {
				return nil, bad("FROM takes an image and optionally AS name, e.g. FROM golang:1.22 AS build")
			}
			cur = &stage{index: len(df.stages), from: ins, base: args[0]}
			if len(args) == 3 {
				cur.name = strings.ToLower(args[2])
				for _, s := range df.stages {
					if s.name == cur.name {
						return nil, bad("duplicate stage name %q", args[2])
					}
				}
			}
			for _, f := range ins.flags {
				if !strings.HasPrefix(f, "--platform=") {
					return nil, bad("unknown flag %s (FROM takes --platform)", f)
				}
			}
			df.stages = append(df.stages, cur)
		case "arg":
			if cur == nil {
				df.metaArgs = append(df.metaArgs, ins)
			} else {
				cur.instrs = append(cur.instrs, ins)
			}
		default:
			if cur == nil {
				return nil, bad("%s before the first FROM (only ARG may come before FROM)", strings.ToUpper(ins.cmd))
			}
			cur.instrs = append(cur.instrs, ins)
		}
	}
	if len(df.stages) == 0 {
		return nil, &Error{File: name, Err: fmt.Errorf("no FROM instruction: %w", ErrSyntax)}
	}
	return df, nil
}

func toInstruction(n *parser.Node) instruction {
	ins := instruction{cmd: strings.ToLower(n.Value), line: n.StartLine, orig: n.Original, flags: n.Flags, node: n, json: n.Attributes["json"], docs: n.Heredocs}
	for x := n.Next; x != nil; x = x.Next {
		ins.args = append(ins.args, x.Value)
	}
	return ins
}

// flagSet splits an instruction's flags into name -> value, refusing names not in allowed.
// A flag given without a value maps to "true".
func (ins instruction) flagSet(allowed ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range ins.flags {
		k, v, ok := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if !ok {
			v = "true"
		}
		found := false
		for _, a := range allowed {
			found = found || a == k
		}
		if !found {
			return nil, fmt.Errorf("unknown flag --%s for %s: %w", k, strings.ToUpper(ins.cmd), ErrSyntax)
		}
		out[k] = v
	}
	return out, nil
}

// heredocName returns the name a "<<NAME" word refers to ("<<-NAME", quotes allowed).
func heredocName(word string) (string, bool) {
	w, ok := strings.CutPrefix(strings.TrimSpace(word), "<<")
	if !ok {
		return "", false
	}
	w = strings.TrimPrefix(w, "-")
	w = strings.Trim(w, `"'`)
	if w == "" || strings.ContainsAny(w, " \t") {
		return "", false
	}
	return w, true
}

// heredoc returns the content of the instruction's heredoc called name (chomped for <<-).
func (ins instruction) heredoc(name string) (parser.Heredoc, bool) {
	for _, h := range ins.docs {
		if h.Name == name {
			if h.Chomp {
				h.Content = parser.ChompHeredocContent(h.Content)
			}
			return h, true
		}
	}
	return parser.Heredoc{}, false
}
