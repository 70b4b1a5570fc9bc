package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func newNamesRuntime(t *testing.T) *Runtime {
	t.Helper()
	base := t.TempDir()
	r, err := New(Config{Root: filepath.Join(base, "c"), RunRoot: filepath.Join(base, "run")})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func fakeContainer(t *testing.T, r *Runtime, id, name string) {
	t.Helper()
	if err := os.MkdirAll(r.dir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(r.dir(id), "config.json"), ContainerConfig{ID: id, Name: name}); err != nil {
		t.Fatal(err)
	}
}

func TestNameIndexBuiltFromConfigs(t *testing.T) {
	r := newNamesRuntime(t)
	ctx := context.Background()
	id := NewID()
	fakeContainer(t, r, id, "web-1") // made before the index existed
	// reserve builds the index, so the existing name conflicts.
	if _, err := r.reserve("web-1", NewID()); !errors.Is(err, ErrNameConflict) {
		t.Fatalf("reserve of an existing name = %v, want ErrNameConflict", err)
	}
	if got, err := r.Resolve(ctx, "/web-1"); err != nil || got != id {
		t.Errorf("Resolve = %q, %v", got, err)
	}
	if taken, err := r.NameTaken(ctx, "web-2"); err != nil || taken {
		t.Errorf("NameTaken(web-2) = %v, %v", taken, err)
	}
}

func TestNameReserveReleaseAndStale(t *testing.T) {
	r := newNamesRuntime(t)
	ctx := context.Background()
	a, b := NewID(), NewID()

	done, err := r.reserve("db", a)
	if err != nil {
		t.Fatal(err)
	}
	// Being created (no config yet, create lock held): the name is taken.
	if _, err := r.reserve("db", b); !errors.Is(err, ErrNameConflict) {
		t.Fatalf("reserve while another create runs = %v, want ErrNameConflict", err)
	}
	if taken, _ := r.NameTaken(ctx, "db"); !taken {
		t.Error("name of a container being created is not taken")
	}
	// The creator died before writing its config: its lock is gone, so the name is free.
	done()
	doneB, err := r.reserve("db", b)
	if err != nil {
		t.Fatalf("reserve after the first creator died = %v", err)
	}
	doneB()
	fakeContainer(t, r, b, "db")
	if got, err := r.Resolve(ctx, "db"); err != nil || got != b {
		t.Errorf("Resolve = %q, %v, want %s", got, err, b[:12])
	}

	// A link whose container is gone (removed by an older berth, or a crash) blocks nothing.
	if err := os.RemoveAll(r.dir(b)); err != nil {
		t.Fatal(err)
	}
	if taken, _ := r.NameTaken(ctx, "db"); taken {
		t.Error("stale link still takes the name")
	}

	// Remove releases the name.
	c := NewID()
	fakeContainer(t, r, c, "cache")
	if err := func() error {
		unlock, err := r.lockNames()
		if err != nil {
			return err
		}
		defer unlock()
		return r.claimName("cache", c)
	}(); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove(ctx, c, false); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(r.namesDir(), "cache")); !os.IsNotExist(err) {
		t.Errorf("link of a removed container: %v", err)
	}
}

func TestRenameMovesName(t *testing.T) {
	r := newNamesRuntime(t)
	ctx := context.Background()
	a, b := NewID(), NewID()
	fakeContainer(t, r, a, "one")
	fakeContainer(t, r, b, "two")
	if err := r.Rename(ctx, a, "two"); !errors.Is(err, ErrNameConflict) {
		t.Fatalf("rename onto a used name = %v", err)
	}
	if err := r.Rename(ctx, a, "one"); err != nil {
		t.Fatalf("rename to its own name = %v", err)
	}
	if err := r.Rename(ctx, a, "three"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Resolve(ctx, "three"); err != nil || got != a {
		t.Errorf("Resolve(three) = %q, %v", got, err)
	}
	if taken, _ := r.NameTaken(ctx, "one"); taken {
		t.Error("old name still taken after rename")
	}
	if err := r.Rename(ctx, a, "bad/name"); !errors.Is(err, ErrInvalid) {
		t.Errorf("rename to an invalid name = %v", err)
	}
}

func TestValidName(t *testing.T) {
	for name, want := range map[string]bool{
		"web": true, "proj-web-1": true, "a_b.c": true, "0abc": true,
		"": false, "-x": false, ".x": false, "a/b": false, "~x": false, "a b": false,
	} {
		if got := validName(name); got != want {
			t.Errorf("validName(%q) = %v", name, got)
		}
	}
}
