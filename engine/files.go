package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/berth-dev/berth/spec"
)

// filesDirName is the directory, next to a container's rootfs inside its writable-layer
// directory, that holds the secret and config files the engine writes for the container.
// It goes away with the writable layer (Layers.Remove), that is with the container.
const filesDirName = "berth-files"

// fileKind is "secret" or "config".
type fileKind string

const (
	kindSecret fileKind = "secret"
	kindConfig fileKind = "config"
)

// fileMounts returns the read-only bind mounts of a service's secrets and configs. Secrets go
// to /run/secrets/<target or source> (an absolute target as is), configs to their target
// (default /<source>). A file: source is bound as is; environment: and content: sources are
// written under the container's files directory, next to rootfs. lookupEnv resolves
// environment: sources.
//
// With rootfs "" it only checks the references (external, missing file, unset variable) and
// writes nothing, so that a create can fail before it makes anything.
func fileMounts(p *spec.Project, svc spec.Service, rootfs string, lookupEnv func(string) (string, bool)) ([]Mount, error) {
	var out []Mount
	dir := ""
	if rootfs != "" {
		dir = filepath.Join(filepath.Dir(rootfs), filesDirName)
	}
	for _, k := range []struct {
		kind fileKind
		refs []spec.FileRef
		defs map[string]spec.FileObject
	}{
		{kindSecret, svc.Secrets, p.Secrets},
		{kindConfig, svc.Configs, p.Configs},
	} {
		for i, ref := range k.refs {
			hostPath := ""
			if dir != "" {
				hostPath = filepath.Join(dir, fmt.Sprintf("%s-%d", k.kind, i))
			}
			m, err := fileMount(k.kind, svc, ref, k.defs, hostPath, lookupEnv)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
	}
	return out, nil
}

func fileMount(kind fileKind, svc spec.Service, ref spec.FileRef, defs map[string]spec.FileObject, hostPath string, lookupEnv func(string) (string, bool)) (Mount, error) {
	def, ok := defs[ref.Source]
	if !ok {
		return Mount{}, fmt.Errorf("service %s: %s %q is not defined in the project: %w", svc.Name, kind, ref.Source, ErrNotFound)
	}
	if def.External {
		return Mount{}, fmt.Errorf("service %s: %s %q: external %ss are not supported by berth; use file: (%w)", svc.Name, kind, ref.Source, kind, ErrUnsupported)
	}
	target := fileTarget(kind, ref)
	m := Mount{Type: "bind", Target: target, ReadOnly: true}
	var content string
	switch {
	case def.File != "":
		st, err := os.Stat(def.File)
		if errors.Is(err, fs.ErrNotExist) {
			return Mount{}, fmt.Errorf("service %s: %s %q: file %s does not exist: %w", svc.Name, kind, ref.Source, def.File, ErrNotFound)
		}
		if err != nil {
			return Mount{}, fmt.Errorf("service %s: %s %q: file %s: %w", svc.Name, kind, ref.Source, def.File, err)
		}
		if st.IsDir() && kind == kindSecret {
			return Mount{}, fmt.Errorf("service %s: %s %q: file %s is a directory", svc.Name, kind, ref.Source, def.File)
		}
		m.Source = def.File
		return m, nil
	case def.Environment != "":
		v, ok := lookupEnv(def.Environment)
		if !ok {
			return Mount{}, fmt.Errorf("service %s: %s %q: environment variable %s is not set: %w", svc.Name, kind, ref.Source, def.Environment, ErrNotFound)
		}
		content = v
	default:
		// content: (possibly empty).
		content = def.Content
	}
	mode := fs.FileMode(0o444)
	if ref.Mode != nil {
		mode = fs.FileMode(*ref.Mode) & fs.ModePerm
	}
	uid, gid := -1, -1
	if ref.UID != "" {
		n, err := strconv.Atoi(ref.UID)
		if err != nil {
			return Mount{}, fmt.Errorf("service %s: %s %q: uid %q is not a number", svc.Name, kind, ref.Source, ref.UID)
		}
		uid = n
	}
	if ref.GID != "" {
		n, err := strconv.Atoi(ref.GID)
		if err != nil {
			return Mount{}, fmt.Errorf("service %s: %s %q: gid %q is not a number", svc.Name, kind, ref.Source, ref.GID)
		}
		gid = n
	}
	if hostPath == "" {
		return m, nil
	}
	if err := writeFileAtomic(hostPath, []byte(content), mode, uid, gid); err != nil {
		return Mount{}, fmt.Errorf("service %s: %s %q: %w", svc.Name, kind, ref.Source, err)
	}
	m.Source = hostPath
	return m, nil
}

// fileTarget is where a secret or config appears in the container.
func fileTarget(kind fileKind, ref spec.FileRef) string {
	t := ref.Target
	if t == "" {
		t = ref.Source
	}
	if path.IsAbs(t) {
		return path.Clean(t)
	}
	if kind == kindSecret {
		return path.Join("/run/secrets", t)
	}
	return path.Join("/", t)
}

// writeFileAtomic writes data to name through a temporary file, fsync and rename, with mode
// and (when not -1) owner uid/gid, creating its directory.
func writeFileAtomic(name string, data []byte, mode fs.FileMode, uid, gid int) (err error) {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(name)+"-")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if uid != -1 || gid != -1 {
		if err := f.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return fmt.Errorf("rename %s: %w", name, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}
