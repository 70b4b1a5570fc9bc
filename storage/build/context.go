package build

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// buildContext is the build context directory with its .dockerignore rules.
type buildContext struct {
	dir     string
	t       tree
	ignore  *patternmatcher.PatternMatcher // nil: nothing excluded
	ignName string                         // which ignore file applied
}

// openContext opens the context directory. The ignore file is <Dockerfile>.dockerignore next
// to the Dockerfile if it exists, else <context>/.dockerignore, as Docker does.
func openContext(dir, dockerfile string) (*buildContext, error) {
	if dir == "" {
		return nil, fmt.Errorf("build context: no directory given: %w", ErrSource)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("build context %s: not a directory", dir)
	}
	c := &buildContext{dir: abs, t: tree{dirs: []string{abs}}}
	candidates := []string{filepath.Join(abs, ".dockerignore")}
	if dockerfile != "" {
		candidates = append([]string{dockerfile + ".dockerignore"}, candidates...)
	}
	for _, p := range candidates {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		pats, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %v: %w", p, err, ErrSyntax)
		}
		if len(pats) > 0 {
			pm, err := patternmatcher.New(pats)
			if err != nil {
				return nil, fmt.Errorf("%s: %v: %w", p, err, ErrSyntax)
			}
			c.ignore, c.ignName = pm, filepath.Base(p)
		}
		break
	}
	return c, nil
}

// excluded reports whether rel (a context path) is excluded by the ignore file, itself or
// through a parent directory.
func (c *buildContext) excluded(rel string) bool {
	if c.ignore == nil || rel == "" {
		return false
	}
	m, err := c.ignore.MatchesOrParentMatches(rel)
	return err == nil && m
}

// ExtractContext unpacks a build context tar (from `berth image build -`) into dir, which
// must exist. Paths are kept inside dir; links are created as they are (resolved inside the
// context later). Device nodes are skipped. When r is not a tar but text, it is taken as the
// Dockerfile (written as dir/Dockerfile) with an empty context, as `docker build -` does.
func ExtractContext(ctx context.Context, r io.Reader, dir string) error {
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(512)
	if len(head) < 512 || !looksLikeTar(head) {
		if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
			return extractTar(ctx, br, dir)
		}
		f, err := os.OpenFile(filepath.Join(dir, "Dockerfile"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("build context: %w", err)
		}
		_, err = io.Copy(f, br)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return extractTar(ctx, br, dir)
}

func looksLikeTar(h []byte) bool {
	return len(h) >= 512 && (string(h[257:262]) == "ustar")
}

func extractTar(ctx context.Context, r io.Reader, dir string) error {
	rr, done, err := decompressReader(r)
	if err != nil {
		return err
	}
	defer done()
	tr := tar.NewReader(rr)
	for n := 0; ; n++ {
		if n%256 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("build context tar: %w", err)
		}
		name := path.Clean("/" + hdr.Name)
		if name == "/" {
			continue
		}
		rel := strings.TrimPrefix(name, "/")
		t := tree{dirs: []string{dir}}
		// Resolve the parent inside dir so that a symlink entry cannot redirect writes outside.
		parent, err := t.resolve(path.Dir(rel), true)
		if err != nil {
			return fmt.Errorf("build context tar %q: %w", hdr.Name, err)
		}
		target := filepath.Join(dir, filepath.FromSlash(parent), path.Base(rel))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := fs.FileMode(hdr.Mode) & fs.ModePerm
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg, tar.TypeRegA:
			os.Remove(target)
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			os.Chmod(target, mode)
		case tar.TypeSymlink:
			os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src, err := t.resolve(path.Clean("/"+hdr.Linkname), false)
			if err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Link(filepath.Join(dir, filepath.FromSlash(src)), target); err != nil {
				return fmt.Errorf("build context tar %q: %w", hdr.Name, err)
			}
		}
		if !hdr.ModTime.IsZero() && hdr.Typeflag != tar.TypeSymlink {
			os.Chtimes(target, hdr.ModTime, hdr.ModTime)
		}
	}
}
