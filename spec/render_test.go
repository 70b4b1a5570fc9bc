package spec

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/spec")

// TestRenderGolden pins `berth config` output for the basic fixture. The fixture directory is
// replaced by <DIR> so that the golden file does not depend on where the checkout lives.
func TestRenderGolden(t *testing.T) {
	for _, format := range []string{"yaml", "json"} {
		t.Run(format, func(t *testing.T) {
			dir := fixture(t, "basic")
			out, err := Render(context.Background(), Options{WorkingDir: dir, Environ: []string{}}, format)
			if err != nil {
				t.Fatal(err)
			}
			out = bytes.ReplaceAll(out, []byte(dir), []byte("<DIR>"))
			golden := filepath.Join(fixture(t, "golden"), "basic.config."+format)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./spec -run TestRenderGolden -update)", err)
			}
			if diff := cmp.Diff(string(want), string(out)); diff != "" {
				t.Errorf("config output changed (-want +got):\n%s", diff)
			}
		})
	}
}
