package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/storage"
)

// wirePull pulls ref into the store.
func wirePull(ctx context.Context, s *storage.Store, ref string) error {
	if _, err := s.Pull(ctx, ref, storage.PullOptions{}); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// wireRemoveImage removes ref from the store (`down --rmi`); an image a container still uses
// is refused by the store.
func wireRemoveImage(ctx context.Context, s *storage.Store, ref string) error {
	_, err := s.Remove(ctx, ref, storage.RemoveOptions{})
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w (%w)", err, engine.ErrNotFound)
	}
	return err
}
