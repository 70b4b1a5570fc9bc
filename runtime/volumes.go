package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Volumes manages named volumes: <root>/<name>/_data plus <root>/<name>/meta.json.
type Volumes struct {
	root string
}

// Volume is a named volume's record.
type Volume struct {
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	Driver     string            `json:"driver"`
	Options    map[string]string `json:"options,omitempty"`
	CreatedAt  time.Time         `json:"createdAt"`
	Mountpoint string            `json:"mountpoint"`
}

var volumeName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// NewVolumes opens the volume store under root (<berth root>/volumes).
func NewVolumes(root string) (*Volumes, error) {
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, fmt.Errorf("volumes: %w", err)
	}
	return &Volumes{root: root}, nil
}

func (v *Volumes) dir(name string) string { return filepath.Join(v.root, name) }

// Ensure creates the volume if it is missing and returns its host directory. An existing
// volume keeps its labels.
func (v *Volumes) Ensure(ctx context.Context, name string, labels map[string]string) (string, error) {
	if !volumeName.MatchString(name) {
		return "", fmt.Errorf("volume name %q: use letters, digits, _ . -: %w", name, ErrInvalid)
	}
	d := v.dir(name)
	data := filepath.Join(d, "_data")
	if _, err := os.Stat(filepath.Join(d, "meta.json")); err == nil {
		return data, nil
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return "", fmt.Errorf("create volume %s: %w", name, err)
	}
	meta := Volume{Name: name, Labels: labels, Driver: "local", CreatedAt: time.Now().UTC(), Mountpoint: data}
	if err := writeJSON(filepath.Join(d, "meta.json"), meta); err != nil {
		return "", err
	}
	return data, nil
}

// Inspect returns a volume's record.
func (v *Volumes) Inspect(ctx context.Context, name string) (Volume, error) {
	var meta Volume
	if err := readJSON(filepath.Join(v.dir(name), "meta.json"), &meta); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return meta, fmt.Errorf("volume %s: %w", name, ErrNoVolume)
		}
		return meta, err
	}
	meta.Mountpoint = filepath.Join(v.dir(name), "_data")
	return meta, nil
}

// List returns every volume sorted by name.
func (v *Volumes) List(ctx context.Context) ([]Volume, error) {
	ents, err := os.ReadDir(v.root)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []Volume
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		vol, err := v.Inspect(ctx, e.Name())
		if err != nil {
			continue
		}
		out = append(out, vol)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes a volume and its content. A missing volume is not an error. The caller checks
// that no container uses it (see InUse).
func (v *Volumes) Remove(ctx context.Context, name string) error {
	if !volumeName.MatchString(name) {
		return nil
	}
	if err := os.RemoveAll(v.dir(name)); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// InUse returns the names of containers (from cs) that mount the volume.
func (v *Volumes) InUse(name string, cs []Container) []string {
	data := filepath.Join(v.dir(name), "_data")
	var out []string
	for _, c := range cs {
		for _, m := range c.Config.Mounts {
			if m.Source == data {
				out = append(out, c.Config.Name)
				break
			}
		}
	}
	return out
}

// fillVolumes copies the image's content at each volume mount's target into the volume the
// first time it is used, as Docker does. The marker file "initialized" next to _data records
// that this happened.
func fillVolumes(rootfs string, mounts []Mount) error {
	for _, m := range mounts {
		if m.Type != "volume" || filepath.Base(m.Source) != "_data" {
			continue
		}
		marker := filepath.Join(filepath.Dir(m.Source), "initialized")
		if _, err := os.Stat(marker); err == nil {
			continue
		}
		ents, err := os.ReadDir(m.Source)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("volume %s: %w", m.Source, err)
		}
		if len(ents) == 0 {
			src, err := securejoin.SecureJoin(rootfs, m.Target)
			if err == nil {
				if st, err := os.Lstat(src); err == nil && st.IsDir() {
					if err := os.MkdirAll(m.Source, 0o755); err != nil {
						return err
					}
					if err := copyTree(src, m.Source); err != nil {
						return fmt.Errorf("fill volume %s from %s: %w", m.Source, m.Target, err)
					}
				}
			}
		}
		if err := os.WriteFile(marker, nil, 0o600); err != nil {
			return fmt.Errorf("volume %s: %w", m.Source, err)
		}
	}
	return nil
}

// copyTree copies src into dst preserving modes, owners, symlinks and times.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*unix.Stat_t)
		switch {
		case d.IsDir():
			if rel != "." {
				if err := os.Mkdir(target, info.Mode().Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
			}
			_ = os.Chmod(target, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(l, target); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if err := copyFile(p, target, info.Mode()); err != nil {
				return err
			}
		default:
			if st != nil {
				if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
					return err
				}
			}
		}
		if st != nil {
			_ = os.Lchown(target, int(st.Uid), int(st.Gid))
		}
		return nil
	})
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}

