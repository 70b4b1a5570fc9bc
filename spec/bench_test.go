package spec

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeBigProject writes a compose file with n services, each with the keys real files use.
func writeBigProject(tb testing.TB, n int) string {
	tb.Helper()
	var b strings.Builder
	b.WriteString("name: big\nservices:\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  svc%d:\n", i)
		fmt.Fprintf(&b, "    image: registry.example/app%d:${TAG:-latest}\n", i%50)
		b.WriteString("    command: [\"serve\", \"--port\", \"8080\"]\n")
		fmt.Fprintf(&b, "    ports: [\"%d:8080\"]\n", 10000+i)
		fmt.Fprintf(&b, "    environment:\n      INDEX: \"%d\"\n      MODE: production\n", i)
		fmt.Fprintf(&b, "    labels:\n      team: t%d\n", i%10)
		b.WriteString("    volumes: [\"data:/data\"]\n")
		b.WriteString("    mem_limit: 128m\n    restart: unless-stopped\n")
		if i > 0 {
			fmt.Fprintf(&b, "    depends_on: [svc%d]\n", i-1)
		}
	}
	b.WriteString("volumes:\n  data: {}\n")
	dir := tb.TempDir()
	f := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(f, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	return f
}

// BenchmarkLoad loads a generated 5,000-service project (the figure quoted in the CHANGELOG).
func BenchmarkLoad(b *testing.B) {
	f := writeBigProject(b, 5000)
	opt := Options{Files: []string{f}, Environ: []string{}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := Load(ctx, opt)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Services) != 5000 {
			b.Fatalf("%d services", len(p.Services))
		}
	}
}

// BenchmarkLoad100 is the load a no-op `berth up` of 100 services pays: "uncached" with a warm
// validation cache (as cmd wires it, so schema validation is skipped), "cached" with the load
// cache too, from a cache directory on disk.
func BenchmarkLoad100(b *testing.B) {
	f := writeBigProject(b, 100)
	ctx := context.Background()
	validated := DirValidationCache{Dir: filepath.Join(b.TempDir(), "validated")}
	loaded := DirLoadCache{Dir: filepath.Join(b.TempDir(), "loaded")}
	for _, bc := range []struct {
		name string
		opt  Options
	}{
		{"uncached", Options{Files: []string{f}, Environ: []string{}, Validated: validated}},
		{"cached", Options{Files: []string{f}, Environ: []string{}, Validated: validated, Loaded: loaded}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			if _, err := Load(ctx, bc.opt); err != nil { // warm the caches
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				p, err := Load(ctx, bc.opt)
				if err != nil {
					b.Fatal(err)
				}
				if len(p.Services) != 100 {
					b.Fatalf("%d services", len(p.Services))
				}
			}
		})
	}
}
