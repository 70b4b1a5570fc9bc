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
