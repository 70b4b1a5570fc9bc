package convert

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/spec"
)

// TestGoldenFromCompose loads testdata/convert/<name>/compose.yaml through spec.Load (the
// loading `up` does) and expects the same objects and warnings as the project built in Go.
func TestGoldenFromCompose(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := filepath.Abs(filepath.Join(goldenDir, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			p, err := spec.Load(context.Background(), spec.Options{
				Files:      []string{filepath.Join(dir, "compose.yaml")},
				WorkingDir: dir,
				Environ:    []string{},
			})
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			res, err := Convert(p, tc.files, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Marshal(res.Objects, FormatYAML)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(dir, "golden.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("objects differ from golden.yaml (-want +got):\n%s", diff)
			}
			wantW, err := os.ReadFile(filepath.Join(dir, "warnings.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(wantW), report(res)); diff != "" {
				t.Errorf("warnings differ from warnings.txt (-want +got):\n%s", diff)
			}
		})
	}
}
