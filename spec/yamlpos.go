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

// splitPath turns "services.web.ports[0]" or "services.web.ports.0" into its segments.
func splitPath(p string) []string {
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
	val = n
	for _, seg := range path {
		if val == nil {
			return nil, nil
		}
		if val.Kind == yaml.AliasNode {
			val = val.Alias
		}
		switch val.Kind {
		case yaml.MappingNode:
			var found bool
			for i := 0; i+1 < len(val.Content); i += 2 {
				if val.Content[i].Value == seg {
					key, val = val.Content[i], val.Content[i+1]
					found = true
					break
				}
			}
			if !found {
				return nil, nil
			}
		case yaml.SequenceNode:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(val.Content) {
				return nil, nil
			}
			key, val = val.Content[i], val.Content[i]
		default:
			return nil, nil
		}
	}
	return key, val
}

// locate fills e.File/Line/Column with the first file holding path (or the given file when set).
func locate(e *Error, docs []yamlDoc, path string) *Error {
	segs := splitPath(path)
	for _, d := range docs {
		if d.root == nil || (e.File != "" && e.File != d.file) {
			continue
		}
		k, _ := lookup(d.root, segs)
		if k == nil {
			continue
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
