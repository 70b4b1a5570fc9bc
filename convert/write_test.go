package convert

import (
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteDir(t *testing.T) {
	dir := t.TempDir()
	res, err := Convert(projectBasic(), nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Left from an earlier run: a berth file for an object that no longer exists, and
	// files that are not berth's.
	stale := "old-deployment.yaml"
	files := map[string]string{
		stale:                  "metadata:\n  labels:\n    app.kubernetes.io/managed-by: berth\n",
		"mine-deployment.yaml": "kind: Deployment\n",
		"README.md":            "hello\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := WriteDir(dir, res.Objects, FormatYAML); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{"README.md", "mine-deployment.yaml"}
	for _, o := range res.Objects {
		want = append(want, o.FileName(FormatYAML))
	}
	sort.Strings(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("directory (-want +got):\n%s", diff)
	}
	for _, o := range res.Objects {
		b, err := os.ReadFile(filepath.Join(dir, o.FileName(FormatYAML)))
		if err != nil {
			t.Fatal(err)
		}
		decodeStrict(t, b)
	}
}

func TestDNSLabel(t *testing.T) {
	for in, want := range map[string]string{
		"web":    "web",
		"my_app": "my-app",
		"API.v2": "api-v2",
		"1st":    "x-1st",
		"__":     "x",
		"a-very-long-name-that-goes-on-and-on-and-on-beyond-sixty-three-chars": "a-very-long-name-that-goes-on-and-on-and-on-beyond-sixty-three",
	} {
		if got := dnsLabel(in); got != want {
			t.Errorf("dnsLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":     "plain",
		"$HOME":     "$HOME",
		"$(HOME)":   "$$(HOME)",
		"a$$b $(c)": "a$$$$b $$(c)",
		"cost: $$5": "cost: $$$$5",
	} {
		if got := escape(in); got != want {
			t.Errorf("escape(%q) = %q, want %q", in, got, want)
		}
	}
}
