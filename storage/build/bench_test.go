package build

import (
	"context"
	"fmt"
	"io"
	"testing"
)

// BenchmarkCachedRebuild measures an unchanged rebuild of a 10-step Dockerfile with a small
// context: every layer step hits the cache (target: well under 200 ms).
func BenchmarkCachedRebuild(b *testing.B) {
	s, err := openBenchStore(b)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	dir := b.TempDir()
	files := map[string]string{}
	for i := 0; i < 50; i++ {
		files[fmt.Sprintf("src/f%02d.txt", i)] = fmt.Sprintf("content %d\n", i)
	}
	files["app.conf"] = "x=1\n"
	writeFilesB(b, dir, files)
	df := "FROM scratch\nARG V=1\nENV V=$V\nCOPY app.conf /etc/app.conf\nWORKDIR /app\nCOPY src/ ./src/\nLABEL a=b\nCOPY src/f01.txt /one\nEXPOSE 80\nUSER 1000\nCMD [\"/app\"]\n"
	opt := Options{ContextDir: dir, DockerfileInline: df, Tags: []string{"bench:1"}, Progress: io.Discard}
	if _, err := Build(context.Background(), s, nil, opt); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Build(context.Background(), s, nil, opt); err != nil {
			b.Fatal(err)
		}
	}
}
