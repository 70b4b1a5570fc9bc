package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/sirupsen/logrus"
)

// LoadCache keeps loaded projects, so that loading the same inputs again returns the project
// without running compose-go (yaml decoding, interpolation, merging, canonicalisation: ~50 ms
// for 100 services). An entry is opaque to the cache; Load checks it and treats anything it
// cannot use (missing, corrupt, written by another berth binary) as a miss. Only successful
// loads are stored.
type LoadCache interface {
	// Get returns the entry stored under key, or nil.
	Get(key string) []byte
	// Put stores entry under key, replacing any entry there. It is best effort.
	Put(key string, entry []byte)
}

// loadCacheFormat changes whenever what the key covers or the entry's layout changes. The
// model's type shape (modelShape), the compose-go version and the berth binary itself are part
// of the key too, so a model or conversion change never reads entries made for the old one.
const loadCacheFormat = "berth-compose-loaded-1"

// loadEntry is what a cache entry holds, encoded with the model codec.
type loadEntry struct {
	Key string
	// Warnings are the messages compose-go logged while loading; a hit logs them again.
	Warnings []string
	// Deps are the files the load read besides the compose files (env_file, label_file), with
	// their state then; a hit requires every one to be unchanged.
	Deps    []fileDep
	Project Project
}

type fileDep struct {
	Path  string
	State string // fileState
}

// loadLog serialises a load that records compose-go's warnings against every other load in
// this process: compose-go logs through the global logrus logger, so what is logged while a
// recording load runs is attributed to it only if nothing else loads at the same time.
var loadLog sync.RWMutex

// loadKey hashes everything a load depends on apart from the files compose-go reads on its own
// (fileDeps, checked against the entry): the compose files' contents, the environment after
// .env files, the project directory (and where it leads, which decides a warning), name and
// profiles, $HOME (for "~" in paths), the model's shape, the compose-go version and the berth
// binary. It returns "" (do not cache) when a file cannot be read or may pull in other files
// (include, extends), or when the binary cannot be identified.
func loadKey(r *resolved) string {
	bin := binaryIdentity()
	if bin == "" {
		return ""
	}
	h := sha256.New()
	field := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	field(loadCacheFormat)
	field(modelShape())
	field(composeGoVersion())
	field(bin)
	field(r.dir)
	realDir, err := filepath.EvalSymlinks(r.dir)
	if err != nil {
		realDir = "\x00" + err.Error()
	}
	field(realDir)
	field(r.name)
	field(strconv.Itoa(len(r.profiles)))
	for _, p := range r.profiles {
		field(p)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "\x00"
	}
	field(home)
	field(strconv.Itoa(len(r.files)))
	contents, ok := cacheableFiles(r.files)
	if !ok {
		return ""
	}
	for i, f := range r.files {
		field(f)
		field(string(contents[i]))
	}
	keys := make([]string, 0, len(r.env))
	for k := range r.env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	field(strconv.Itoa(len(keys)))
	for _, k := range keys {
		field(k)
		field(r.env[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// pullsInFiles reports whether a compose file may read other compose files (include, extends),
// whose contents a key would not cover. It errs on the side of yes.
func pullsInFiles(b []byte) bool {
	return bytes.Contains(b, []byte("include")) || bytes.Contains(b, []byte("extends"))
}

// binaryIdentity names the running executable by path, size and modification time: a rebuilt
// or upgraded berth never reads entries written by another build, whatever it changed.
func binaryIdentity() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	fi, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%s\x00%d\x00%d", exe, fi.Size(), fi.ModTime().UnixNano())
}

// readRegular reads a regular file. Anything else (a pipe such as -f <(...), a device) is
// not read: reading it for a key would consume what the load is to read.
func readRegular(path string) ([]byte, bool) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return nil, false
	}
	b, err := os.ReadFile(path)
	return b, err == nil
}

// fileState describes a file a load reads: the digest of its contents, "absent" or "dir".
// ok is false when it is something else or cannot be read (such a load is not cached).
func fileState(path string) (state string, ok bool) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "absent", true
	case err != nil:
		return "", false
	case fi.IsDir():
		return "dir", true
	}
	b, ok := readRegular(path)
	if !ok {
		return "", false
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), true
}

