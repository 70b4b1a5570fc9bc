package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Importing a tarball the store already holds would unpack it in full before finding its
// layer (the diff ID is known only at the end of the stream). For a regular file, the store
// remembers which diff ID the file had, keyed by what changes whenever its contents do: device,
// inode, size, and modification and change times to the nanosecond, as git's index does. A file
// changed in the same clock tick as its import could keep all of those; as in git, such a "racy"
// entry is not recorded: only files last changed more than racyWindow before the import are.

const (
	racyWindow       = 2 * time.Second
	maxImportRecords = 256
)

// importRecord is what the store remembers of an imported file.
type importRecord struct {
	DiffID  string `json:"diffID"`
	TarSize int64  `json:"tarSize"`
}

// importKey identifies the current contents of r when it is a regular file read from its start
// that last changed more than racy ago; "" otherwise.
func importKey(r io.Reader, racy time.Duration) string {
	f, ok := r.(*os.File)
	if !ok {
		return ""
	}
	if off, err := f.Seek(0, io.SeekCurrent); err != nil || off != 0 {
		return ""
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ""
	}
	changed := time.Unix(st.Ctim.Unix())
	if racy == 0 {
		racy = racyWindow
	}
	if time.Since(changed) < racy {
		return ""
	}
	h := sha256.Sum256(fmt.Appendf(nil, "import-v1\x00%d\x00%d\x00%d\x00%d.%d\x00%d.%d",
		st.Dev, st.Ino, st.Size, st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec))
	return hex.EncodeToString(h[:])
}

func (s *Store) importRecordPath(key string) string {
	return filepath.Join(s.root, "cache", "import", key)
}

// importedBefore returns what the file with key held when it was imported, if it was.
func (s *Store) importedBefore(key string) (importRecord, bool) {
	var rec importRecord
	if key == "" {
		return rec, false
	}
	b, err := os.ReadFile(s.importRecordPath(key))
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.DiffID == "" {
		return rec, false
	}
	return rec, true
}

// rememberImport records what the file with key held (best effort: a lost record costs one
// slower re-import).
func (s *Store) rememberImport(key string, rec importRecord) {
	if key == "" {
		return
	}
	dir := filepath.Dir(s.importRecordPath(key))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) >= maxImportRecords {
		for _, e := range ents { // crude bound: forgetting costs one slower re-import each
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	_ = writeFileAtomic(s.importRecordPath(key), b, 0o600)
}
