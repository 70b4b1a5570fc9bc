package storage

import (
	"io"
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
