package main

import (
	"context"

	"github.com/berth-dev/berth/engine"
	crt "github.com/berth-dev/berth/runtime"
)

// wireVolumes adapts the runtime's named volumes (<root>/volumes/<name>/_data).
type wireVolumes struct{ v *crt.Volumes }

func (w *wireVolumes) Ensure(ctx context.Context, name string, labels map[string]string) (string, error) {
	return w.v.Ensure(ctx, name, labels)
}

func (w *wireVolumes) Remove(ctx context.Context, name string) error {
	return w.v.Remove(ctx, name)
}

func (w *wireVolumes) List(ctx context.Context) ([]engine.VolumeInfo, error) {
	vs, err := w.v.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]engine.VolumeInfo, len(vs))
	for i, v := range vs {
		out[i] = engine.VolumeInfo{Name: v.Name, Labels: v.Labels}
	}
	return out, nil
}
