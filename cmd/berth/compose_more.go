package main

// compose_more.go: the Compose verbs beyond the core set in compose.go: build, push, cp,
// attach, stats, commit and volumes, plus clear "not supported" answers for the Compose verbs
// berth does not do (watch, publish, bridge, export).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
	"github.com/berth-dev/berth/storage"
)

// addComposeMoreCommands registers build, push, cp, attach, stats, commit, volumes and the
// unsupported verbs.
func addComposeMoreCommands(root *cobra.Command, a *app) {
	root.AddCommand(
		composeMoreBuildCmd(a), composeMorePushCmd(a), composeMoreCpCmd(a), composeMoreAttachCmd(a),
		composeMoreStatsCmd(a), composeMoreCommitCmd(a), composeMoreVolumesCmd(a),
		composeMoreUnsupportedCmd("watch [SERVICE...]", "Watch build context for service and rebuild/refresh containers when files are updated",
			"file watching is not supported; run `berth up -d --build` after a change"),
		composeMoreUnsupportedCmd("publish [OPTIONS] REPOSITORY[:TAG]", "Publish compose application",
			"publishing a Compose application as an OCI artifact is not supported; push the images with `berth push`"),
		composeMoreUnsupportedCmd("bridge", "Convert compose files into another model",
			"bridge transformations are not supported; use `berth convert` for Kubernetes manifests"),
		composeMoreUnsupportedCmd("export [OPTIONS] SERVICE", "Export a service container's filesystem as a tar archive",
			"exporting a container's filesystem is not supported; use `berth cp SERVICE:/ -` for a tar archive of it"),
	)
}

// composeMoreUnsupportedCmd is a Compose verb berth does not implement: it accepts any
// arguments and fails with exit code 1 and a hint.
func composeMoreUnsupportedCmd(use, short, why string) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short + " (not supported by berth)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, arg := range args {
				if arg == "-h" || arg == "--help" {
					return cmd.Help()
				}
			}
			return &exitError{code: 1, err: fmt.Errorf("%s: %s", cmd.Name(), why)}
		},
	}
}