// parseVolumesFrom splits a VolumesFrom entry "REF[:ro|:rw]".
func parseVolumesFrom(v string) (ref, mode string, err error) {
	ref = v
	if i := strings.LastIndexByte(v, ':'); i >= 0 {
		ref, mode = v[:i], v[i+1:]
		if mode != "ro" && mode != "rw" {
			return "", "", fmt.Errorf("volumes_from %q: the mode after the colon must be ro or rw: %w", v, ErrInvalid)
		}
	}
	if ref == "" {
		return "", "", fmt.Errorf("volumes_from %q: no container: %w", v, ErrInvalid)
	}
	return ref, mode, nil
}

// resolveVolumesFrom adds to c.Mounts every volume and bind mount of the containers named in
// c.VolumesFrom, at the same targets, read-only with ":ro", read-write with ":rw", else in the
// source's mode. The container's own mounts (and tmpfs) win over a source's at the same
// target, and an earlier source over a later one. Entries are rewritten with full IDs.
func (r *Runtime) resolveVolumesFrom(c *ContainerConfig) error {
	if len(c.VolumesFrom) == 0 {
		return nil
	}
	targets := map[string]bool{}
	for _, m := range c.Mounts {
		targets[m.Target] = true
	}
	for t := range c.Tmpfs {
		targets[t] = true
	}
	resolved := make([]string, 0, len(c.VolumesFrom))
	for _, v := range c.VolumesFrom {
		ref, mode, err := parseVolumesFrom(v)
		if err != nil {
			return err
		}
		id, err := r.Resolve(context.Background(), ref)
		if err != nil {
			return fmt.Errorf("volumes_from %s: %w", ref, err)
		}
		if id == c.ID {
			return fmt.Errorf("volumes_from %s: a container cannot take volumes from itself: %w", ref, ErrInvalid)
		}
		src, err := r.config(id)
		if err != nil {
			return fmt.Errorf("volumes_from %s: %w", ref, err)
		}
		for _, m := range inheritMounts(src.Mounts, mode) {
			if targets[m.Target] {
				continue
			}
			targets[m.Target] = true
			c.Mounts = append(c.Mounts, m)
		}
		if mode != "" {
			id += ":" + mode
		}
		resolved = append(resolved, id)
	}
	c.VolumesFrom = resolved
	return nil
}

// inheritMounts returns the volume and bind mounts of ms (not tmpfs) for volumes_from, with
// mode "ro" or "rw" applied ("" keeps each mount's own).
func inheritMounts(ms []Mount, mode string) []Mount {
	var out []Mount
	for _, m := range ms {
		if m.Type != "volume" && m.Type != "bind" && m.Type != "" {
			continue
		}
		m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool {
			return mode != "" && (o == "ro" || o == "rw" || o == "readonly")
		})
		switch mode {
		case "ro":
			m.ReadOnly = true
		case "rw":
			m.ReadOnly = false
		}
		out = append(out, m)
	}
	return out
}
