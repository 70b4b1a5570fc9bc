package storage

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

type v1Descriptor = v1.Descriptor
type ioReadCloser = io.ReadCloser

func nopCloser(r io.Reader) io.ReadCloser { return io.NopCloser(r) }

func mustHash(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// scratchEmpty fails the test when the store's scratch directory of this session holds anything.
func scratchEmpty(t *testing.T, s *Store) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(s.root, "tmp", s.session))
	if len(ents) != 0 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("scratch not empty: %v", names)
	}
}
