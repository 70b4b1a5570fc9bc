package storage

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// NormalizeRef returns ref in Docker's fully qualified form: "ubuntu" becomes
// "docker.io/library/ubuntu:latest", "ubuntu@sha256:…" becomes
// "docker.io/library/ubuntu@sha256:…". It wraps ErrInvalidRef.
func NormalizeRef(ref string) (string, error) {
	r, err := parseRef(ref)
	if err != nil {
		return "", err
	}
	return refString(r), nil
}

func parseRef(ref string) (name.Reference, error) {
	if ref == "" || strings.TrimSpace(ref) != ref {
		return nil, fmt.Errorf("reference %q: %w", ref, ErrInvalidRef)
	}
	if len(ref) == 64 && isHex(ref) {
		return nil, fmt.Errorf("reference %q: a 64-character hex string is an ID, not a name: %w", ref, ErrInvalidRef)
	}
	r, err := name.ParseReference(ref, name.WithDefaultRegistry("docker.io"))
	if err != nil {
		return nil, fmt.Errorf("reference %q: %v: %w", ref, err, ErrInvalidRef)
	}
	return r, nil
}

func refRepo(r name.Reference) string {
	reg := r.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + r.Context().RepositoryStr()
}

func refString(r name.Reference) string {
	switch v := r.(type) {
	case name.Digest:
		return refRepo(r) + "@" + v.DigestStr()
	case name.Tag:
		return refRepo(r) + ":" + v.TagStr()
	}
	return r.String()
}

// FamiliarRef shortens a normalized reference the way Docker displays it:
// "docker.io/library/ubuntu:latest" becomes "ubuntu:latest".
func FamiliarRef(ref string) string {
	if rest, ok := strings.CutPrefix(ref, "docker.io/"); ok {
		rest = strings.TrimPrefix(rest, "library/")
		return rest
	}
	return ref
}

// splitRepoTag splits "repo:tag" or "repo@digest" into the repository and the tag or digest.
func splitRepoTag(ref string) (repo, tag string) {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, ""
	}
	return ref[:i], ref[i+1:]
}
