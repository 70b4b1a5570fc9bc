package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// rollbackTimeout bounds the undo of a failed create (R8: cleanup runs under
// context.WithoutCancel with its own timeout).
const rollbackTimeout = 30 * time.Second

// rollback is a stack of undo steps for a multi-step operation.
type rollback struct {
	steps []undoStep
}

type undoStep struct {
	what string
	fn   func(ctx context.Context) error
}

// push records the undo of a step; push it before the step runs, so that a step that fails
// halfway is undone too (every undo treats "not found" as success).
func (r *rollback) push(what string, fn func(ctx context.Context) error) {
	r.steps = append(r.steps, undoStep{what: what, fn: fn})
}

// run undoes every step in reverse order, even after ctx was cancelled, and returns what
// failed. Every step runs even when an earlier one failed.
func (r *rollback) run(ctx context.Context, timeout time.Duration) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var errs []error
	for i := len(r.steps) - 1; i >= 0; i-- {
		s := r.steps[i]
		if err := s.fn(cctx); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", s.what, err))
		}
	}
	r.steps = nil
	return errors.Join(errs...)
}

func ignoreNotFound(err error) error {
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}
