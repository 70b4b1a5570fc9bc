package convert

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// Output formats.
const (
	FormatYAML = "yaml"
	FormatJSON = "json"
)

// FileName is the stable file name of o in an output directory: "<name>-<kind>.<format>".
func (o Object) FileName(format string) string {
	return o.Name + "-" + strings.ToLower(o.Kind) + "." + format
}

// plain returns o as generic JSON values without the empty status and null timestamps
// that the typed structs always carry.
func (o Object) plain() (map[string]any, error) {
	b, err := json.Marshal(o.Value)
	if err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", o.Kind, o.Name, err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("encode %s %s: %w", o.Kind, o.Name, err)
	}
	delete(m, "status") // berth never sets one; some types write zero counters
	prune(m)
	return m, nil
}

// prunable are the keys whose empty values the typed structs always write and that mean
// nothing when empty. (An empty emptyDir does mean something, so this is not every key.)
var prunable = map[string]bool{"status": true, "resources": true, "strategy": true, "updateStrategy": true}

// prune drops "creationTimestamp: null" and the empty prunable keys at any depth.
func prune(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			if k == "creationTimestamp" && x == nil {
				delete(t, k)
				continue
			}
			if prunable[k] && hollow(x) {
				delete(t, k)
				continue
			}
			prune(x)
		}
	case []any:
		for _, x := range t {
			prune(x)
		}
	}
}

// hollow reports whether v is a map holding nothing but (maps of) empty maps.
func hollow(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, x := range m {
		if !hollow(x) {
			return false
		}
	}
	return true
}

// Marshal encodes o as one YAML or JSON document.
func (o Object) Marshal(format string) ([]byte, error) {
	m, err := o.plain()
	if err != nil {
		return nil, err
	}
	switch format {
	case FormatYAML, "":
		return yaml.Marshal(m)
	case FormatJSON:
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return nil, err
		}
		return append(b, '\n'), nil
	default:
		return nil, fmt.Errorf("format %q: want yaml or json: %w", format, ErrInvalid)
	}
}

// Marshal encodes all objects as one stream: YAML documents separated by "---", or for JSON
// a v1 List, both of which kubectl apply -f accepts.
func Marshal(objs []Object, format string) ([]byte, error) {
	var buf bytes.Buffer
	switch format {
	case FormatYAML, "":
		for i, o := range objs {
			b, err := o.Marshal(FormatYAML)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				buf.WriteString("---\n")
			}
			buf.Write(b)
		}
	case FormatJSON:
		items := make([]any, 0, len(objs))
		for _, o := range objs {
			m, err := o.plain()
			if err != nil {
				return nil, err
			}
			items = append(items, m)
		}
		list := map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
		b, err := json.MarshalIndent(list, "", "  ")
		if err != nil {
			return nil, err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	default:
		return nil, fmt.Errorf("format %q: want yaml or json: %w", format, ErrInvalid)
	}
	return buf.Bytes(), nil
}
