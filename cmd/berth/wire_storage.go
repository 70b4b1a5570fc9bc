package main

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/storage"
)

// wirePull pulls ref into the store.
func wirePull(ctx context.Context, s *storage.Store, ref string) error {
	return fmt.Errorf("pull %s: %w (import or load the image first)", ref, engine.ErrUnsupported)
}

// wireRemoveImage removes ref from the store.
func wireRemoveImage(ctx context.Context, s *storage.Store, ref string) error {
	return fmt.Errorf("remove image %s: %w", ref, engine.ErrUnsupported)
}
