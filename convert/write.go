package convert

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// WriteDir writes one file per object into dir (created if missing), named by
// Object.FileName, each crash-safely (temp file, fsync, rename). Files a previous run wrote
// for objects that no longer exist are removed, so that `kubectl apply -f dir` does not
// bring them back; other files are left alone.
func WriteDir(dir string, objs []Object, format string) error {
	if format == "" {
		format = FormatYAML
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	keep := map[string]bool{}
	for _, o := range objs {
		b, err := o.Marshal(format)
		if err != nil {
			return err
		}
		name := o.FileName(format)
		keep[name] = true
		if err := writeFileAtomic(filepath.Join(dir, name), b); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list output directory: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || keep[e.Name()] || !isOurFileName(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read stale output: %w", err)
		}
		if !writtenByBerth(b) {
			continue
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("remove stale output: %w", err)
		}
	}
	return nil
}

// isOurFileName reports whether name has the shape FileName gives: "<name>-<kind>.<format>".
func isOurFileName(name string) bool {
	for _, f := range []string{FormatYAML, FormatJSON} {
		base, ok := strings.CutSuffix(name, "."+f)
		if !ok {
			continue
		}
		for _, k := range kindOrder {
			if strings.HasSuffix(base, "-"+strings.ToLower(k)) {
				return true
			}
		}
	}
	return false
}

func writtenByBerth(b []byte) bool {
	return bytes.Contains(b, []byte(labelManagedBy+": berth")) ||
		bytes.Contains(b, []byte(`"`+labelManagedBy+`": "berth"`))
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
