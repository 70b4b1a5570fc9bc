package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// fileHasher hashes file contents, remembering the digests of context files by inode, size,
// mtime and ctime so that an unchanged rebuild does not read a large context again. The times
// only decide whether to re-read a file; the cache key uses the content digest alone.
// The memory lives in <CacheDir>/.hashes-<context digest>.json (Prune drops it).
type fileHasher struct {
	root  string // only files under root are remembered
	path  string
	m     map[string]hashEntry
	dirty bool
	buf   []byte
}

type hashEntry struct {
	Ino   uint64 `json:"i"`
	Size  int64  `json:"s"`
	Mtime int64  `json:"m"`
	Ctime int64  `json:"c"`
	Sum   string `json:"h"`
}

func newFileHasher(cacheDir, contextDir string) *fileHasher {
	d := sha256.Sum256([]byte(contextDir))
	h := &fileHasher{
		root: contextDir + string(filepath.Separator),
		path: filepath.Join(cacheDir, ".hashes-"+hex.EncodeToString(d[:8])+".json"),
		m:    map[string]hashEntry{},
		buf:  make([]byte, 128<<10),
	}
	if b, err := os.ReadFile(h.path); err == nil {
		json.Unmarshal(b, &h.m)
	}
	return h
}

// sum returns the sha256 of the file's content.
func (h *fileHasher) sum(p string) ([]byte, error) {
	remember := h != nil && strings.HasPrefix(p, h.root)
	var key hashEntry
	if remember {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return nil, err
		}
		key = hashEntry{Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
		if e, ok := h.m[p]; ok && e.Ino == key.Ino && e.Size == key.Size && e.Mtime == key.Mtime && e.Ctime == key.Ctime {
			if s, err := hex.DecodeString(e.Sum); err == nil && len(s) == sha256.Size {
				return s, nil
			}
		}
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fh := sha256.New()
	var buf []byte
	if h != nil {
		buf = h.buf
	} else {
		buf = make([]byte, 128<<10)
	}
	if _, err := io.CopyBuffer(fh, f, buf); err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	s := fh.Sum(nil)
	if remember {
		key.Sum = hex.EncodeToString(s)
		h.m[p] = key
		h.dirty = true
	}
	return s, nil
}

// save writes the remembered digests back (best effort: losing them only costs time).
func (h *fileHasher) save() {
	if h == nil || !h.dirty {
		return
	}
	// Concurrent builds of the same context share the file: keep what they remembered too.
	merged := map[string]hashEntry{}
	if b, err := os.ReadFile(h.path); err == nil {
		json.Unmarshal(b, &merged)
	}
	for k, v := range h.m {
		merged[k] = v
	}
	b, err := json.Marshal(merged)
	if err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(h.path), ".tmp-")
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), h.path)
	}
	if err != nil {
		os.Remove(f.Name())
		return
	}
	h.dirty = false
}
