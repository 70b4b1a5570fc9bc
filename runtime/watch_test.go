package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func newWatchRuntime(t *testing.T) *Runtime {
	t.Helper()
	d := t.TempDir()
	r, err := New(Config{Root: filepath.Join(d, "root"), RunRoot: filepath.Join(d, "run")})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func expectNotification(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatalf("%s: watch ended", what)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no notification", what)
	}
}

func TestWatchStateNotifiesOnStateWrites(t *testing.T) {
	r := newWatchRuntime(t)
	id := NewID()
	if err := os.MkdirAll(r.dir(id), 0o700); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, stop, err := r.WatchState(ctx, []string{id})
	if err != nil {
		t.Fatal(err)
	}
	if err := writeJSON(filepath.Join(r.dir(id), "state.json"), State{Status: StatusRunning}); err != nil {
		t.Fatal(err)
	}
	expectNotification(t, ch, "state written")
	stop()
	select {
	case _, ok := <-ch:
		if ok {
			// A notification queued before stop is fine; the channel must close next.
			if _, ok := <-ch; ok {
				t.Fatal("channel open after stop")
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("channel not closed after stop")
	}
}

func TestWatchStateUnknownContainer(t *testing.T) {
	r := newWatchRuntime(t)
	if _, _, err := r.WatchState(context.Background(), []string{NewID()}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
}

func TestWatchContainersNotifiesOnCreate(t *testing.T) {
	r := newWatchRuntime(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, stop, err := r.WatchContainers(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := os.MkdirAll(r.dir(NewID()), 0o700); err != nil {
		t.Fatal(err)
	}
	expectNotification(t, ch, "container created")
}
