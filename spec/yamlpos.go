package spec

import (
	"os"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// yamlNode is a YAML node with its position.
type yamlNode = yaml.Node

// yamlDoc is a parsed compose file kept for locating keys in error messages.
type yamlDoc struct {
	file string
	root *yaml.Node // the top-level mapping, nil when the file does not parse
	err  error      // parse error, if any
}

// parseDocs parses the given files; it is used only on error paths.
func parseDocs(files []string) []yamlDoc {
	docs := make([]yamlDoc, 0, len(files))
	for _, f := range files {
		if f == "-" {
			continue
		}
		d := yamlDoc{file: f}
		b, err := os.ReadFile(f)
		if err != nil {
			d.err = err
			docs = append(docs, d)
			continue
		}
		var n yaml.Node
		if err := yaml.Unmarshal(b, &n); err != nil {
			d.err = err
		} else if len(n.Content) > 0 {
			d.root = n.Content[0]
		}
		docs = append(docs, d)
	}
	return docs
}

// splitPath turns "services.web.ports[0]" or "services.web.ports.0" into its segments. "[]"
// or "*" stand for any element (compose-go reports some paths that way).
func splitPath(p string) []string {
	p = strings.ReplaceAll(p, "[]", ".*")
	p = strings.ReplaceAll(p, "[", ".")
	p = strings.ReplaceAll(p, "]", "")
	var out []string
	for _, s := range strings.Split(p, ".") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// lookup finds the node at path in n. For a mapping entry it returns the key node (where the
// user wrote the key) and the value node.
func lookup(n *yaml.Node, path []string) (key, val *yaml.Node) {
	key, val, _ = lookupConcrete(n, path)
	return key, val
}

// lookupConcrete is lookup that also returns the concrete path, with "*" segments replaced by
// the index or key that matched.
func lookupConcrete(n *yaml.Node, path []string) (key, val *yaml.Node, concrete []string) {
	if len(path) == 0 {
		return nil, n, nil
	}
	if n == nil {
		return nil, nil, nil
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	seg, rest := path[0], path[1:]
	try := func(k, v *yaml.Node, name string) (*yaml.Node, *yaml.Node, []string, bool) {
		if len(rest) == 0 {
			return k, v, []string{name}, true
		}
		rk, rv, rc := lookupConcrete(v, rest)
		if rv == nil {
			return nil, nil, nil, false
		}
		return rk, rv, append([]string{name}, rc...), true
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if seg == "*" || n.Content[i].Value == seg {
				if k, v, c, ok := try(n.Content[i], n.Content[i+1], n.Content[i].Value); ok {
					return k, v, c
				}
			}
		}
	case yaml.SequenceNode:
		if seg == "*" {
			for i, it := range n.Content {
				if k, v, c, ok := try(it, it, strconv.Itoa(i)); ok {
					return k, v, c
				}
			}
			return nil, nil, nil
		}
		i, err := strconv.Atoi(seg)
		if err != nil || i < 0 || i >= len(n.Content) {
			return nil, nil, nil
		}
		if k, v, c, ok := try(n.Content[i], n.Content[i], seg); ok {
			return k, v, c
		}
	}
	return nil, nil, nil
}

// joinPath renders segments as "services.web.ports[0].target".
func joinPath(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if _, err := strconv.Atoi(s); err == nil && i > 0 {
			b.WriteString("[" + s + "]")
			continue
		}
		if i > 0 {
			b.WriteString(".")
		}
		b.WriteString(s)
	}
	return b.String()
}

// findScalar returns the first scalar (in file order) for which match is true, with its path.
func findScalar(docs []yamlDoc, match func(file, value string) bool) (file, path string, node *yaml.Node) {
	for _, d := range docs {
		if d.root == nil {
			continue
		}
		var walk func(n *yaml.Node, segs []string) ([]string, *yaml.Node)
		walk = func(n *yaml.Node, segs []string) ([]string, *yaml.Node) {
			switch n.Kind {
			case yaml.ScalarNode:
				if match(d.file, n.Value) {
					return segs, n
				}
			case yaml.MappingNode:
				for i := 0; i+1 < len(n.Content); i += 2 {
					if p, f := walk(n.Content[i+1], append(segs[:len(segs):len(segs)], n.Content[i].Value)); f != nil {
						return p, f
					}
				}
			case yaml.SequenceNode:
				for i, it := range n.Content {
					if p, f := walk(it, append(segs[:len(segs):len(segs)], strconv.Itoa(i))); f != nil {
						return p, f
					}
				}
			}
			return nil, nil
		}
		if p, n := walk(d.root, nil); n != nil {
			return d.file, joinPath(p), n
		}
	}
	return "", "", nil
}

// locate fills e.File/Line/Column with the first file holding path (or the given file when set).
func locate(e *Error, docs []yamlDoc, path string) *Error {
	segs := splitPath(path)
	for _, d := range docs {
		if d.root == nil || (e.File != "" && e.File != d.file) {
			continue
		}
		k, _, concrete := lookupConcrete(d.root, segs)
		if k == nil {
			continue
		}
		if strings.Contains(e.Path, "[]") || strings.Contains(e.Path, "*") {
			e.Path = joinPath(concrete)
		}
		e.File = d.file
		e.Line, e.Column = k.Line, k.Column
		return e
	}
	if e.File == "" && len(docs) == 1 {
		e.File = docs[0].file
	}
	return e
}

// YAML node kinds, re-exported for the files that do not import yaml.
const (
	seqNode    = yaml.SequenceNode
	mapNode    = yaml.MappingNode
	scalarNode = yaml.ScalarNode
)
