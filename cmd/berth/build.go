package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/engine"
	crt "github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/spec"
	"github.com/berth-dev/berth/storage"
	"github.com/berth-dev/berth/storage/build"
)

// addBuildCommands registers `berth image build` (under the image command, created if the
// image area has not made it) and `berth builder prune`.
func addBuildCommands(root *cobra.Command, a *app) {
	var image *cobra.Command
	for _, c := range root.Commands() {
		if c.Name() == "image" {
			image = c
		}
	}
	if image == nil {
		image = &cobra.Command{Use: "image", Short: "Manage images"}
		root.AddCommand(image)
	}
	image.AddCommand(buildImageBuildCmd(a))

	builder := &cobra.Command{Use: "builder", Short: "Manage the build cache"}
	builder.AddCommand(buildPruneCmd(a))
	root.AddCommand(builder)
}

type buildImageOptions struct {
	tags      []string
	file      string
	buildArgs []string
	target    string
	noCache   bool
	pull      bool
	labels    []string
	network   string
	quiet     bool
	platform  string
}

func buildImageBuildCmd(a *app) *cobra.Command {
	var o buildImageOptions
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] CONTEXT",
		Short: "Build an image from a Dockerfile",
		Long: `Build an image from a Dockerfile and a context: a directory, or - for a tar archive (or a
lone Dockerfile) on stdin. COPY-only builds need neither root nor containers; RUN steps run
in berth's runtime. Steps are cached by parent, instruction and content: an unchanged
rebuild creates nothing. ` + "`berth builder prune`" + ` empties the cache.`,
		Example: `  berth image build -t web:latest .
  berth image build -f web.Dockerfile --build-arg VERSION=1.2 -t web:1.2 .
  tar -C app -c . | berth image build -t app -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return buildImageRun(cmd.Context(), a, o, args[0])
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.tags, "tag", "t", nil, "Name and optionally a tag (name:tag); repeatable")
	f.StringVarP(&o.file, "file", "f", "", "Dockerfile path (default: CONTEXT/Dockerfile; - reads it from stdin)")
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "Build-time variable KEY=VALUE (KEY alone takes it from the environment); repeatable")
	f.StringVar(&o.target, "target", "", "Stage to build")
	f.BoolVar(&o.noCache, "no-cache", false, "Do not use the build cache")
	f.BoolVar(&o.pull, "pull", false, "Always pull base images")
	f.StringArrayVar(&o.labels, "label", nil, "Label KEY=VALUE for the image; repeatable")
	f.StringVar(&o.network, "network", "default", "Network for RUN steps: default, none or host")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "Print only the image ID")
	f.StringVar(&o.platform, "platform", "", "Target platform (only the host's is supported)")
	return cmd
}

func buildImageRun(ctx context.Context, a *app, o buildImageOptions, contextArg string) error {
	opt := build.Options{
		Dockerfile: o.file, Target: o.target, Tags: o.tags, NoCache: o.noCache, Pull: o.pull,
		Network: o.network, Platform: o.platform, Args: map[string]string{}, Labels: map[string]string{},
	}
	for _, ba := range o.buildArgs {
		k, v, ok := strings.Cut(ba, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		opt.Args[k] = v
	}
	for _, l := range o.labels {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return &exitError{code: 1, err: fmt.Errorf("--label %q: want KEY=VALUE", l)}
		}
		opt.Labels[k] = v
	}
	stdinUsed := false
	if o.file == "-" {
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return fmt.Errorf("read Dockerfile from stdin: %w", err)
		}
		opt.Dockerfile, opt.DockerfileInline, stdinUsed = "", string(b), true
	} else if o.file != "" && !filepath.IsAbs(o.file) {
		// Like docker build: -f is relative to the current directory, not the context.
		abs, err := filepath.Abs(o.file)
		if err != nil {
			return err
		}
		opt.Dockerfile = abs
	}
	if contextArg == "-" {
		if stdinUsed {
			return &exitError{code: 1, err: fmt.Errorf("stdin cannot hold both the Dockerfile (-f -) and the context (-)")}
		}
		dir, err := os.MkdirTemp("", "berth-build-context-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := build.ExtractContext(ctx, a.stdin, dir); err != nil {
			return fmt.Errorf("read build context from stdin: %w", err)
		}
		contextArg = dir
	}
	opt.ContextDir = contextArg
	if !o.quiet && a.opts.Progress != "quiet" {
		opt.Progress = a.stderr
	}
	store, err := storage.Open(wireStorageRoot(a))
	if err != nil {
		return fmt.Errorf("open image store: %w", err)
	}
	defer store.Close()
	runner := buildNewRunner(a)
	id, err := build.Build(ctx, store, runner, opt)
	if err != nil {
		return err
	}
	if o.quiet {
		fmt.Fprintln(a.stdout, id)
	}
	return nil
}

// buildNewRunner returns the Runner for RUN steps: berth's runtime, opened on first use so
// that builds without RUN need neither root nor the runtime's directories. The engine's
// Compose builds use it too.
func buildNewRunner(a *app) build.Runner { return &buildRunner{a: a} }

type buildRunner struct {
	a    *app
	once sync.Once
	rt   *crt.Runtime
	err  error
}

func (r *buildRunner) Run(ctx context.Context, spec build.RunSpec) (int, error) {
	r.once.Do(func() {
		r.rt, r.err = crt.New(crt.Config{Root: wireContainersRoot(r.a), RunRoot: r.a.opts.RunRoot, Logger: r.a.logger})
	})
	if r.err != nil {
		return -1, fmt.Errorf("open runtime: %w", r.err)
	}
	id := crt.NewID()
	c := crt.ContainerConfig{
		ID: id, Name: "berth-build-" + id[:12], Labels: map[string]string{"berth.build": "true"},
		Rootfs: spec.Rootfs, Args: spec.Args, Env: spec.Env, WorkingDir: spec.WorkingDir, User: spec.User,
	}
	switch spec.Network {
	case "none":
		c.NetNSPath = ""
	default: // "default" and "host": builds use the host's network, as buildah's chroot isolation does
		c.NetNSPath = "host"
		if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
			c.ResolvConf = string(b)
		}
		host, _ := os.Hostname()
		c.Hosts = "127.0.0.1\tlocalhost " + host + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
	}
	if err := r.rt.Create(ctx, c); err != nil {
		return -1, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = r.rt.Remove(cctx, id, true)
	}()
	return r.rt.Run(ctx, id, crt.Stdio{Stdout: spec.Stdout, Stderr: spec.Stderr})
}

// buildComposeBuilder builds Compose services' images (`build:`) for the engine; wire it as
// engine.Config.Builder with buildNewComposeBuilder.
type buildComposeBuilder struct {
	a      *app
	store  *storage.Store
	runner build.Runner
}

var _ engine.Builder = (*buildComposeBuilder)(nil)

// buildNewComposeBuilder returns the engine's Builder over an open store. It is safe for
// concurrent builds.
func buildNewComposeBuilder(a *app, s *storage.Store) *buildComposeBuilder {
	return &buildComposeBuilder{a: a, store: s, runner: buildNewRunner(a)}
}

// Build builds svc's image and tags it tag (the service's image name, by default
// <project>-<service>) and the build section's extra tags.
func (b *buildComposeBuilder) Build(ctx context.Context, project string, svc spec.Service, tag string) error {
	bs := svc.Build
	if bs == nil {
		return fmt.Errorf("service %s has no build section: %w", svc.Name, engine.ErrUnsupported)
	}
	if tag == "" {
		tag = svc.ImageName(project)
	}
	opt := build.Options{
		ContextDir: bs.Context, Dockerfile: bs.Dockerfile, DockerfileInline: bs.DockerfileInline,
		Args: bs.Args, Target: bs.Target, Labels: bs.Labels, NoCache: bs.NoCache, Pull: bs.Pull,
		Network: bs.Network, Tags: append([]string{tag}, bs.Tags...), Name: svc.Name,
	}
	switch len(bs.Platforms) {
	case 0:
	case 1:
		opt.Platform = bs.Platforms[0]
	default:
		return fmt.Errorf("service %s: building for several platforms (%s) is not supported: %w", svc.Name, strings.Join(bs.Platforms, ", "), engine.ErrUnsupported)
	}
	switch b.a.opts.Progress {
	case "quiet", "json":
	default:
		opt.Progress = b.a.stderr
	}
	if _, err := build.Build(ctx, b.store, b.runner, opt); err != nil {
		return fmt.Errorf("build %s: %w", svc.Name, err)
	}
	return nil
}

func buildPruneCmd(a *app) *cobra.Command {
	var force, all bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove the build cache",
		Long:  "Remove the build cache: the untagged images that cached build steps, and the layers only they used.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			store, err := storage.Open(wireStorageRoot(a))
			if err != nil {
				return fmt.Errorf("open image store: %w", err)
			}
			defer store.Close()
			res, err := build.Prune(cmd.Context(), store, "")
			if err != nil {
				return err
			}
			if len(res.Deleted) > 0 {
				fmt.Fprintln(a.stdout, "Deleted build cache objects:")
				sort.Strings(res.Deleted)
				for _, id := range res.Deleted {
					fmt.Fprintln(a.stdout, strings.TrimPrefix(id, "sha256:"))
				}
				fmt.Fprintln(a.stdout)
			}
			fmt.Fprintf(a.stdout, "Total reclaimed space: %s\n", units.HumanSize(float64(res.SpaceReclaimed)))
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "Do not prompt for confirmation (berth never prompts)")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all build cache (the default; accepted for Docker compatibility)")
	return cmd
}
