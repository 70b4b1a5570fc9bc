package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/engine"
)

// wireVolumes keeps named volumes as <root>/volumes/<name>/_data with a meta.json beside it.
type wireVolumes struct{ root string }

type wireVolumeMeta struct {
	Name    string            `json:"name"`
	Driver  string            `json:"driver"`
	Labels  map[string]string `json:"labels,omitempty"`
	Created time.Time         `json:"created"`
}

func (w *wireVolumes) Ensure(ctx context.Context, name string, labels map[string]string) (string, error) {
	dir := filepath.Join(w.root, name)
	data := filepath.Join(dir, "_data")
	if _, err := os.Stat(data); err == nil {
		return data, nil
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", fmt.Errorf("create volume %s: %w", name, err)
	}
	b, _ := json.Marshal(wireVolumeMeta{Name: name, Driver: "local", Labels: labels, Created: time.Now().UTC()})
	tmp := filepath.Join(dir, ".meta.json.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return "", fmt.Errorf("create volume %s: %w", name, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, "meta.json"))
	}
	if err != nil {
		return "", fmt.Errorf("create volume %s: %w", name, err)
	}
	return data, nil
}

func (w *wireVolumes) Remove(ctx context.Context, name string) error {
	dir := filepath.Join(w.root, name)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

func (w *wireVolumes) List(ctx context.Context) ([]engine.VolumeInfo, error) {
	ents, err := os.ReadDir(w.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []engine.VolumeInfo
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		info := engine.VolumeInfo{Name: e.Name()}
		if b, err := os.ReadFile(filepath.Join(w.root, e.Name(), "meta.json")); err == nil {
			var m wireVolumeMeta
			if json.Unmarshal(b, &m) == nil {
				info.Labels = m.Labels
			}
		}
		out = append(out, info)
	}
	return out, nil
}
