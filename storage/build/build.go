// Package build builds images from Dockerfiles into a storage.Store.
//
// A build parses the Dockerfile with buildkit's parser, then runs the stages the target needs,
// instruction by instruction. Metadata instructions (ENV, LABEL, CMD, ...) only change the
// image config kept in memory. COPY, ADD and a WORKDIR that must create its directory make a
// layer tar directly from the build context (or another stage's or image's layers, read
// through their unpacked directories), so they need neither root nor a container. RUN mounts
// the current image (storage's overlay Mount), runs the command through the Runner the caller
// provides, and turns the container's writable layer into the next layer.
//
// Every layer step commits an (untagged) image whose ID is recorded in the build cache under a
// key made of the parent image ID, the image config at that point, the instruction with its
// arguments expanded, and, for COPY and ADD, a hash of the sources' content, modes and
// ownership (not their times). An unchanged rebuild finds every step in the cache and
// creates nothing. Cache entries are untagged images in the store; storage's GC keeps them
// like any image until Prune removes them.
//
// Build results are recorded too (<key>.final), so that an unchanged rebuild returns the same
// image ID; Prune forgets them without deleting those images.
//
// On disk: <CacheDir>/<key hex>[.final] holds the image ID of a step (written atomically);
// <CacheDir>/.hashes-*.json remembers content digests of context files by inode, size, mtime
// and ctime, so unchanged files are not read again. CacheDir defaults to
// <store root>/buildcache.
package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berth-dev/berth/storage"
)

// Error classes; test with errors.Is.
var (
	ErrSyntax      = errors.New("dockerfile error")
	ErrUnsupported = errors.New("not supported")
	ErrSource      = errors.New("build source not found")
	ErrStepFailed  = errors.New("build step failed")
	ErrNoRunner    = errors.New("RUN steps are not available")
	ErrBaseImage   = errors.New("base image not found")
)

