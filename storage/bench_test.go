package storage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkImport imports a generated 64 MB rootfs-like tar (many small files, some large).
func BenchmarkImport(b *testing.B) { benchmarkImport(b, false) }

// BenchmarkReimport imports content that the store already has.
func BenchmarkReimport(b *testing.B) { benchmarkImport(b, true) }

func benchmarkImport(b *testing.B, again bool) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	rnd := rand.New(rand.NewSource(1))
	pool := make([]byte, 8<<20)
	rnd.Read(pool)
	total := 0
	for i := 0; total < 64<<20; i++ {
		n := 100 + rnd.Intn(8<<10)
		if rnd.Intn(100) < 29 {
			n = 8<<10 + rnd.Intn(248<<10)
		}
		if i%200 == 0 {
			tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%03d/", i/200), Typeflag: tar.TypeDir, Mode: 0o755})
		}
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%03d/f%06d", i/200, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(n)})
		off := rnd.Intn(len(pool) - n)
		tw.Write(pool[off : off+n])
		total += n
	}
	tw.Close()
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		s, err := Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		if again {
			if _, err := s.Import(context.Background(), bytes.NewReader(data), ImportOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		if _, err := s.Import(context.Background(), bytes.NewReader(data), ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}
