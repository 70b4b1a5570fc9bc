package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDocsUpToDate fails when docs/cli no longer matches the command tree; run `make docs`.
func TestDocsUpToDate(t *testing.T) {
	got := t.TempDir()
	if err := writeDocs(got); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join("..", "..", "docs", "cli")
	gotFiles, _ := filepath.Glob(filepath.Join(got, "*.md"))
	wantFiles, _ := filepath.Glob(filepath.Join(want, "*.md"))
	if len(gotFiles) != len(wantFiles) {
		t.Fatalf("docs/cli has %d pages, the command tree has %d: run `make docs`", len(wantFiles), len(gotFiles))
	}
	for _, g := range gotFiles {
		name := filepath.Base(g)
		a, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(want, name))
		if err != nil {
			t.Errorf("docs/cli/%s is missing: run `make docs`", name)
			continue
		}
		if string(a) != string(b) {
			t.Errorf("docs/cli/%s is out of date: run `make docs`", name)
		}
	}
}