// Error is a failure of one Dockerfile instruction (or of parsing one). It names the file and
// line; ExitCode is the command's exit code for a failing RUN.
type Error struct {
	File        string // Dockerfile name as given
	Line        int    // 1-based; 0 when unknown
	Instruction string // the instruction as written, e.g. "COPY bin/web /web"
	ExitCode    int    // RUN: the command's exit code (non-zero); otherwise 0
	Output      string // RUN: the last lines of the command's output
	Err         error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Instruction != "" {
		fmt.Fprintf(&b, ": %s", e.Instruction)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if e.Output != "" {
		b.WriteString("\n  output (last lines):\n")
		for _, l := range strings.Split(strings.TrimRight(e.Output, "\n"), "\n") {
			b.WriteString("    " + l + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

func (e *Error) Unwrap() error { return e.Err }

// Store is what a build needs from the image store; *storage.Store satisfies it.
type Store interface {
	Resolve(ctx context.Context, ref string) (storage.Image, error)
	Create(ctx context.Context, opt storage.CreateOptions) (storage.Image, error)
	Tag(ctx context.Context, source, ref string) error
	LayerPath(chainID string) string
	Root() string
}

// Mounter is the optional capability of a Store that RUN steps need: an overlay mount of an
// image with a writable layer that becomes a new image. *storage.Store satisfies it.
type Mounter interface {
	Mount(ctx context.Context, containerID, imageID string) (string, error)
	Unmount(ctx context.Context, containerID string) error
	UpperDir(containerID string) string
	CreateFromDir(ctx context.Context, parent, upper string, opt storage.CreateOptions) (storage.Image, error)
	RemoveContainerLayer(ctx context.Context, containerID string) error
}

// Puller is the optional capability of a Store to fetch a base image missing locally (or
// always, with Options.Pull). *storage.Store satisfies it.
type Puller interface {
	Pull(ctx context.Context, ref string, opt storage.PullOptions) (storage.Image, error)
}

// Unpacker is the optional capability of a Store whose pulled images are unpacked on first use:
// Unpack unpacks an image's layers before the build reads their files. *storage.Store
// satisfies it.
type Unpacker interface {
	Unpack(ctx context.Context, ref string) error
}

// RunSpec is one RUN step's process: run Args in the mounted Rootfs.
type RunSpec struct {
	Rootfs     string
	Args       []string
	Env        []string
	WorkingDir string
	User       string
	Network    string // "none", "host" or "default"
	Stdout     io.Writer
	Stderr     io.Writer
}

// Runner runs RUN steps. It returns the process's exit code; err is for failures to run it.
type Runner interface {
	Run(ctx context.Context, spec RunSpec) (exitCode int, err error)
}

// Options describe one build.
type Options struct {
	ContextDir       string            // the build context directory
	Dockerfile       string            // path, relative to ContextDir unless absolute; "" = Dockerfile
	DockerfileInline string            // Dockerfile content; overrides Dockerfile
	Args             map[string]string // --build-arg
	Target           string            // stage to build; "" = the last
	Tags             []string          // names for the result
	Labels           map[string]string // added to the result's labels
	NoCache          bool              // ignore the build cache (results are still recorded)
	Pull             bool              // pull base images even when present locally
	Network          string            // RUN network: "default", "none" or "host"; "" = default
	Progress         io.Writer         // plain progress lines; nil = discard
	Name             string            // prefix for progress lines (e.g. the service name)
	CacheDir         string            // "" = <store root>/buildcache
	Platform         string            // requested target platform; "" = the host's
	PullOptions      storage.PullOptions
}

// DefaultPath is the PATH a scratch stage starts with, as Docker's builder sets it.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Build builds the Dockerfile described by opt and returns the image ID of the result, tagged
// with opt.Tags. runner may be nil when the Dockerfile has no RUN step (an error names the
// step otherwise).
func Build(ctx context.Context, store Store, runner Runner, opt Options) (string, error) {
	start := time.Now()
	if opt.Network == "" {
		opt.Network = "default"
	}
	switch opt.Network {
	case "default", "none", "host":
	default:
		return "", fmt.Errorf("network %q: use default, none or host: %w", opt.Network, ErrUnsupported)
	}
	if opt.CacheDir == "" {
		opt.CacheDir = filepath.Join(store.Root(), "buildcache")
	}
	if err := os.MkdirAll(opt.CacheDir, 0o700); err != nil {
		return "", fmt.Errorf("build cache: %w", err)
	}
	name, content, err := readDockerfile(opt)
	if err != nil {
		return "", err
	}
	df, err := parseDockerfile(name, content)
	if err != nil {
		return "", err
	}
	bctx, err := openContext(opt.ContextDir, dockerfilePath(opt))
	if err != nil {
		return "", err
	}
	pw := opt.Progress
	if pw == nil {
		pw = io.Discard
	}
	b := &builder{
		store: store, runner: runner, opt: opt, df: df, bctx: bctx,
		cache: cache{dir: opt.CacheDir}, out: &progress{w: pw, prefix: opt.Name},
		stageState: map[int]*state{},
		hasher:     newFileHasher(opt.CacheDir, bctx.dir),
	}
	defer b.hasher.save()
	for _, w := range df.warnings {
		b.out.printf("WARNING: %s", w)
	}
	id, err := b.build(ctx)
	if err != nil {
		return "", err
	}
	b.out.printf("DONE %s in %.1fs", shortID(id), time.Since(start).Seconds())
	return id, nil
}

func dockerfilePath(opt Options) string {
	if opt.DockerfileInline != "" {
		return ""
	}
	p := opt.Dockerfile
	if p == "" {
		p = "Dockerfile"
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(opt.ContextDir, p)
	}
	return p
}

func readDockerfile(opt Options) (string, []byte, error) {
	if opt.DockerfileInline != "" {
		return "Dockerfile (inline)", []byte(opt.DockerfileInline), nil
	}
	p := dockerfilePath(opt)
	b, err := os.ReadFile(p)
	if err != nil {
		return "", nil, fmt.Errorf("read Dockerfile %s: %w", p, err)
	}
	shown := opt.Dockerfile
	if shown == "" {
		shown = "Dockerfile"
	}
	if filepath.IsAbs(shown) {
		// Name it as the user most likely wrote it: relative to the current directory.
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, shown); err == nil && !strings.HasPrefix(rel, "..") {
				shown = rel
			}
		}
	}
	return shown, b, nil
}

// builder is one running build.
type builder struct {
	store      Store
	runner     Runner
	opt        Options
	df         *dockerfile
	bctx       *buildContext
	cache      cache
	out        *progress
	stageState map[int]*state // finished stages
	usedArgs   map[string]bool
	hasher     *fileHasher
}

func (b *builder) build(ctx context.Context) (string, error) {
	target := len(b.df.stages) - 1
	if b.opt.Target != "" {
		target = -1
		for i, s := range b.df.stages {
			if strings.EqualFold(s.name, b.opt.Target) {
				target = i
			}
		}
		if target < 0 {
			var names []string
			for _, s := range b.df.stages {
				if s.name != "" {
					names = append(names, s.name)
				}
			}
			return "", &Error{File: b.df.name, Err: fmt.Errorf("target stage %q not found (stages: %s): %w", b.opt.Target, strings.Join(names, ", "), ErrSyntax)}
		}
	}
	b.usedArgs = map[string]bool{}
	meta, err := b.metaArgs()
	if err != nil {
		return "", err
	}
	needed, err := b.neededStages(target, meta)
	if err != nil {
		return "", err
	}
	for i := 0; i <= target; i++ {
		if !needed[i] {
			continue
		}
		st, err := b.runStage(ctx, i, meta)
		if err != nil {
			return "", err
		}
		b.stageState[i] = st
	}
	var unused []string
	for k := range b.opt.Args {
		if !b.usedArgs[k] && !predefinedArgs[k] {
			unused = append(unused, k)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		b.out.printf("WARNING: build arguments not consumed by any ARG: %s", strings.Join(unused, ", "))
	}
	return b.finish(ctx, b.stageState[target])
}

// finish commits the target stage's config (with opt.Labels) as the result and tags it.
func (b *builder) finish(ctx context.Context, st *state) (string, error) {
	cfg := st.cfg
	if len(b.opt.Labels) > 0 {
		labels := map[string]string{}
		for k, v := range cfg.Labels {
			labels[k] = v
		}
		for k, v := range b.opt.Labels {
			labels[k] = v
		}
		cfg.Labels = labels
		st.dirty = true
	}
	st.cfg = cfg
	id := st.image
	key := stepKey(st.image, st.cfg, "final", strings.Join(st.pending, "\n")) + finalSuffix
	if !st.dirty && id != "" {
		if b.cache.get(key) != id {
			b.cache.put(key, id) // the last step's image is the result: mark it as one
		}
	} else {
		if hit, ok := b.lookup(ctx, key); ok {
			id = hit.ID
		} else {
			img, err := b.store.Create(ctx, storage.CreateOptions{
				Parent: st.image, Config: st.cfg, CreatedBy: strings.Join(st.pending, "; ") + " # berth",
				Comment: "berth build", Author: st.author,
			})
			if err != nil {
				return "", fmt.Errorf("write image: %w", err)
			}
			id = img.ID
			b.cache.put(key, id)
		}
	}
	b.out.printf("writing image %s", id)
	for _, t := range b.opt.Tags {
		if cur, err := b.store.Resolve(ctx, t); err == nil && cur.ID == id {
			b.out.printf("naming to %s", t)
			continue // already there: no index write
		}
		if err := b.store.Tag(ctx, id, t); err != nil {
			return "", fmt.Errorf("tag %s: %w", t, err)
		}
		b.out.printf("naming to %s", t)
	}
	return id, nil
}

// lookup returns the image cached under key if it still exists (never with NoCache).
func (b *builder) lookup(ctx context.Context, key string) (storage.Image, bool) {
	if b.opt.NoCache {
		return storage.Image{}, false
	}
	id := b.cache.get(key)
	if id == "" {
		return storage.Image{}, false
	}
	img, err := b.store.Resolve(ctx, id)
	if err != nil || img.ID != id {
		return storage.Image{}, false
	}
	return img, true
}

// stepKey is the cache key of a step: the parent image, the config at that point and the
// step's description (instruction with expanded arguments, content hash, run environment).
func stepKey(parent string, cfg storage.ImageConfig, parts ...string) string {
	h := sha256.New()
	cb, _ := json.Marshal(cfg)
	fmt.Fprintf(h, "berth-build-v1\x00%s\x00%s", parent, cb)
	for _, p := range parts {
		fmt.Fprintf(h, "\x00%d:%s", len(p), p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func shortID(id string) string {
	h := strings.TrimPrefix(id, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

// progress writes plain progress lines.
type progress struct {
	w      io.Writer
	prefix string
}

func (p *progress) printf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if p.prefix != "" {
		line = "[" + p.prefix + "] " + line
	}
	io.WriteString(p.w, line+"\n")
}

// lineWriter prefixes each line of a step's output and keeps the last lines for errors.
type lineWriter struct {
	p     *progress
	tag   string
	start time.Time
	buf   []byte
	tail  []string
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.buf = append(l.buf, b...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	if len(l.buf) > 64<<10 {
		l.emit(string(l.buf))
		l.buf = nil
	}
	return len(b), nil
}

func (l *lineWriter) emit(s string) {
	s = strings.TrimRight(s, "\r")
	l.p.printf("%s %.3f %s", l.tag, time.Since(l.start).Seconds(), s)
	l.tail = append(l.tail, s)
	if len(l.tail) > 20 {
		l.tail = l.tail[len(l.tail)-20:]
	}
}

func (l *lineWriter) flush() {
	if len(l.buf) > 0 {
		l.emit(string(l.buf))
		l.buf = nil
	}
}
