package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newGenDocsCmd writes the command reference (Markdown, one page per command) that docs/cli/
// holds; a test regenerates it and fails when the checked-in copy has drifted.
func newGenDocsCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "__gendocs DIR",
		Short:  "Write the Markdown command reference into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeDocs(args[0])
		},
	}
}

// writeDocs renders the reference of a fresh command tree, so that flag defaults taken from
// the environment (BERTH_ROOT, ...) never leak into the docs.
func writeDocs(dir string) error {
	root := newRootCmd(&app{stdout: os.Stdout, stderr: os.Stderr})
	root.DisableAutoGenTag = true
	for _, name := range []string{"root", "run-root"} {
		if f := root.PersistentFlags().Lookup(name); f != nil {
			f.DefValue = map[string]string{"root": "/var/lib/berth", "run-root": "/run/berth"}[name]
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	old, err := filepath.Glob(filepath.Join(dir, "berth*.md"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	link := func(s string) string { return strings.TrimSuffix(s, ".md") + ".md" }
	return doc.GenMarkdownTreeCustom(root, dir, func(string) string { return "" }, link)
}
