package storage

import (
	"context"
	"os"
	"testing"
	"time"
)

// temporary: removed before hand-off
func TestZZProfileImport(t *testing.T) {
	p := os.Getenv("ZZ_TAR")
	if p == "" {
		t.Skip()
	}
	s, err := Open(os.Getenv("ZZ_ROOT"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := 0; i < 2; i++ {
		f, _ := os.Open(p)
		t0 := time.Now()
		if _, err := s.Import(context.Background(), f, ImportOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Logf("import %d: %v", i, time.Since(t0))
		f.Close()
	}
}