// depRecorder collects the files compose-go and berth read while converting a loaded project:
// env_file and label_file of every service and pre_start hook, enabled or not.
type depRecorder struct {
	deps []fileDep
	ok   bool
}

// record notes the state of every env_file and label_file cp names. It runs before they are
// read, and the states are checked again after the load: a file changed in between is caught.
func (d *depRecorder) record(cp *types.Project) {
	d.ok = true
	seen := map[string]bool{}
	add := func(path string) {
		if seen[path] {
			return
		}
		seen[path] = true
		st, ok := fileState(path)
		if !ok {
			d.ok = false
		}
		d.deps = append(d.deps, fileDep{Path: path, State: st})
	}
	spec := func(c *types.ContainerSpec) {
		for _, ef := range c.EnvFiles {
			add(ef.Path)
		}
		for _, lf := range c.LabelFiles {
			add(lf)
		}
	}
	for _, services := range []types.Services{cp.Services, cp.DisabledServices} {
		for _, name := range sortedKeys(services) {
			s := services[name]
			if s.Develop != nil {
				// develop.watch paths are resolved through symlinks on disk: not covered.
				d.ok = false
			}
			spec(&s.ContainerSpec)
			for i := range s.PreStart {
				spec(&s.PreStart[i].ContainerSpec)
			}
		}
	}
}

// depsUnchanged reports whether every file still has the state recorded.
func depsUnchanged(deps []fileDep) bool {
	for _, d := range deps {
		if st, ok := fileState(d.Path); !ok || st != d.State {
			return false
		}
	}
	return true
}

// warnRecorder is a logrus hook that keeps the warnings logged during a load.
type warnRecorder struct {
	mu    sync.Mutex
	msgs  []string
	other bool // something other than a plain warning was logged: do not cache
}

func (w *warnRecorder) Levels() []logrus.Level { return logrus.AllLevels }

// versionWarning ends the warning compose-go logs for a top-level `version` key. It is logged
// only while validating, once per file and process: a load whose inputs passed validation
// before (see ValidationCache) does not log it, so neither does a hit.
const versionWarning = "the attribute `version` is obsolete, it will be ignored, please remove it to avoid potential confusion"

func (w *warnRecorder) Fire(e *logrus.Entry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case e.Level == logrus.WarnLevel && len(e.Data) == 0 && strings.HasSuffix(e.Message, versionWarning):
	case e.Level == logrus.WarnLevel && len(e.Data) == 0:
		w.msgs = append(w.msgs, e.Message)
	default:
		w.other = true
	}
	return nil
}

// recordWarnings starts keeping what is logged through logrus's standard logger; stop ends it
// and returns the warnings, with ok false when they cannot be replayed faithfully (the logger
// does not print warnings, or logged something else).
func recordWarnings() (stop func() (msgs []string, ok bool)) {
	l := logrus.StandardLogger()
	w := &warnRecorder{}
	enabled := l.IsLevelEnabled(logrus.WarnLevel)
	prev := l.ReplaceHooks(make(logrus.LevelHooks))
	with := make(logrus.LevelHooks, len(prev))
	for lv, hs := range prev {
		with[lv] = slices.Clone(hs)
	}
	with.Add(w)
	l.ReplaceHooks(with)
	return func() ([]string, bool) {
		l.ReplaceHooks(prev)
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.msgs, enabled && !w.other && l.IsLevelEnabled(logrus.WarnLevel)
	}
}

