package storage

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestPullPlatformFromIndex(t *testing.T) {
	ctx := context.Background()
	reg := startRegistry(t)
	idx := v1.ImageIndex(empty.Index)
	ids := map[string]string{}
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			t.Fatal(err)
		}
		cn, _ := img.ConfigName()
		ids[arch] = cn.String()
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	ref, _ := name.ParseReference(reg + "/multi/app:1")
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	idxDigest, _ := idx.Digest()
	s := openStore(t)
	img, err := s.Pull(ctx, reg+"/multi/app:1", PullOptions{Platform: "linux/arm64"})
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != ids["arm64"] || img.Architecture != "arm64" {
		t.Errorf("pulled %s (%s), want the arm64 image %s", img.ID, img.Architecture, ids["arm64"])
	}
	// RepoDigests name the index, as with Docker.
	if len(img.RepoDigests) != 1 || img.RepoDigests[0] != reg+"/multi/app@"+idxDigest.String() {
		t.Errorf("repo digests %v, want index digest %s", img.RepoDigests, idxDigest)
	}
	if _, err := s.Pull(ctx, reg+"/multi/app:1", PullOptions{Platform: "linux/s390x"}); err == nil {
		t.Errorf("pulled a platform the index lacks")
	}
	if _, err := s.Pull(ctx, reg+"/multi/app:1", PullOptions{Platform: "nonsense"}); !errors.Is(err, ErrInvalidRef) {
		t.Errorf("bad platform: %v", err)
	}
}
