package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// RemoveOptions control Remove and Prune.
type RemoveOptions struct {
	Force bool
	// InUse reports whether a container (known to the caller) uses the image. Images under a
	// writable layer in this store (Mount) are always in use. May be nil.
	InUse func(imageID string) bool
	// NoPrune keeps the blobs and layers that nothing references any more.
	NoPrune bool
}

// RemoveResult reports what Remove and Prune did, like Docker's "Untagged:" / "Deleted:".
type RemoveResult struct {
	Untagged       []string // familiar references
	Deleted        []string // image IDs
	SpaceReclaimed int64    // bytes of blobs and layers freed
}

func (s *Store) mountUsers() map[string]bool {
	used := map[string]bool{}
	ents, _ := os.ReadDir(filepath.Join(s.root, "mounts"))
	for _, e := range ents {
		var rec mountRecord
		if b, err := os.ReadFile(filepath.Join(s.root, "mounts", e.Name(), "mount.json")); err == nil && json.Unmarshal(b, &rec) == nil {
			used[rec.ImageID] = true
		}
	}
	return used
}

func (s *Store) inUse(opt RemoveOptions, mounted map[string]bool, id string) bool {
	return mounted[id] || (opt.InUse != nil && opt.InUse(id))
}

// Remove untags or deletes an image, like `docker image rm`: a name removes that tag and
// deletes the image when it was the last one; an ID deletes the image (with Force, even when it
// has several tags). An image in use is refused with ErrInUse unless Force, which then only
// untags it.
func (s *Store) Remove(ctx context.Context, ref string, opt RemoveOptions) (RemoveResult, error) {
	var res RemoveResult
	mounted := s.mountUsers()
	err := s.update(func(ix *index) error {
		id, err := resolveID(ix, ref)
		if err != nil {
			return err
		}
		var tags []string
		for r, rid := range ix.Refs {
			if rid == id {
				tags = append(tags, r)
			}
		}
		sort.Strings(tags)
		byName := ""
		if n, err := NormalizeRef(ref); err == nil && ix.Refs[n] == id {
			byName = n
		}
		if byName != "" && len(tags) > 1 {
			delete(ix.Refs, byName)
			res.Untagged = append(res.Untagged, FamiliarRef(byName))
			return nil
		}
		if byName == "" && len(tags) > 1 && !opt.Force {
			return fmt.Errorf("image %s is referenced by %d names (%s); remove them by name or use --force: %w",
				shortID(id), len(tags), strings.Join(familiarAll(tags), ", "), ErrConflict)
		}
		if s.inUse(opt, mounted, id) {
			if !opt.Force {
				return fmt.Errorf("image %s is used by a container; remove the container first or use --force: %w", shortID(id), ErrInUse)
			}
			for _, t := range tags {
				delete(ix.Refs, t)
				res.Untagged = append(res.Untagged, FamiliarRef(t))
			}
			return nil
		}
		for _, t := range tags {
			delete(ix.Refs, t)
			res.Untagged = append(res.Untagged, FamiliarRef(t))
		}
		for _, d := range ix.Images[id].RepoDigests {
			res.Untagged = append(res.Untagged, FamiliarRef(d))
		}
		delete(ix.Images, id)
		res.Deleted = append(res.Deleted, id)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("remove %s: %w", ref, err)
	}
	if len(res.Deleted) > 0 && !opt.NoPrune {
		n, err := s.GC(ctx)
		res.SpaceReclaimed = n
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

func familiarAll(l []string) []string {
	out := make([]string, len(l))
	for i, r := range l {
		out[i] = FamiliarRef(r)
	}
	return out
}

func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// Prune deletes dangling images (no tags); with all, every image no container uses.
func (s *Store) Prune(ctx context.Context, all bool, opt RemoveOptions) (RemoveResult, error) {
	var res RemoveResult
	mounted := s.mountUsers()
	err := s.update(func(ix *index) error {
		tagged := map[string][]string{}
		for r, id := range ix.Refs {
			tagged[id] = append(tagged[id], r)
		}
		for id := range ix.Images {
			if s.inUse(opt, mounted, id) || (!all && len(tagged[id]) > 0) {
				continue
			}
			for _, t := range tagged[id] {
				delete(ix.Refs, t)
				res.Untagged = append(res.Untagged, FamiliarRef(t))
			}
			delete(ix.Images, id)
			res.Deleted = append(res.Deleted, id)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("prune: %w", err)
	}
	sort.Strings(res.Deleted)
	sort.Strings(res.Untagged)
	n, err := s.GC(ctx)
	res.SpaceReclaimed = n
	return res, err
}

// GC deletes blobs and unpacked layers that no image and no container layer references, and
// returns the bytes freed. It waits for writes in progress.
func (s *Store) GC(ctx context.Context) (int64, error) {
	unlock, err := s.ingestLock(true)
	if err != nil {
		return 0, err
	}
	defer unlock()
	ix, err := s.view()
	if err != nil {
		return 0, err
	}
	blobs := map[string]bool{}
	chains := map[string]bool{}
	for id, rec := range ix.Images {
		blobs[id] = true
		blobs[rec.Manifest] = true
		if m, err := s.readManifest(rec.Manifest); err == nil {
			for _, l := range m.Layers {
				blobs[l.Digest.String()] = true
			}
		} else if !errors.Is(err, ErrNotFound) {
			return 0, fmt.Errorf("gc: %w", err)
		}
		if cb, err := s.readBlob(id); err == nil {
			if cf, _, err := parseConfig(cb); err == nil {
				var diffs []string
				for _, d := range cf.RootFS.DiffIDs {
					diffs = append(diffs, d.String())
				}
				for _, c := range ChainIDs(diffs) {
					chains[c] = true
				}
			}
		}
	}
	ents, _ := os.ReadDir(filepath.Join(s.root, "mounts"))
	for _, e := range ents {
		var rec mountRecord
		b, err := os.ReadFile(filepath.Join(s.root, "mounts", e.Name(), "mount.json"))
		if err != nil {
			continue
		}
		if err := json.Unmarshal(b, &rec); err != nil {
			return 0, fmt.Errorf("gc: container layer %s: %w", e.Name(), err)
		}
		for _, c := range rec.ChainIDs {
			chains[c] = true
		}
	}
	var freed int64
	bdir := filepath.Join(s.root, "blobs", "sha256")
	bents, err := os.ReadDir(bdir)
	if err != nil {
		return 0, fmt.Errorf("gc: %w", err)
	}
	for _, e := range bents {
		if blobs["sha256:"+e.Name()] {
			continue
		}
		if fi, err := e.Info(); err == nil {
			freed += fi.Size()
		}
		os.Remove(filepath.Join(bdir, e.Name()))
	}
	ldir := filepath.Join(s.root, "layers")
	lents, err := os.ReadDir(ldir)
	if err != nil {
		return 0, fmt.Errorf("gc: %w", err)
	}
	for _, e := range lents {
		if chains["sha256:"+e.Name()] {
			continue
		}
		if m, err := s.readLayerMeta("sha256:" + e.Name()); err == nil {
			freed += m.Size
			os.Remove(filepath.Join(s.root, "l", m.Short))
		}
		tmp := s.scratch("gc-")
		if err := os.Rename(filepath.Join(ldir, e.Name()), tmp); err != nil {
			return freed, fmt.Errorf("gc: layer %s: %w", e.Name(), err)
		}
		removeAllMaybeImmutable(tmp)
	}
	// Layer locks: nobody holds one (unpacking holds the ingest lock shared).
	lkents, _ := os.ReadDir(filepath.Join(s.root, "locks"))
	for _, e := range lkents {
		os.Remove(filepath.Join(s.root, "locks", e.Name()))
	}
	// Short links whose layer is gone.
	sents, _ := os.ReadDir(filepath.Join(s.root, "l"))
	for _, e := range sents {
		p := filepath.Join(s.root, "l", e.Name())
		if _, err := os.Stat(p); err != nil {
			os.Remove(p)
		}
	}
	return freed, nil
}