// composeMoreSelect returns the services named (all when none are), in the project's order,
// with their dependencies when withDeps is set. Unknown names are a user error.
func composeMoreSelect(p *spec.Project, names []string, withDeps bool) ([]spec.Service, error) {
	if len(names) == 0 {
		return p.Services, nil
	}
	want := map[string]bool{}
	var add func(n string) error
	add = func(n string) error {
		svc, ok := p.Service(n)
		if !ok {
			return &exitError{code: 1, err: fmt.Errorf("no such service: %s", n)}
		}
		if want[n] {
			return nil
		}
		want[n] = true
		if withDeps {
			for d := range svc.DependsOn {
				if err := add(d); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	var out []spec.Service
	for _, s := range p.Services {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out, nil
}

// --- build ---

type composeMoreBuildFlags struct {
	noCache, pull, quiet, push, withDeps bool
	buildArgs                            []string
}

func composeMoreBuildCmd(a *app) *cobra.Command {
	var f composeMoreBuildFlags
	cmd := &cobra.Command{
		Use:   "build [OPTIONS] [SERVICE...]",
		Short: "Build or rebuild services",
		Long: `Build the images of the services that have a build section, with the same builder
` + "`berth up --build`" + ` uses, and tag them with the service's image name (image:, or
<project>-<service>) plus build.tags. Services without a build section are skipped.`,
		Example: `  berth build
  berth build --no-cache --build-arg VERSION=1.2 web`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return composeMoreBuild(cmd.Context(), a, f, args)
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&f.noCache, "no-cache", false, "Do not use cache when building the image")
	fl.BoolVar(&f.pull, "pull", false, "Always attempt to pull a newer version of the image")
	fl.StringArrayVar(&f.buildArgs, "build-arg", nil, "Set build-time variables for services (KEY=VALUE; KEY alone takes it from the environment)")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "Don't print anything to STDOUT")
	fl.BoolVar(&f.push, "push", false, "Push service images")
	fl.BoolVar(&f.withDeps, "with-dependencies", false, "Also build dependencies (transitively)")
	return cmd
}

// composeMoreBuildArgs parses --build-arg values; KEY without a value takes it from the
// environment and is dropped when the environment lacks it.
func composeMoreBuildArgs(list []string) map[string]string {
	out := map[string]string{}
	for _, ba := range list {
		k, v, ok := strings.Cut(ba, "=")
		if !ok {
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		out[k] = v
	}
	return out
}

func composeMoreBuild(ctx context.Context, a *app, f composeMoreBuildFlags, names []string) error {
	p, err := a.loadProject(ctx)
	if err != nil {
		return err
	}
	svcs, err := composeMoreSelect(p, names, f.withDeps)
	if err != nil {
		return err
	}
	store, err := storage.Open(wireStorageRoot(a))
	if err != nil {
		return composeFail(fmt.Errorf("open image store: %w", err))
	}
	defer store.Close()
	ba := a
	if f.quiet {
		quiet := *a
		quiet.opts.Progress = "quiet"
		ba = &quiet
	}
	b := buildNewComposeBuilder(ba, store)
	prog := composeNewProgress(ba)
	extra := composeMoreBuildArgs(f.buildArgs)
	for _, svc := range svcs {
		if svc.Build == nil {
			continue
		}
		bs := *svc.Build
		bs.NoCache = bs.NoCache || f.noCache
		bs.Pull = bs.Pull || f.pull
		args := map[string]string{}
		for k, v := range bs.Args {
			args[k] = v
		}
		for k, v := range extra {
			args[k] = v
		}
		bs.Args = args
		svc.Build = &bs
		tag := svc.ImageName(p.Name)
		ev := engine.Event{Time: time.Now(), Resource: "service:" + svc.Name, Kind: "BuildImage", Name: svc.Name,
			Status: engine.StatusWorking, Text: "Building"}
		prog.Event(ev)
		if err := b.Build(ctx, p.Name, svc, tag); err != nil {
			ev.Time, ev.Status, ev.Text, ev.Err = time.Now(), engine.StatusError, err.Error(), err
			prog.Event(ev)
			return composeFail(err)
		}
		ev.Time, ev.Status, ev.Text = time.Now(), engine.StatusDone, "Built"
		prog.Event(ev)
		if f.push && svc.Image != "" {
			if err := composeMorePushService(ctx, store, prog, svc, false); err != nil {
				return composeFail(err)
			}
		}
	}
	return nil
}

// --- push ---

func composeMorePushCmd(a *app) *cobra.Command {
	var ignoreFailures, includeDeps, quiet bool
	cmd := &cobra.Command{
		Use:   "push [OPTIONS] [SERVICE...]",
		Short: "Push service images",
		Long: `Push the images of the services that are built (a build section) and named (image:),
with their build.tags, as Docker Compose does; other services are skipped. Credentials come
from Docker's config.json (` + "`berth login`" + `); plain HTTP is used for registries on loopback.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := a.loadProject(ctx)
			if err != nil {
				return err
			}
			svcs, err := composeMoreSelect(p, args, includeDeps)
			if err != nil {
				return err
			}
			store, err := storage.Open(wireStorageRoot(a))
			if err != nil {
				return composeFail(fmt.Errorf("open image store: %w", err))
			}
			defer store.Close()
			pa := a
			if quiet {
				q := *a
				q.opts.Progress = "quiet"
				pa = &q
			}
			prog := composeNewProgress(pa)
			for _, svc := range svcs {
				if svc.Build == nil || svc.Image == "" {
					prog.Event(engine.Event{Time: time.Now(), Resource: "service:" + svc.Name, Kind: "PushImage",
						Name: svc.Name, Status: engine.StatusDone, Text: "Skipped"})
					continue
				}
				if err := composeMorePushService(ctx, store, prog, svc, ignoreFailures); err != nil {
					return composeFail(err)
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&ignoreFailures, "ignore-push-failures", false, "Push what it can and ignores images with push failures")
	fl.BoolVar(&includeDeps, "include-deps", false, "Also push images of services declared as dependencies")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Push without printing progress information")
	return cmd
}

// composeMorePushService pushes svc's image and its build tags. With ignoreFailures a failed
// push is reported as a warning and the rest continue.
func composeMorePushService(ctx context.Context, store *storage.Store, prog engine.Progress, svc spec.Service, ignoreFailures bool) error {
	tags := []string{svc.Image}
	if svc.Build != nil {
		tags = append(tags, svc.Build.Tags...)
	}
	for _, tag := range tags {
		ev := engine.Event{Time: time.Now(), Resource: "image:" + tag, Kind: "PushImage", Name: tag,
			Status: engine.StatusWorking, Text: "Pushing"}
		prog.Event(ev)
		md, err := store.Push(ctx, "", tag, storage.PushOptions{})
		if err != nil {
			ev.Time, ev.Text, ev.Err = time.Now(), err.Error(), err
			if ignoreFailures {
				ev.Status = engine.StatusWarning
				prog.Event(ev)
				continue
			}
			ev.Status = engine.StatusError
			prog.Event(ev)
			return fmt.Errorf("service %s: %w", svc.Name, err)
		}
		ev.Time, ev.Status, ev.Text = time.Now(), engine.StatusDone, "Pushed "+md
		prog.Event(ev)
	}
	return nil
}

// --- cp ---

// composeMoreCpArg splits a cp argument into service and path. As in Docker, an argument
// starting with / or . is a local path, and "-" is a tar stream.
func composeMoreCpArg(arg string) (service, p string) {
	if arg == "-" || strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	service, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return service, p
}

func composeMoreCpCmd(a *app) *cobra.Command {
	var (
		index                int
		all, archive, follow bool
	)
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] SERVICE:SRC_PATH DEST_PATH|-\n  berth cp [OPTIONS] SRC_PATH|- SERVICE:DEST_PATH",
		Short: "Copy files/folders between a service container and the local filesystem",
		Long: `Copy files/folders between a service container and the local filesystem, as
` + "`berth container cp`" + ` does: paths inside the container are resolved inside it, so symlinks never
lead out of it. --index picks a replica (default: the first); --all copies into every replica.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			srcSvc, src := composeMoreCpArg(args[0])
			dstSvc, dst := composeMoreCpArg(args[1])
			switch {
			case srcSvc != "" && dstSvc != "":
				return &exitError{code: 1, err: errors.New("copying between services is not supported; copy to a local path first")}
			case srcSvc == "" && dstSvc == "":
				return &exitError{code: 1, err: errors.New("one of the paths must be SERVICE:PATH")}
			}
			s, err := composeOpen(ctx, a, false, "berth cp")
			if err != nil {
				return err
			}
			defer s.Close()
			service := srcSvc + dstSvc
			cs, err := s.e.Select(ctx, s.p, []string{service}, false)
			if err != nil {
				return composeFail(err)
			}
			var targets []engine.ContainerInfo
			for _, c := range cs {
				switch {
				case index > 0:
					if c.Labels[planner.LabelNumber] == strconv.Itoa(index) {
						targets = append(targets, c)
					}
				case all && dstSvc != "":
					targets = append(targets, c)
				case len(targets) == 0:
					targets = append(targets, c)
				}
			}
			if len(targets) == 0 {
				if index > 0 {
					return &exitError{code: 1, err: fmt.Errorf("service %q has no container with index %d", service, index)}
				}
				return &exitError{code: 1, err: fmt.Errorf("service %q has no container; run `berth up` first", service)}
			}
			for _, c := range targets {
				sub := containerCpCmd(a)
				sub.SetContext(ctx)
				if archive {
					_ = sub.Flags().Set("archive", "true")
				}
				if follow {
					_ = sub.Flags().Set("follow-link", "true")
				}
				subArgs := []string{c.ID + ":" + src, dst}
				if dstSvc != "" {
					subArgs = []string{src, c.ID + ":" + dst}
				}
				if err := sub.RunE(sub, subArgs); err != nil {
					return err
				}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&index, "index", 0, "Index of the container if service has multiple replicas")
	fl.BoolVar(&all, "all", false, "Copy into every replica of the service (default: the first one)")
	fl.BoolVarP(&archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	fl.BoolVarP(&follow, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	return cmd
}

// --- attach ---

func composeMoreAttachCmd(a *app) *cobra.Command {
	var (
		index             int
		noStdin, sigProxy bool
		detachKeys        string
	)
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] SERVICE",
		Short: "Attach local standard input, output, and error streams to a service's running container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth attach")
			if err != nil {
				return err
			}
			defer s.Close()
			c, err := composeFindContainer(ctx, s, args[0], index)
			if err != nil {
				return err
			}
			sub := containerAttachCmd(a)
			sub.SetContext(ctx)
			if noStdin {
				_ = sub.Flags().Set("no-stdin", "true")
			}
			return sub.RunE(sub, []string{c.ID})
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&index, "index", 0, "index of the container if service has multiple replicas")
	fl.BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	fl.BoolVar(&sigProxy, "sig-proxy", true, "Proxy all received signals to the process")
	fl.StringVar(&detachKeys, "detach-keys", "", "Override the key sequence for detaching from a container (not supported: use Ctrl-C)")
	return cmd
}

// --- stats ---

func composeMoreStatsCmd(a *app) *cobra.Command {
	var all, noStream, noTrunc bool
	var format string
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [SERVICE]",
		Short: "Display a snapshot of the service containers' resource usage",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth stats")
			if err != nil {
				return err
			}
			defer s.Close()
			cs, err := s.e.Select(ctx, s.p, args, all)
			if err != nil {
				return composeFail(err)
			}
			var ids []string
			for _, c := range cs {
				if all || c.State == planner.StateRunning {
					ids = append(ids, c.ID)
				}
			}
			if len(ids) == 0 {
				return nil
			}
			sub := containerStatsCmd(a)
			sub.SetContext(ctx)
			_ = sub.Flags().Set("no-stream", "true")
			if all {
				_ = sub.Flags().Set("all", "true")
			}
			return sub.RunE(sub, ids)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	fl.BoolVar(&noStream, "no-stream", false, "Disable streaming stats and only pull the first result (the only mode supported)")
	fl.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	fl.StringVar(&format, "format", "", "Format output (not supported: the table is printed)")
	return cmd
}

// --- commit ---

func composeMoreCommitCmd(a *app) *cobra.Command {
	var (
		index           int
		author, message string
		changes         []string
		pause           bool
	)
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] SERVICE [REPOSITORY[:TAG]]",
		Short: "Create a new image from a service container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth commit")
			if err != nil {
				return err
			}
			defer s.Close()
			cs, err := s.e.Select(ctx, s.p, args[:1], false)
			if err != nil {
				return composeFail(err)
			}
			var target *engine.ContainerInfo
			for i, c := range cs {
				if index == 0 || c.Labels[planner.LabelNumber] == strconv.Itoa(index) {
					target = &cs[i]
					break
				}
			}
			if target == nil || s.parts.rt == nil || s.parts.store == nil {
				return &exitError{code: 1, err: fmt.Errorf("service %q has no container to commit", args[0])}
			}
			c, err := s.parts.rt.Get(ctx, target.ID)
			if err != nil {
				return composeFail(err)
			}
			img, err := s.parts.store.Resolve(ctx, target.Labels[planner.LabelImage])
			if err != nil {
				return composeFail(fmt.Errorf("image of %s: %w", target.Name, err))
			}
			cfg := containerCommitConfig(img.Config, c.Config)
			for _, ch := range changes {
				if err := containerApplyChange(&cfg, ch); err != nil {
					return &exitError{code: 1, err: err}
				}
			}
			if pause && target.State == planner.StateRunning {
				if err := s.parts.rt.Pause(ctx, target.ID); err != nil {
					return composeFail(fmt.Errorf("pause %s: %w", target.Name, err))
				}
				defer func() { _ = s.parts.rt.Unpause(context.WithoutCancel(ctx), target.ID) }()
			}
			var refs []string
			if len(args) == 2 {
				refs = []string{args[1]}
			}
			out, err := s.parts.store.Commit(ctx, target.ID, storage.CommitOptions{
				Config: cfg, Refs: refs, Comment: message, Author: author, CreatedBy: strings.Join(c.Config.Args, " "),
			})
			if err != nil {
				return composeFail(fmt.Errorf("commit %s: %w", target.Name, err))
			}
			fmt.Fprintln(a.stdout, out.ID)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&index, "index", 0, "index of the container if service has multiple replicas")
	fl.StringVarP(&author, "author", "a", "", `Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	fl.StringVarP(&message, "message", "m", "", "Commit message")
	fl.StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	fl.BoolVarP(&pause, "pause", "p", true, "Pause container during commit")
	return cmd
}

// --- volumes ---

func composeMoreVolumesCmd(a *app) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "volumes [OPTIONS] [SERVICE...]",
		Short: "List volumes",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, true, "berth volumes")
			if err != nil {
				return err
			}
			defer s.Close()
			svcs, err := composeMoreSelect(s.p, args, false)
			if err != nil {
				return err
			}
			// Named volumes the selected services mount, plus (without a selection) every
			// volume labelled with the project.
			want := map[string]bool{}
			for _, svc := range svcs {
				for _, m := range svc.Volumes {
					if m.Type != spec.MountVolume || m.Source == "" {
						continue
					}
					if v, ok := s.p.Volumes[m.Source]; ok {
						want[v.Name] = true
					} else {
						want[m.Source] = true
					}
				}
			}
			var names []string
			if s.parts.vols != nil {
				vols, err := s.parts.vols.List(ctx)
				if err != nil {
					return composeFail(err)
				}
				for _, v := range vols {
					if want[v.Name] || len(args) == 0 && v.Labels[planner.LabelProject] == s.p.Name && v.Labels["io.berth.anonymous"] != "true" {
						names = append(names, v.Name)
					}
				}
			}
			sort.Strings(names)
			switch {
			case quiet:
				for _, n := range names {
					fmt.Fprintln(a.stdout, n)
				}
			case format == "json":
				for _, n := range names {
					fmt.Fprintf(a.stdout, "{\"Driver\":\"local\",\"Name\":%q}\n", n)
				}
			case format == "table" || format == "":
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "DRIVER\tVOLUME NAME")
				for _, n := range names {
					fmt.Fprintf(tw, "local\t%s\n", n)
				}
				return tw.Flush()
			default:
				return &exitError{code: 1, err: fmt.Errorf("--format %q: use table or json", format)}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	cmd.Flags().StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
	return cmd
}
