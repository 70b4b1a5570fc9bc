package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/berth-dev/berth/storage"
)

// cache maps step keys to image IDs: one small file per key, written atomically.
type cache struct{ dir string }

// finalSuffix marks the entries of build results (not intermediate steps): Prune forgets them
// but leaves the images, which belong to the user like any image they built.
const finalSuffix = ".final"

func (c cache) get(key string) string {
	b, err := os.ReadFile(filepath.Join(c.dir, key))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// put records key -> id. A failure only loses a cache entry, so it is not reported.
func (c cache) put(key, id string) {
	f, err := os.CreateTemp(c.dir, ".tmp-")
	if err != nil {
		return
	}
	_, err = f.WriteString(id + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(c.dir, key))
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// Pruner is what Prune needs from the store; *storage.Store satisfies it.
type Pruner interface {
	Resolve(ctx context.Context, ref string) (storage.Image, error)
	Remove(ctx context.Context, ref string, opt storage.RemoveOptions) (storage.RemoveResult, error)
	GC(ctx context.Context) (int64, error)
	Root() string
}

// PruneResult reports what Prune removed.
type PruneResult struct {
	Entries        int      // cache entries dropped
	Deleted        []string // image IDs deleted
	SpaceReclaimed int64    // bytes freed by the store's GC
}

// Prune empties the build cache in cacheDir ("" = <store root>/buildcache): it deletes the
// untagged intermediate images the cache holds (tagged ones, build results and images in use
// by containers are kept and only forgotten by the cache), then runs the store's GC.
func Prune(ctx context.Context, s Pruner, cacheDir string) (PruneResult, error) {
	var res PruneResult
	if cacheDir == "" {
		cacheDir = filepath.Join(s.Root(), "buildcache")
	}
	ents, err := os.ReadDir(cacheDir)
	if errors.Is(err, os.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("build cache: %w", err)
	}
	c := cache{dir: cacheDir}
	ids, results := map[string]bool{}, map[string]bool{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			os.Remove(filepath.Join(cacheDir, e.Name())) // leftovers of interrupted builds
			continue
		}
		if id := c.get(e.Name()); id != "" {
			if strings.HasSuffix(e.Name(), finalSuffix) {
				results[id] = true
			} else {
				ids[id] = true
			}
		}
		if err := os.Remove(filepath.Join(cacheDir, e.Name())); err == nil {
			res.Entries++
		}
	}
	sorted := make([]string, 0, len(ids))
	for id := range ids {
		if !results[id] {
			sorted = append(sorted, id)
		}
	}
	sort.Strings(sorted)
	for _, id := range sorted {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		img, err := s.Resolve(ctx, id)
		if err != nil || len(img.RepoTags) > 0 || len(img.RepoDigests) > 0 {
			continue
		}
		r, err := s.Remove(ctx, id, storage.RemoveOptions{NoPrune: true})
		if err != nil {
			if errors.Is(err, storage.ErrInUse) || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
				continue
			}
			return res, fmt.Errorf("prune build cache: %w", err)
		}
		res.Deleted = append(res.Deleted, r.Deleted...)
	}
	n, err := s.GC(ctx)
	res.SpaceReclaimed = n
	if err != nil {
		return res, fmt.Errorf("prune build cache: %w", err)
	}
	return res, nil
}

// CachedImages returns the IDs of the intermediate images (one per cached layer step) that
// the build cache in cacheDir ("" = <storeRoot>/buildcache) holds; build results are not
// included. Image listing can hide the untagged ones (Docker hides intermediate images) and
// image pruning should treat them as in use (storage.RemoveOptions.InUse) so that only
// Prune drops them.
func CachedImages(storeRoot, cacheDir string) (map[string]bool, error) {
	if cacheDir == "" {
		cacheDir = filepath.Join(storeRoot, "buildcache")
	}
	ents, err := os.ReadDir(cacheDir)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("build cache: %w", err)
	}
	c := cache{dir: cacheDir}
	out, results := map[string]bool{}, map[string]bool{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if id := c.get(e.Name()); id != "" {
			if strings.HasSuffix(e.Name(), finalSuffix) {
				results[id] = true
			} else {
				out[id] = true
			}
		}
	}
	for id := range results {
		delete(out, id)
	}
	return out, nil
}
