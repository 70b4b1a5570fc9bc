package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
)

// ValidationCache remembers inputs that passed compose-go's schema validation, so that loading
// the same files with the same environment again skips it. Validation is the largest part of a
// load (compiling the Compose JSON schema alone takes 20-40 ms per process), and it is a pure
// function of the files' bytes and the environment they are interpolated with: the same inputs
// pass again. Only successes are remembered; a failed or changed input is always validated.
type ValidationCache interface {
	Validated(key string) bool
	MarkValidated(key string)
}

// validationKeyVersion changes whenever what the key covers changes; the compose-go version
// built into the binary (composeGoVersion) is part of the key too, so a new release of the
// validator never trusts entries made by an older one.
const validationKeyVersion = "berth-compose-validated-1"

// composeGoVersion is the version of compose-go this binary was built with ("" when the build
// carries no module information, e.g. in some test binaries).
func composeGoVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, m := range bi.Deps {
		if m.Path == "github.com/compose-spec/compose-go/v2" {
			if m.Replace != nil {
				return m.Replace.Path + "@" + m.Replace.Version
			}
			return m.Version
		}
	}
	return ""
}

// validationKey hashes everything validation depends on: the compose files' contents, the
// project directory and name, and the environment after .env files were merged. It returns ""
// (do not cache) when a file cannot be read, is not a regular file (reading a pipe would
// consume it), or may pull in other files (`include`, `extends`), whose contents the key would
// not cover.
func validationKey(r *resolved) string {
	h := sha256.New()
	h.Write([]byte(validationKeyVersion + "\x00" + composeGoVersion() + "\x00" + r.dir + "\x00" + r.name + "\x00"))
	contents, ok := cacheableFiles(r.files)
	if !ok {
		return ""
	}
	for i, f := range r.files {
		b := contents[i]
		h.Write([]byte(f + "\x00" + strconv.Itoa(len(b)) + "\x00"))
		h.Write(b)
	}
	keys := make([]string, 0, len(r.env))
	for k := range r.env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		h.Write([]byte(k + "=" + r.env[k] + "\x00"))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// DirValidationCache keeps one empty file per validated input in a directory. It is best
// effort: an unreadable or unwritable directory only means validation runs every time.
type DirValidationCache struct {
	Dir string
	// Max bounds the number of entries; when it is exceeded the directory is emptied
	// (0: 512).
	Max int
}

func (c DirValidationCache) Validated(key string) bool {
	if c.Dir == "" || key == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(c.Dir, key))
	return err == nil
}

func (c DirValidationCache) MarkValidated(key string) {
	if c.Dir == "" || key == "" {
		return
	}
	if !makeRoomIn(c.Dir, c.Max, 512) {
		return
	}
	if f, err := os.OpenFile(filepath.Join(c.Dir, key), os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		f.Close()
	}
}

// makeRoomIn creates a cache directory and empties it when it holds max entries (def when max
// is 0), the bound of both caches: crude, but a cache that is emptied now and then costs one
// slower load. It reports whether the directory can take an entry.
func makeRoomIn(dir string, max, def int) bool {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false
	}
	if max <= 0 {
		max = def
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) >= max {
		for _, e := range ents {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return true
}

// cacheableFiles reads the compose files for a cache key; ok is false when the load must not
// be cached: stdin, a file that is not regular (reading a pipe would consume it) or cannot be
// read, or one that may pull in other files (`include`, `extends`) the key would not cover.
func cacheableFiles(files []string) (contents [][]byte, ok bool) {
	for _, f := range files {
		if f == "-" {
			return nil, false
		}
		b, ok := readRegular(f)
		if !ok || pullsInFiles(b) {
			return nil, false
		}
		contents = append(contents, b)
	}
	return contents, true
}
