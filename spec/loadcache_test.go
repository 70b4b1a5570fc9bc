package spec

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"
)

// memLoadCache is a LoadCache in memory that counts what is stored.
type memLoadCache struct {
	entries map[string][]byte
	puts    int
}

func newMemLoadCache() *memLoadCache { return &memLoadCache{entries: map[string][]byte{}} }

func (c *memLoadCache) Get(key string) []byte { return c.entries[key] }

func (c *memLoadCache) Put(key string, entry []byte) {
	c.puts++
	c.entries[key] = entry
}

// composeFixtures returns every directory under testdata/ that holds YAML files, with those
// files (compose files or not: what does not load is not compared).
func composeFixtures(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := d.Name()
		if !d.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			out[filepath.Dir(path)] = append(out[filepath.Dir(path)], path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLoadCacheMatchesUncached loads every compose fixture that loads at all without the cache,
// then with it (a miss, then a hit), and requires the very same project each time. Fixtures
// that fail must fail the same way with the cache, and store nothing.
func TestLoadCacheMatchesUncached(t *testing.T) {
	ctx := context.Background()
	var loaded, hits, failed int
	for dir, files := range composeFixtures(t) {
		opts := []Options{{WorkingDir: dir}, {WorkingDir: dir, Profiles: []string{"*"}}}
		for _, f := range files {
			opts = append(opts, Options{WorkingDir: dir, Files: []string{f}}, Options{WorkingDir: dir, Files: []string{f}, Profiles: []string{"*"}})
		}
		for _, opt := range opts {
			opt.Environ = []string{"HOME=/root", "TAG=1.2"}
			want, err := Load(ctx, opt)
			if err != nil {
				failed++
				c := newMemLoadCache()
				opt.Loaded = c
				// Which of several errors compose-go reports first can vary from load to
				// load (map order), so compare the classes.
				for i := 0; i < 2; i++ {
					_, cerr := Load(ctx, opt)
					if cerr == nil || errors.Is(cerr, ErrInvalid) != errors.Is(err, ErrInvalid) || errors.Is(cerr, ErrNotFound) != errors.Is(err, ErrNotFound) {
						t.Fatalf("%s %v: with the cache: %v; without: %v", dir, opt.Files, cerr, err)
					}
				}
				if c.puts != 0 {
					t.Fatalf("%s %v: a failed load was stored", dir, opt.Files)
				}
				continue
			}
			loaded++
			c := newMemLoadCache()
			opt.Loaded = c
			miss, err := Load(ctx, opt)
			if err != nil {
				t.Fatalf("%s %v: load with cache: %v", dir, opt.Files, err)
			}
			if !reflect.DeepEqual(miss, want) {
				t.Fatalf("%s %v: miss differs from uncached load:\n%s", dir, opt.Files, cmp.Diff(want, miss))
			}
			stored := c.puts
			hit, err := Load(ctx, opt)
			if err != nil {
				t.Fatalf("%s %v: load from cache: %v", dir, opt.Files, err)
			}
			if !reflect.DeepEqual(hit, want) {
				t.Fatalf("%s %v: hit differs from uncached load:\n%s", dir, opt.Files, cmp.Diff(want, hit))
			}
			if c.puts != stored {
				t.Fatalf("%s %v: unchanged inputs missed the cache", dir, opt.Files)
			}
			if stored == 1 {
				hits++
			}
		}
	}
	t.Logf("%d fixture loads compared, %d served from the cache; %d failing loads compared", loaded, hits, failed)
	if loaded < 40 || hits < loaded/2 {
		t.Fatalf("only %d fixture loads, %d hits: the test no longer covers the fixtures", loaded, hits)
	}
}

// TestLoadCacheMisses changes one input at a time: each is a miss that returns the new content.
func TestLoadCacheMisses(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("compose.yaml", `services:
  web:
    image: busybox:${TAG}
    env_file: [app.env, {path: opt.env, required: false}]
    label_file: [app.labels]
  debug:
    image: busybox
    profiles: [debug]
`)
	write("app.env", "A=1\n")
	write("app.labels", "team=a\n")
	c := newMemLoadCache()
	opt := Options{WorkingDir: dir, Environ: []string{"TAG=1"}, Loaded: c}
	check := func(step string, wantPuts int, f func(p *Project) string) {
		t.Helper()
		p, err := Load(ctx, opt)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if c.puts != wantPuts {
			t.Fatalf("%s: %d entries stored, want %d", step, c.puts, wantPuts)
		}
		if msg := f(p); msg != "" {
			t.Fatalf("%s: %s", step, msg)
		}
		uncached := opt
		uncached.Loaded = nil
		want, err := Load(ctx, uncached)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p, want) {
			t.Fatalf("%s: cached load differs:\n%s", step, cmp.Diff(want, p))
		}
	}
	web := func(p *Project) Service { s, _ := p.Service("web"); return s }
	expect := func(got, want string) string {
		if got != want {
			return "got " + got + ", want " + want
		}
		return ""
	}

	check("first load", 1, func(p *Project) string { return expect(web(p).Image, "busybox:1") })
	check("same inputs", 1, func(p *Project) string { return expect(web(p).Environment["A"], "1") })

	write("compose.yaml", strings.Replace(string(must(os.ReadFile(filepath.Join(dir, "compose.yaml")))), "image: busybox:${TAG}", "image: alpine:${TAG}", 1))
	check("compose file changed", 2, func(p *Project) string { return expect(web(p).Image, "alpine:1") })

	write("app.env", "A=2\n")
	check("env_file changed", 3, func(p *Project) string { return expect(web(p).Environment["A"], "2") })

	write("opt.env", "B=3\n")
	check("optional env_file appeared", 4, func(p *Project) string { return expect(web(p).Environment["B"], "3") })

	write("app.labels", "team=b\n")
	check("label_file changed", 5, func(p *Project) string { return expect(web(p).Labels["team"], "b") })

	opt.Environ = []string{"TAG=2"}
	check("environment changed", 6, func(p *Project) string { return expect(web(p).Image, "alpine:2") })

	write(".env", "TAG=3\n")
	opt.Environ = []string{}
	check(".env changed", 7, func(p *Project) string { return expect(web(p).Image, "alpine:3") })

	opt.Profiles = []string{"debug"}
	check("profiles changed", 8, func(p *Project) string {
		return expect(strings.Join(p.ServiceNames(), ","), "debug,web")
	})

	opt.ProjectName = "other"
	check("project name changed", 9, func(p *Project) string { return expect(p.Name, "other") })
	check("same inputs again", 9, func(p *Project) string { return expect(p.Name, "other") })

	// A required env_file that disappeared fails as without the cache.
	if err := os.Remove(filepath.Join(dir, "app.env")); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(ctx, opt); !errors.Is(err, ErrInvalid) {
		t.Fatalf("missing env_file: err %v, want ErrInvalid", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestLoadCacheNeverStoresErrors(t *testing.T) {
	dir := t.TempDir()
	f := writeCompose(t, dir, "services:\n  web:\n    image: busybox\n    bogus_key: 1\n")
	c := newMemLoadCache()
	for i := 0; i < 2; i++ {
		_, err := Load(context.Background(), Options{Files: []string{f}, Environ: []string{}, Loaded: c})
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("load %d: err %v, want ErrInvalid", i, err)
		}
	}
	if c.puts != 0 {
		t.Fatalf("an error was stored")
	}
}

func TestLoadCacheSkipsFilesThatPullInOthers(t *testing.T) {
	c := newMemLoadCache()
	for _, name := range []string{"include", "extends"} {
		load(t, Options{WorkingDir: fixture(t, name), Loaded: c})
	}
	dir := t.TempDir()
	writeCompose(t, dir, "services:\n  web:\n    image: busybox\n    develop:\n      watch: [{path: ./src, action: sync, target: /src}]\n")
	load(t, Options{WorkingDir: dir, Loaded: c})
	if c.puts != 0 {
		t.Fatalf("%d entries stored for loads that read files the key does not cover", c.puts)
	}
	if k := loadKey(&resolved{files: []string{"-"}, dir: dir}); k != "" {
		t.Fatalf("key for stdin: %q, want none", k)
	}
}

// TestLoadCacheReplaysWarnings requires a hit to log what compose-go logged on the miss.
func TestLoadCacheReplaysWarnings(t *testing.T) {
	var buf bytes.Buffer
	l := logrus.StandardLogger()
	out, formatter, level := l.Out, l.Formatter, l.GetLevel()
	l.SetOutput(&buf)
	l.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableQuote: true})
	l.SetLevel(logrus.WarnLevel)
	t.Cleanup(func() { l.SetOutput(out); l.SetFormatter(formatter); l.SetLevel(level) })

	dir := t.TempDir()
	writeCompose(t, dir, "version: \"3\"\nservices:\n  web:\n    image: busybox:${UNSET}\n    tty: yes\n")
	v := &recordingCache{valid: map[string]bool{}}
	c := newMemLoadCache()
	var logs []string
	// As cmd wires it: the validation cache with the load cache. The first load validates
	// (and warns about version); later ones, cached or not, do not validate again.
	for i, cached := range []bool{false, false, true, true} {
		opt := Options{WorkingDir: dir, Environ: []string{}, Validated: v}
		if cached {
			opt.Loaded = c
		}
		buf.Reset()
		load(t, opt)
		lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
		slices.Sort(lines) // compose-go warns in map order
		logs = append(logs, strings.Join(lines, "\n"))
		if i == 0 && !strings.Contains(logs[0], "obsolete") {
			t.Fatalf("first load logged %q; want the version warning", logs[0])
		}
	}
	if c.puts != 1 {
		t.Fatalf("%d entries stored, want 1", c.puts)
	}
	if !strings.Contains(logs[1], "UNSET") || !strings.Contains(logs[1], "boolean") {
		t.Fatalf("uncached load logged %q; want the variable and boolean warnings", logs[1])
	}
	if logs[2] != logs[1] || logs[3] != logs[1] {
		t.Fatalf("warnings differ:\nuncached: %q\nmiss:     %q\nhit:      %q", logs[1], logs[2], logs[3])
	}
}

func TestDirLoadCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeCompose(t, dir, "services:\n  web:\n    image: busybox\n")
	c := DirLoadCache{Dir: filepath.Join(t.TempDir(), "loaded"), Max: 2}
	opt := Options{WorkingDir: dir, Environ: []string{}, Loaded: c}
	want := load(t, opt)
	ents, err := os.ReadDir(c.Dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("cache dir: %v entries, err %v; want 1", len(ents), err)
	}
	entry := filepath.Join(c.Dir, ents[0].Name())
	good, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	// A damaged entry is a miss that loads the project again and replaces the entry.
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	for name, b := range map[string][]byte{"truncated": good[:len(good)/2], "flipped": flipped, "empty": {}} {
		if err := os.WriteFile(entry, b, 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := Load(ctx, opt)
		if err != nil {
			t.Fatalf("%s entry: %v", name, err)
		}
		if !reflect.DeepEqual(p, want) {
			t.Fatalf("%s entry: project differs", name)
		}
		if b, _ := os.ReadFile(entry); !bytes.Equal(b, good) {
			t.Fatalf("%s entry was not replaced", name)
		}
	}
	// Bounded: storing past Max empties the directory first.
	for _, tag := range []string{"a", "b"} {
		load(t, Options{WorkingDir: dir, Environ: []string{"X=" + tag}, Loaded: c})
	}
	if ents, _ := os.ReadDir(c.Dir); len(ents) > 2 {
		t.Fatalf("%d entries, Max 2", len(ents))
	}
	if (DirLoadCache{}).Get("abcdef01") != nil {
		t.Fatal("cache without a directory returned an entry")
	}
	if (DirLoadCache{Dir: c.Dir}).Get("../x") != nil {
		t.Fatal("a key that is not a digest was read")
	}
}

// TestModelCodecFaithful round-trips values encoding/gob and encoding/json would change.
func TestModelCodecFaithful(t *testing.T) {
	f, tr := false, true
	zero := time.Duration(0)
	var mode uint32
	p := &Project{
		Name: "p\xff\xfe", // not UTF-8
		Services: []Service{{Name: "a", Command: []string{}, Init: &f, StopGracePeriod: &zero, Environment: map[string]string{}, Secrets: []FileRef{{Mode: &mode}},
			Resources: Resources{CPUs: 0.1, MemSwapLimit: -1},
			Extensions: map[string]any{
				"x-int": 1, "x-i64": int64(math.MinInt64), "x-u64": uint64(math.MaxUint64), "x-f": 1.5, "x-s": "s", "x-b": true,
				"x-nil": nil, "x-list": []any{1, "a", nil, []any{}}, "x-map": map[string]any{"k": map[string]any{}}, "x-nil-list": []any(nil),
			}},
			{Name: "b", Init: &tr, Networks: nil}},
		DisabledServices: nil,
		Networks:         map[string]Network{"default": {IPAM: []IPAMConfig{}}},
	}
	b, err := encodeProject(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeProject(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip differs:\n%s", cmp.Diff(p, back))
	}
	for i := range b {
		// Any truncation is an error, never a panic.
		if _, err := decodeProject(b[:i]); err == nil {
			t.Fatalf("decoding %d of %d bytes succeeded", i, len(b))
		}
	}
	// A type the codec does not know is refused, not stored wrongly.
	p.Services[0].Extensions["x-t"] = time.Now()
	if _, err := encodeProject(p); !errors.Is(err, errCodec) {
		t.Fatalf("encoding a time.Time: err %v, want errCodec", err)
	}
}