// loadCached is Load with a cache: a hit decodes the project stored under the inputs' key, a
// miss loads as Load does and stores the result when every input it read is covered.
func loadCached(opt Options, r *resolved, load func(deps *depRecorder) (*Project, error)) (*Project, error) {
	key := loadKey(r)
	if key == "" {
		loadLog.RLock()
		defer loadLog.RUnlock()
		return load(nil)
	}
	if p := cachedProject(opt.Loaded, key); p != nil {
		return p, nil
	}

	deps := &depRecorder{}
	var warnings []string
	warnOK := false
	p, err := func() (*Project, error) {
		loadLog.Lock()
		defer loadLog.Unlock()
		stop := recordWarnings()
		defer func() { warnings, warnOK = stop() }()
		return load(deps)
	}()
	if err != nil {
		return nil, err
	}
	if !warnOK || !deps.ok || !depsUnchanged(deps.deps) || loadKey(r) != key {
		// Something read during the load changed under it, or cannot be replayed.
		return p, nil
	}
	if b := encodeEntry(&loadEntry{Key: key, Warnings: warnings, Deps: deps.deps, Project: *p}); b != nil {
		opt.Loaded.Put(key, b)
	}
	return p, nil
}

// cachedProject returns the project stored under key, after checking the entry and the files
// it depends on and logging the warnings the load logged. nil is a miss.
func cachedProject(c LoadCache, key string) *Project {
	b := c.Get(key)
	if b == nil {
		return nil
	}
	e, err := decodeEntry(b)
	if err != nil || e.Key != key || !depsUnchanged(e.Deps) {
		return nil
	}
	// Not while another load records what is logged.
	loadLog.RLock()
	defer loadLog.RUnlock()
	for _, w := range e.Warnings {
		logrus.Warn(w)
	}
	return &e.Project
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeEntry returns e as stored: a CRC-32C of the rest, then the model codec's form. It
// returns nil when e cannot be stored or does not decode back to an equal value.
func encodeEntry(e *loadEntry) []byte {
	b, err := appendModel(make([]byte, 4, 4096), reflect.ValueOf(e).Elem())
	if err != nil {
		return nil
	}
	binary.LittleEndian.PutUint32(b, crc32.Checksum(b[4:], crcTable))
	// The codec is generic: prove it round-trips this value before trusting it with a hit.
	if back, err := decodeEntry(b); err != nil || !reflect.DeepEqual(back, e) {
		return nil
	}
	return b
}

func decodeEntry(b []byte) (*loadEntry, error) {
	if len(b) < 4 || binary.LittleEndian.Uint32(b) != crc32.Checksum(b[4:], crcTable) {
		return nil, fmt.Errorf("%w: bad checksum", errCodec)
	}
	e := &loadEntry{}
	d := modelDecoder{s: string(b[4:])}
	if err := d.value(reflect.ValueOf(e).Elem()); err != nil {
		return nil, err
	}
	if len(d.s) != 0 {
		return nil, fmt.Errorf("%w: %d bytes left over", errCodec, len(d.s))
	}
	return e, nil
}

// DirLoadCache keeps one file per entry in a directory. It is best effort: an unreadable or
// unwritable directory only means every load is a miss. Entries are written to a temporary
// file and renamed into place, so a reader never sees a partial one (a torn write after a
// crash fails the entry's checksum and is a miss).
type DirLoadCache struct {
	Dir string
	// Max bounds the number of entries; when it is reached the directory is emptied (0: 64).
	Max int
}

func (c DirLoadCache) Get(key string) []byte {
	if c.Dir == "" || !validCacheKey(key) {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(c.Dir, key))
	if err != nil {
		return nil
	}
	return b
}

func (c DirLoadCache) Put(key string, entry []byte) {
	if c.Dir == "" || !validCacheKey(key) {
		return
	}
	if !makeRoomIn(c.Dir, c.Max, 64) {
		return
	}
	f, err := os.CreateTemp(c.Dir, ".tmp-"+key[:8]+"-*")
	if err != nil {
		return
	}
	_, werr := f.Write(entry)
	cerr := f.Close()
	if werr != nil || cerr != nil || os.Rename(f.Name(), filepath.Join(c.Dir, key)) != nil {
		_ = os.Remove(f.Name())
	}
}

// validCacheKey accepts the keys loadKey makes (hex digests), so that a key is always a plain
// file name inside the cache directory.
func validCacheKey(key string) bool {
	return len(key) >= 8 && strings.Trim(key, "0123456789abcdef") == ""
}
