package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Creates are journalled: before a container's first resource is made, an empty file
// <RunRoot>/creating/<project>/<id> records the intent, and it goes once the runtime knows
// the container or the create was rolled back. A process killed in between leaves the file,
// and the next up or down of the project (under its lock) rolls the create back: nothing
// half-done stays behind without a record.
//
// Resources of containers that the runtime does not know and that no journal names (a berth
// from before the journal, `berth container run` killed halfway) are swept once they are
// older than orphanGrace, so that a create in progress in another process is never touched.
const orphanGrace = 2 * time.Minute

func (e *Engine) journalDir(project string) string {
	return filepath.Join(e.cfg.RunRoot, "creating", project)
}

// journalBegin records that a create of id in project starts.
func (e *Engine) journalBegin(project, id string) error {
	if e.cfg.RunRoot == "" {
		return nil
	}
	dir := e.journalDir(project)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("journal create of %s: %w", id, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, id), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal create of %s: %w", id, err)
	}
	return f.Close()
}

// journalEnd drops the record of a create that completed or was rolled back.
func (e *Engine) journalEnd(project, id string) {
	if e.cfg.RunRoot == "" {
		return
	}
	if err := os.Remove(filepath.Join(e.journalDir(project), id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.log.Warn("journal", "id", id, "err", err)
	}
}

// journalled returns the IDs of creates in progress (or interrupted) by project; with
// project "", of every project.
func (e *Engine) journalled(project string) (map[string]string, error) {
	out := map[string]string{}
	if e.cfg.RunRoot == "" {
		return out, nil
	}
	projects := []string{project}
	if project == "" {
		ents, err := os.ReadDir(filepath.Join(e.cfg.RunRoot, "creating"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		projects = projects[:0]
		for _, d := range ents {
			projects = append(projects, d.Name())
		}
	}
	for _, p := range projects {
		ents, err := os.ReadDir(e.journalDir(p))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, d := range ents {
			out[d.Name()] = p
		}
	}
	return out, nil
}

// Sweep removes what failed or interrupted creates left behind: the sandboxes (with their
// endpoints, DNS records and port rules) and writable layers of containers the runtime does
// not know. Creates of project that were interrupted are rolled back at once; resources
// that no journal names are removed once older than orphanGrace. The caller holds the
// project lock. Up and Down sweep first.
func (e *Engine) Sweep(ctx context.Context, project string) error {
	c := &e.cfg
	if c.Lister == nil {
		return nil
	}
	known, err := e.knownIDs(ctx)
	if err != nil {
		return fmt.Errorf("sweep: list containers: %w", err)
	}
	journal, err := e.journalled("")
	if err != nil {
		return fmt.Errorf("sweep: read journal: %w", err)
	}
	now := c.Now()
	// gone decides whether a resource of container id is a leftover to remove now.
	gone := func(l Leftover) bool {
		if known[l.ID] || !containerID(l.ID) {
			// Other users of the store (build steps' "build-..." layers) are not ours.
			return false
		}
		if p, ok := journal[l.ID]; ok {
			return p == project
		}
		return !l.Created.IsZero() && now.Sub(l.Created) > orphanGrace
	}
	var errs []error
	swept := 0
	if ss, ok := c.Sandboxes.(SandboxSweeper); ok {
		sbs, err := ss.List(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list sandboxes: %w", err))
		}
		for _, l := range sbs {
			if gone(l) {
				swept++
				if err := ignoreNotFound(c.Sandboxes.Remove(ctx, l.ID, nil)); err != nil {
					errs = append(errs, fmt.Errorf("remove sandbox of %s: %w", shortID(l.ID), err))
				}
			}
		}
	}
	if ll, ok := c.Layers.(LayerLister); ok {
		layers, err := ll.List(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("list writable layers: %w", err))
		}
		for _, l := range layers {
			if gone(l) {
				swept++
				if err := errors.Join(ignoreNotFound(c.Layers.Unmount(ctx, l.ID)), ignoreNotFound(c.Layers.Remove(ctx, l.ID))); err != nil {
					errs = append(errs, fmt.Errorf("remove writable layer of %s: %w", shortID(l.ID), err))
				}
			}
		}
	}
	if ss, ok := c.Sandboxes.(SandboxSweeper); ok {
		// Endpoints and rules of containers whose sandbox is gone (this sweep's or earlier).
		if err := ss.Recover(ctx); err != nil {
			errs = append(errs, fmt.Errorf("recover networks: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweep leftovers: %w", err)
	}
	for id, p := range journal {
		if p == project {
			if !known[id] {
				// Nothing of it is left (or it never got further than the journal).
				swept++
			}
			e.journalEnd(project, id)
		}
	}
	if swept > 0 {
		e.log.Info("swept leftovers of failed or interrupted creates", "project", project, "count", swept)
	}
	return nil
}

// knownIDs returns the set of container IDs the runtime knows.
func (e *Engine) knownIDs(ctx context.Context) (map[string]bool, error) {
	known := map[string]bool{}
	if il, ok := e.cfg.Lister.(IDLister); ok {
		ids, err := il.IDs(ctx)
		for _, id := range ids {
			known[id] = true
		}
		return known, err
	}
	all, err := e.cfg.Lister.List(ctx)
	for _, ci := range all {
		known[ci.ID] = true
	}
	return known, err
}

// containerID reports whether id looks like a container ID (64 lowercase hex digits).
func containerID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
