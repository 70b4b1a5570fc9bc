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
	"sort"
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
