// Package archtest checks the import direction fixed in DESIGN.md: cmd wires everything;
// engine sees only planner and spec; planner sees only spec; the leaves (storage, runtime,
// netns) see no other berth package, except that storage/build may use storage.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/berth-dev/berth"

// allowed lists, for each area, the berth areas its packages may depend on (transitively).
var allowed = map[string][]string{
	"spec":          {},
	"planner":       {"spec"},
	"engine":        {"planner", "spec"},
	"convert":       {"spec"},
	"storage":       {},
	"storage/build": {"storage"},
	"runtime":       {},
	"netns":         {},
	"examples":      {},
	"internal":      {},
}

// area maps a berth import path to the area it belongs to ("" for the module root).
func area(pkg string) string {
	rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
	if strings.HasPrefix(rel, "storage/build") {
		return "storage/build"
	}
	first, _, _ := strings.Cut(rel, "/")
	return first
}

func TestImportDirection(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pkg, deps := fields[0], fields[1:]
		from := area(pkg)
		ok, ruled := allowed[from]
		if !ruled {
			continue // cmd and anything unlisted may import anything
		}
		checked++
		for _, d := range deps {
			if !strings.HasPrefix(d, module+"/") {
				continue
			}
			to := area(d)
			if to == from || (to == "internal" && from != "internal") {
				continue
			}
			if !contains(ok, to) {
				t.Errorf("%s imports %s: %s may depend only on %v (see DESIGN.md)", pkg, d, from, ok)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no berth packages were checked; is the module path right?")
	}
}

func TestArea(t *testing.T) {
	for pkg, want := range map[string]string{
		module + "/storage":         "storage",
		module + "/storage/build":   "storage/build",
		module + "/storage/build/x": "storage/build",
		module + "/runtime/monitor": "runtime",
		module + "/cmd/berth":       "cmd",
		module + "/planner":         "planner",
	} {
		if got := area(pkg); got != want {
			t.Errorf("area(%q) = %q, want %q", pkg, got, want)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
