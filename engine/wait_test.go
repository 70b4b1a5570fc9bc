package engine

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// notifyingRuntime is a StateWatcher whose notifications the test sends by hand.
type notifyingRuntime struct {
	Runtime
	changes chan struct{}
	watched [][]string
	stopped int
}

func (n *notifyingRuntime) WatchState(_ context.Context, ids []string) (<-chan struct{}, func(), error) {
	n.watched = append(n.watched, slices.Clone(ids))
	return n.changes, func() { n.stopped++ }, nil
}

func TestStateWaiterWakesOnNotification(t *testing.T) {
	rt := &notifyingRuntime{changes: make(chan struct{}, 1)}
	c := &Config{Runtime: rt, PollInterval: time.Hour, RecheckInterval: time.Hour}
	w := newStateWaiter(c)
	defer w.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	w.watch(ctx, []string{"a"})
	w.watch(ctx, []string{"a"}) // same set: no new watch
	rt.changes <- struct{}{}
	if err := w.pause(ctx); err != nil {
		t.Fatalf("pause with a pending notification: %v (the hour-long timer must not be what woke it)", err)
	}
	w.watch(ctx, []string{"a", "b"}) // a new replica: watch again
	if len(rt.watched) != 2 || rt.stopped != 1 {
		t.Fatalf("watches %v, stopped %d; want [[a] [a b]], 1", rt.watched, rt.stopped)
	}
	// Without a notification, pause waits (here until ctx ends).
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := w.pause(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("pause without notification: %v, want the context's deadline", err)
	}
}

func TestStateWaiterFallsBackToPolling(t *testing.T) {
	rt := &notifyingRuntime{changes: make(chan struct{})}
	close(rt.changes) // the watch failed
	c := &Config{Runtime: rt, PollInterval: time.Millisecond, RecheckInterval: time.Hour}
	w := newStateWaiter(c)
	defer w.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.watch(ctx, []string{"a"})
	if err := w.pause(ctx); err != nil { // consumes the closed channel
		t.Fatal(err)
	}
	if w.changes != nil {
		t.Fatal("an ended watch is still used")
	}
	if err := w.pause(ctx); err != nil { // PollInterval now
		t.Fatal(err)
	}
	// A runtime without notifications polls.
	w2 := newStateWaiter(&Config{Runtime: newFakeRuntime(nil), PollInterval: time.Millisecond})
	w2.watch(ctx, []string{"a"})
	if err := w2.pause(ctx); err != nil {
		t.Fatal(err)
	}
}
