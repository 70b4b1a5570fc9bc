package spec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// recordingCache is a ValidationCache in memory that counts hits.
type recordingCache struct {
	valid map[string]bool
	hits  int
}

func (c *recordingCache) Validated(key string) bool {
	if c.valid[key] {
		c.hits++
		return true
	}
	return false
}

func (c *recordingCache) MarkValidated(key string) { c.valid[key] = true }

func writeCompose(t *testing.T, dir, body string) string {
	t.Helper()
	f := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestValidationCacheSkipsOnlyWhatPassed(t *testing.T) {
	dir := t.TempDir()
	f := writeCompose(t, dir, "services:\n  web:\n    image: ${IMG}\n")
	c := &recordingCache{valid: map[string]bool{}}
	load := func(env ...string) (*Project, error) {
		return Load(context.Background(), Options{Files: []string{f}, ProjectName: "vc", Environ: env, Validated: c})
	}
	if _, err := load("IMG=busybox"); err != nil {
		t.Fatal(err)
	}
	if c.hits != 0 || len(c.valid) != 1 {
		t.Fatalf("first load: hits %d, entries %d; want 0, 1", c.hits, len(c.valid))
	}
	p, err := load("IMG=busybox")
	if err != nil {
		t.Fatal(err)
	}
	if c.hits != 1 {
		t.Fatalf("second load of the same input: hits %d, want 1", c.hits)
	}
	if s, _ := p.Service("web"); s.Image != "busybox" {
		t.Fatalf("cached load: image %q, want busybox", s.Image)
	}
	// Another environment is another input.
	if _, err := load("IMG=alpine"); err != nil {
		t.Fatal(err)
	}
	if c.hits != 1 || len(c.valid) != 2 {
		t.Fatalf("new environment: hits %d, entries %d; want 1, 2", c.hits, len(c.valid))
	}
	// An invalid file is never remembered, and is rejected every time.
	writeCompose(t, dir, "services:\n  web:\n    image: busybox\n    bogus_key: 1\n")
	for i := 0; i < 2; i++ {
		if _, err := load("IMG=busybox"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("invalid file, load %d: err %v, want ErrInvalid", i, err)
		}
	}
	if len(c.valid) != 2 {
		t.Fatalf("invalid input was remembered: %d entries", len(c.valid))
	}
}

func TestValidationKeyIgnoresFilesThatPullInOthers(t *testing.T) {
	dir := t.TempDir()
	for _, body := range []string{
		"include:\n  - other.yaml\nservices: {}\n",
		"services:\n  web:\n    extends:\n      file: base.yaml\n      service: b\n",
	} {
		f := writeCompose(t, dir, body)
		if k := validationKey(&resolved{files: []string{f}, dir: dir}); k != "" {
			t.Errorf("key for a file with include/extends: %q, want none", k)
		}
	}
	f := writeCompose(t, dir, "services: {}\n")
	if k := validationKey(&resolved{files: []string{f, "-"}, dir: dir}); k != "" {
		t.Errorf("key with stdin: %q, want none", k)
	}
}

func TestDirValidationCache(t *testing.T) {
	c := DirValidationCache{Dir: filepath.Join(t.TempDir(), "v"), Max: 2}
	if c.Validated("a") {
		t.Fatal("empty cache says validated")
	}
	c.MarkValidated("a")
	c.MarkValidated("b")
	if !c.Validated("a") || !c.Validated("b") {
		t.Fatal("marked keys not found")
	}
	c.MarkValidated("c") // over Max: the old entries go
	if c.Validated("a") || !c.Validated("c") {
		t.Fatal("cache not bounded")
	}
	if (DirValidationCache{}).Validated("a") {
		t.Fatal("cache without a directory says validated")
	}
}
