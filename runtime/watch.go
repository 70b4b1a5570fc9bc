package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// WatchState notifies on changes when the recorded state of any of the containers ids changes
// (the monitor rewrites state.json on start, health changes, restarts and exit), so callers
// wait for a condition without polling. A notification means "look again"; several changes may
// be folded into one, and changes is closed when ctx ends or the watch fails. A container whose
// monitor dies does not rewrite its state, so callers that must notice that still re-check
// now and then. stop releases the watch.
func (r *Runtime) WatchState(ctx context.Context, ids []string) (changes <-chan struct{}, stop func(), err error) {
	return r.watch(ctx, ids, false)
}

// WatchContainers is WatchState that also notifies when a container is created or removed
// (`events`).
func (r *Runtime) WatchContainers(ctx context.Context, ids []string) (changes <-chan struct{}, stop func(), err error) {
	return r.watch(ctx, ids, true)
}

func (r *Runtime) watch(ctx context.Context, ids []string, all bool) (changes <-chan struct{}, stop func(), err error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, nil, fmt.Errorf("watch state: %w", err)
	}
	if all {
		if _, err := unix.InotifyAddWatch(fd, r.root, unix.IN_CREATE|unix.IN_DELETE|unix.IN_MOVED_TO|unix.IN_MOVED_FROM); err != nil {
			unix.Close(fd)
			return nil, nil, fmt.Errorf("watch containers: %w", err)
		}
	}
	for _, id := range ids {
		// state.json is replaced by rename (and written in place only by old versions).
		if _, err := unix.InotifyAddWatch(fd, r.dir(id), unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE|unix.IN_DELETE_SELF); err != nil {
			unix.Close(fd)
			if errors.Is(err, unix.ENOENT) {
				return nil, nil, fmt.Errorf("watch state of %s: %w", id, ErrNotFound)
			}
			return nil, nil, fmt.Errorf("watch state of %s: %w", id, err)
		}
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: reads park in the poller
	ch := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		<-ctx.Done()
		f.Close() // wakes the reader
	}()
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default: // one pending notification is enough
			}
		}
	}()
	return ch, cancel, nil
}
