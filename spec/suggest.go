package spec

import (
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/schema"
)

// validKeys returns the keys the Compose schema allows in the mapping at path (e.g.
// ["services", "web"]). It reads compose-go's schema; it runs on error paths only.
func validKeys(path []string) []string {
	var root map[string]any
	if err := json.Unmarshal([]byte(schema.Schema), &root); err != nil {
		return nil
	}
	nodes := expandSchema(root, []map[string]any{root})
	for _, seg := range path {
		var next []map[string]any
		for _, n := range nodes {
			if props, ok := n["properties"].(map[string]any); ok {
				if p, ok := props[seg].(map[string]any); ok {
					next = append(next, p)
					continue
				}
			}
			if pats, ok := n["patternProperties"].(map[string]any); ok {
				for pat, p := range pats {
					if re, err := regexp.Compile(pat); err == nil && re.MatchString(seg) {
						if pm, ok := p.(map[string]any); ok {
							next = append(next, pm)
						}
					}
				}
			}
			if _, err := strconv.Atoi(seg); err == nil {
				if items, ok := n["items"].(map[string]any); ok {
					next = append(next, items)
				}
			}
		}
		nodes = expandSchema(root, next)
	}
	set := map[string]bool{}
	for _, n := range nodes {
		if props, ok := n["properties"].(map[string]any); ok {
			for k := range props {
				set[k] = true
			}
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// expandSchema follows $ref, allOf, anyOf and oneOf so that every alternative is visible.
func expandSchema(root map[string]any, nodes []map[string]any) []map[string]any {
	var out []map[string]any
	var walk func(n map[string]any, depth int)
	walk = func(n map[string]any, depth int) {
		if n == nil || depth > 16 {
			return
		}
		out = append(out, n)
		if ref, ok := n["$ref"].(string); ok {
			walk(resolveRef(root, ref), depth+1)
		}
		for _, k := range []string{"allOf", "anyOf", "oneOf"} {
			if list, ok := n[k].([]any); ok {
				for _, e := range list {
					if m, ok := e.(map[string]any); ok {
						walk(m, depth+1)
					}
				}
			}
		}
	}
	for _, n := range nodes {
		walk(n, 0)
	}
	return out
}

func resolveRef(root map[string]any, ref string) map[string]any {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = root
	for _, seg := range strings.Split(p, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[seg]
	}
	m, _ := cur.(map[string]any)
	return m
}

// closest returns the candidate nearest to word, or "" when nothing is close enough to be a
// plausible typo.
func closest(word string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := editDistance(strings.ToLower(word), strings.ToLower(c))
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(word) > 8 {
		limit = 3
	}
	if bestD < 0 || bestD > limit || bestD >= len(word) {
		return ""
	}
	return best
}

// editDistance is the Damerau-Levenshtein (optimal string alignment) distance.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}
