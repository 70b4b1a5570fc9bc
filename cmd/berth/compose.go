package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/planner"
	crt "github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/spec"
)

// addComposeCommands registers the Compose verbs: up, down, ps, logs, exec, run, start, stop,
// restart, kill, pause, unpause, rm, create, pull, images, top, port, ls, wait, scale, events.
func addComposeCommands(root *cobra.Command, a *app) {
	root.AddCommand(
		composeUpCmd(a), composeDownCmd(a), composePsCmd(a), composeLogsCmd(a),
		composeExecCmd(a), composeRunCmd(a), composeStartCmd(a), composeStopCmd(a),
		composeRestartCmd(a), composeKillCmd(a), composePauseCmd(a, false), composePauseCmd(a, true),
		composeRmCmd(a), composeCreateCmd(a), composePullCmd(a), composeImagesCmd(a),
		composeTopCmd(a), composePortCmd(a), composeLsCmd(a), composeWaitCmd(a),
		composeScaleCmd(a), composeEventsCmd(a),
		wireRemoveCmd(a), // hidden: a `run -d --rm` container's monitor runs it on exit
	)
	addComposeMoreCommands(root, a)
}

// composeSession is what a compose command works with.
type composeSession struct {
	p     *spec.Project
	parts *wireParts
	e     *engine.Engine
}

func (s *composeSession) Close() {
	if s.parts != nil {
		s.parts.Close()
	}
}

// composeOpen loads the project and opens the engine. readOnly commands work on a machine
// without berth state (they observe nothing).
func composeOpen(ctx context.Context, a *app, readOnly bool, who string) (*composeSession, error) {
	t0 := time.Now()
	defer func() { a.logger.Debug("compose: project loaded and parts opened", "took", time.Since(t0)) }()
	p, err := a.loadProject(ctx)
	a.logger.Debug("compose: project loaded", "took", time.Since(t0))
	if errors.Is(err, spec.ErrNotFound) && a.opts.ProjectName != "" {
		// No compose file, but the project is named: work on what carries its label.
		p, err = &spec.Project{Name: a.opts.ProjectName, Networks: map[string]spec.Network{}, Volumes: map[string]spec.Volume{}}, nil
	}
	if err != nil {
		return nil, err
	}
	return composeOpenProject(a, p, readOnly, who)
}

func composeOpenProject(a *app, p *spec.Project, readOnly bool, who string) (*composeSession, error) {
	if !readOnly && os.Geteuid() != 0 {
		return nil, &exitError{code: 1, err: errors.New("this command changes containers and needs root (run it with sudo)")}
	}
	parts, err := wireOpen(a, readOnly)
	if err != nil {
		return nil, err
	}
	e, err := wireEngine(a, parts, who)
	if err != nil {
		parts.Close()
		return nil, err
	}
	return &composeSession{p: p, parts: parts, e: e}, nil
}

// composeFail turns an engine error into the command's error (exit code 1, with the cause).
func composeFail(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	var se *spec.Error
	if errors.As(err, &se) {
		return err
	}
	return &exitError{code: 1, err: err}
}

// --- up ---

type composeUpFlags struct {
	detach, wait, build, noBuild, forceRecreate, noRecreate, alwaysRecreateDeps  bool
	noDeps, removeOrphans, abortOnExit, noStart, dryRun, noLogPrefix, timestamps bool
	noColor, quietPull                                                           bool
	waitTimeout, timeout                                                         int
	scale                                                                        []string
	pull, exitCodeFrom, format                                                   string
}

func composeParseScale(specs []string) (map[string]int, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	out := map[string]int{}
	for _, s := range specs {
		name, n, ok := strings.Cut(s, "=")
		v, err := strconv.Atoi(n)
		if !ok || err != nil || v < 0 {
			return nil, &exitError{code: 1, err: fmt.Errorf("--scale %q: want SERVICE=NUMBER, e.g. web=3", s)}
		}
		out[name] = v
	}
	return out, nil
}

func composeTimeout(cmd *cobra.Command, secs int) *time.Duration {
	if !cmd.Flags().Changed("timeout") {
		return nil
	}
	d := time.Duration(secs) * time.Second
	return &d
}

func composeUpCmd(a *app) *cobra.Command {
	var f composeUpFlags
	cmd := &cobra.Command{
		Use:   "up [SERVICE...]",
		Short: "Create and start containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			return composeUp(cmd, a, &f, args, false)
		},
	}
	composeUpFlagSet(cmd, &f, true)
	return cmd
}

func composeUpFlagSet(cmd *cobra.Command, f *composeUpFlags, up bool) {
	fl := cmd.Flags()
	fl.BoolVar(&f.build, "build", false, "Build images before starting containers")
	fl.BoolVar(&f.noBuild, "no-build", false, "Don't build an image, even if it's missing")
	fl.StringVar(&f.pull, "pull", "", `Pull image before running ("always"|"missing"|"never"|"build")`)
	fl.BoolVar(&f.forceRecreate, "force-recreate", false, "Recreate containers even if their configuration and image haven't changed")
	fl.BoolVar(&f.noRecreate, "no-recreate", false, "If containers already exist, don't recreate them")
	fl.BoolVar(&f.removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	fl.StringArrayVar(&f.scale, "scale", nil, "Scale SERVICE to NUM instances (SERVICE=NUM); overrides the scale setting in the Compose file")
	fl.BoolVar(&f.dryRun, "dry-run", false, "Print the plan and do nothing")
	fl.StringVar(&f.format, "format", "text", "Format of the --dry-run plan: text or json")
	fl.BoolVar(&f.quietPull, "quiet-pull", false, "Pull without printing progress information")
	if !up {
		return
	}
	fl.BoolVarP(&f.detach, "detach", "d", false, "Detached mode: Run containers in the background")
	fl.BoolVar(&f.wait, "wait", false, "Wait for services to be running|healthy. Implies detached mode")
	fl.IntVar(&f.waitTimeout, "wait-timeout", 0, "Maximum duration in seconds to wait for the project to be running|healthy")
	fl.BoolVar(&f.alwaysRecreateDeps, "always-recreate-deps", false, "Recreate dependent containers. Incompatible with --no-recreate")
	fl.BoolVar(&f.noDeps, "no-deps", false, "Don't start linked services")
	fl.BoolVar(&f.abortOnExit, "abort-on-container-exit", false, "Stops all containers if any container was stopped. Incompatible with -d")
	fl.StringVar(&f.exitCodeFrom, "exit-code-from", "", "Return the exit code of the selected service container. Implies --abort-on-container-exit")
	fl.BoolVar(&f.noStart, "no-start", false, "Don't start the services after creating them")
	fl.IntVarP(&f.timeout, "timeout", "t", 10, "Use this timeout in seconds for container shutdown when attached or when containers are already running")
	fl.BoolVar(&f.noLogPrefix, "no-log-prefix", false, "Don't print prefix in logs")
	fl.BoolVar(&f.timestamps, "timestamps", false, "Show timestamps")
	fl.BoolVar(&f.noColor, "no-color", false, "Produce monochrome output")
}

func composeUp(cmd *cobra.Command, a *app, f *composeUpFlags, services []string, create bool) error {
	ctx := cmd.Context()
	scale, err := composeParseScale(f.scale)
	if err != nil {
		return err
	}
	if f.exitCodeFrom != "" {
		f.abortOnExit = true
	}
	if f.wait {
		f.detach = true
	}
	if f.detach && f.abortOnExit {
		return &exitError{code: 1, err: errors.New("--abort-on-container-exit and --exit-code-from cannot be combined with -d/--wait")}
	}
	opt := engine.UpOptions{Options: planner.Options{
		Services: services, Scale: scale, ForceRecreate: f.forceRecreate, NoRecreate: f.noRecreate,
		AlwaysRecreateDeps: f.alwaysRecreateDeps, NoDeps: f.noDeps, RemoveOrphans: f.removeOrphans,
		NoStart: f.noStart || create, Pull: f.pull, Build: f.build, NoBuild: f.noBuild, Wait: f.wait,
	}}
	opt.Timeout = composeTimeout(cmd, f.timeout)
	if f.waitTimeout > 0 {
		opt.WaitTimeout = time.Duration(f.waitTimeout) * time.Second
	}
	s, err := composeOpen(ctx, a, f.dryRun, "berth "+strings.Join(composeArgs(cmd), " "))
	if err != nil {
		return err
	}
	defer s.Close()
	if f.exitCodeFrom != "" {
		if _, ok := s.p.Service(f.exitCodeFrom); !ok {
			return &exitError{code: 1, err: fmt.Errorf("--exit-code-from %s: no such service", f.exitCodeFrom)}
		}
	}
	if f.dryRun {
		plan, err := s.e.Plan(ctx, s.p, opt)
		if err != nil {
			return composeFail(err)
		}
		return composePrintPlan(a, plan, f.format)
	}
	prog := composeNewProgress(a)
	if _, err := s.e.Up(ctx, s.p, opt, prog); err != nil {
		return composeFail(err)
	}
	if f.detach || f.noStart || create {
		return nil
	}
	return composeAttach(ctx, a, s, services, f)
}

func composeArgs(cmd *cobra.Command) []string {
	return append([]string{cmd.Name()}, os.Args[min(len(os.Args), 2):]...)
}

func composePrintPlan(a *app, plan *planner.Plan, format string) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(plan, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "%s\n", b)
	case "", "text":
		fmt.Fprint(a.stdout, plan.String())
	default:
		return &exitError{code: 1, err: fmt.Errorf("--format %q: use text or json", format)}
	}
	return nil
}

// composeAttach follows the services' logs after `up` until they all exit or the user
// interrupts; then it stops them in reverse dependency order (a second interrupt kills).
func composeAttach(ctx context.Context, a *app, s *composeSession, services []string, f *composeUpFlags) error {
	cs, err := s.e.Select(ctx, s.p, services, false)
	if err != nil {
		return composeFail(err)
	}
	width := 0
	for _, c := range cs {
		width = max(width, len(composeShortName(s.p.Name, c)))
	}
	// Interrupts reach both run's signal.NotifyContext (the first one cancels ctx) and kill;
	// RunAttached drops the first and kills on the next.
	kill := make(chan os.Signal, 2)
	signal.Notify(kill, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(kill)
	exitCode, aborted := 0, false
	out := a.stdout
	grace := time.Duration(f.timeout) * time.Second
	opt := engine.AttachOptions{Tail: -1, Grace: &grace, Kill: kill, Progress: composeNewProgress(a)}
	stopped, err := s.e.RunAttached(ctx, s.p, services, cs, opt,
		func(c engine.ContainerInfo, l engine.LogLine) {
			composeWriteLine(out, composeShortName(s.p.Name, c), width, l, f.noLogPrefix, f.timestamps)
		},
		func(c engine.ContainerInfo) bool {
			fmt.Fprintf(out, "%s exited with code %d\n", composeShortName(s.p.Name, c), c.ExitCode)
			if f.exitCodeFrom != "" && c.Labels[planner.LabelService] == f.exitCodeFrom {
				exitCode = c.ExitCode
			}
			if f.abortOnExit && !aborted && ctx.Err() == nil {
				aborted = true
				if f.exitCodeFrom == "" {
					exitCode = c.ExitCode
				}
				fmt.Fprintln(a.stderr, "Aborting on container exit...")
				return true
			}
			return false
		})
	if err != nil {
		return composeFail(err)
	}
	if stopped && ctx.Err() != nil {
		fmt.Fprintln(a.stderr, "Stopped.")
	}
	if f.exitCodeFrom != "" && exitCode == 0 {
		// The selected service may not be the one that ended the run: read its exit code.
		if cs, err := s.e.Select(context.WithoutCancel(ctx), s.p, []string{f.exitCodeFrom}, false); err == nil {
			for _, c := range cs {
				if c.ExitCode != 0 {
					exitCode = c.ExitCode
				}
			}
		}
	}
	if ctx.Err() != nil && !aborted {
		return &exitError{code: 130}
	}
	if exitCode != 0 {
		return &exitError{code: exitCode}
	}
	return nil
}

// composeShortName is how logs prefix a container: "web-1" for "proj-web-1".
func composeShortName(project string, c engine.ContainerInfo) string {
	return strings.TrimPrefix(c.Name, project+"-")
}

func composeWriteLine(w io.Writer, name string, width int, l engine.LogLine, noPrefix, timestamps bool) {
	var b strings.Builder
	if !noPrefix {
		b.WriteString(name)
		b.WriteString(strings.Repeat(" ", max(0, width-len(name))))
		b.WriteString("  | ")
	}
	if timestamps {
		b.WriteString(l.Time.Format(time.RFC3339Nano))
		b.WriteByte(' ')
	}
	b.WriteString(l.Text)
	b.WriteByte('\n')
	io.WriteString(w, b.String())
}

// --- down ---

func composeDownCmd(a *app) *cobra.Command {
	var (
		volumes, removeOrphans, dryRun bool
		rmi, format                    string
		timeout                        int
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop and remove containers, networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, dryRun, "berth down")
			if err != nil {
				return err
			}
			defer s.Close()
			opt := engine.DownOptions{DownOptions: planner.DownOptions{Volumes: volumes, RemoveImages: rmi, RemoveOrphans: removeOrphans},
				Timeout: composeTimeout(cmd, timeout), WithoutProject: len(s.p.ComposeFiles) == 0}
			if dryRun {
				plan, err := s.e.PlanDown(ctx, s.p, opt)
				if err != nil {
					return composeFail(err)
				}
				return composePrintPlan(a, plan, format)
			}
			_, err = s.e.Down(ctx, s.p, opt, composeNewProgress(a))
			return composeFail(err)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&volumes, "volumes", "v", false, "Remove named volumes declared in the \"volumes\" section of the Compose file and anonymous volumes attached to containers")
	fl.StringVar(&rmi, "rmi", "", `Remove images used by services. "local" remove only images that don't have a custom tag ("local"|"all")`)
	fl.BoolVar(&removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	fl.IntVarP(&timeout, "timeout", "t", 10, "Specify a shutdown timeout in seconds")
	fl.BoolVar(&dryRun, "dry-run", false, "Print the plan and do nothing")
	fl.StringVar(&format, "format", "text", "Format of the --dry-run plan: text or json")
	return cmd
}

// --- ps ---

type composePsRow struct {
	ID         string             `json:"ID"`
	Name       string             `json:"Name"`
	Image      string             `json:"Image"`
	Command    string             `json:"Command"`
	Project    string             `json:"Project"`
	Service    string             `json:"Service"`
	Created    time.Time          `json:"CreatedAt"`
	State      string             `json:"State"`
	Health     string             `json:"Health"`
	ExitCode   int                `json:"ExitCode"`
	Status     string             `json:"Status"`
	Publishers []composePublisher `json:"Publishers"`
	Labels     map[string]string  `json:"-"`
}

type composePublisher struct {
	URL           string `json:"URL"`
	TargetPort    uint16 `json:"TargetPort"`
	PublishedPort uint16 `json:"PublishedPort"`
	Protocol      string `json:"Protocol"`
}

func composeRows(ctx context.Context, s *composeSession, cs []engine.ContainerInfo) []composePsRow {
	rows := make([]composePsRow, 0, len(cs))
	for _, c := range cs {
		r := composePsRow{ID: c.ID, Name: c.Name, Image: c.Labels[engine.LabelImageRef], Command: c.Command,
			Project: c.Labels[planner.LabelProject], Service: c.Labels[planner.LabelService], Created: c.Created,
			State: c.State, Health: c.Health, ExitCode: c.ExitCode, Labels: c.Labels, Publishers: []composePublisher{}}
		r.Status = composeStatus(c)
		if s.parts.net != nil {
			if ports, err := s.parts.net.PublishedPorts(ctx, c.ID); err == nil {
				for _, p := range ports {
					host := p.HostIP
					if host == "" {
						host = "0.0.0.0"
					}
					r.Publishers = append(r.Publishers, composePublisher{URL: host, TargetPort: p.ContainerPort, PublishedPort: p.HostPort, Protocol: p.Protocol})
				}
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func composeStatus(c engine.ContainerInfo) string {
	switch c.State {
	case planner.StateRunning:
		if c.Health != "" {
			return "Up (" + c.Health + ")"
		}
		return "Up"
	case planner.StateExited, planner.StateDead:
		return fmt.Sprintf("Exited (%d)", c.ExitCode)
	case planner.StatePaused:
		return "Up (Paused)"
	case planner.StateRestarting:
		return fmt.Sprintf("Restarting (%d)", c.ExitCode)
	}
	return strings.ToUpper(c.State[:min(1, len(c.State))]) + c.State[min(1, len(c.State)):]
}

func composePorts(ps []composePublisher) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s:%d->%d/%s", p.URL, p.PublishedPort, p.TargetPort, p.Protocol))
	}
	return strings.Join(out, ", ")
}

func composePsCmd(a *app) *cobra.Command {
	var (
		all, quiet, services bool
		status               []string
		format               string
	)
	cmd := &cobra.Command{
		Use:   "ps [SERVICE...]",
		Short: "List containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, true, "berth ps")
			if err != nil {
				return err
			}
			defer s.Close()
			if services {
				names := args
				if len(names) == 0 {
					names = s.p.ServiceNames()
				}
				for _, n := range names {
					fmt.Fprintln(a.stdout, n)
				}
				return nil
			}
			cs, err := s.e.Select(ctx, s.p, args, true)
			if err != nil {
				return composeFail(err)
			}
			var keep []engine.ContainerInfo
			for _, c := range cs {
				if len(status) > 0 {
					if !composeContains(status, c.State) {
						continue
					}
				} else if !all && c.State != planner.StateRunning && c.State != planner.StateRestarting && c.State != planner.StatePaused {
					continue
				}
				keep = append(keep, c)
			}
			rows := composeRows(ctx, s, keep)
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(a.stdout, r.ID)
				}
				return nil
			}
			switch format {
			case "json":
				for _, r := range rows {
					b, _ := json.Marshal(r)
					fmt.Fprintf(a.stdout, "%s\n", b)
				}
			case "table", "":
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "NAME\tIMAGE\tCOMMAND\tSERVICE\tCREATED\tSTATUS\tPORTS")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%s\t%q\t%s\t%s\t%s\t%s\n", r.Name, r.Image, composeTrunc(r.Command, 20), r.Service,
						composeAgo(r.Created), r.Status, composePorts(r.Publishers))
				}
				return tw.Flush()
			default:
				return &exitError{code: 1, err: fmt.Errorf("--format %q: use table or json", format)}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&all, "all", "a", false, "Show all stopped containers (including those created by the run command)")
	fl.BoolVarP(&quiet, "quiet", "q", false, "Only display IDs")
	fl.BoolVar(&services, "services", false, "Display services")
	fl.StringArrayVar(&status, "status", nil, "Filter services by status. Values: [paused | restarting | removing | running | dead | created | exited]")
	fl.StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
	return cmd
}

func composeContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func composeTrunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

func composeAgo(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d seconds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d minutes ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// --- logs ---

func composeLogsCmd(a *app) *cobra.Command {
	var (
		follow, timestamps, noPrefix, noColor bool
		tail                                  string
	)
	cmd := &cobra.Command{
		Use:   "logs [SERVICE...]",
		Short: "View output from containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, true, "berth logs")
			if err != nil {
				return err
			}
			defer s.Close()
			n := -1
			if tail != "all" && tail != "" {
				if n, err = strconv.Atoi(tail); err != nil {
					return &exitError{code: 1, err: fmt.Errorf("--tail %q: want a number or \"all\"", tail)}
				}
			}
			cs, err := s.e.Select(ctx, s.p, args, true)
			if err != nil {
				return composeFail(err)
			}
			width := 0
			for _, c := range cs {
				width = max(width, len(composeShortName(s.p.Name, c)))
			}
			err = s.e.FollowLogs(ctx, cs, engine.LogOptions{Tail: n, Follow: follow}, func(c engine.ContainerInfo, l engine.LogLine) {
				composeWriteLine(a.stdout, composeShortName(s.p.Name, c), width, l, noPrefix, timestamps)
			}, nil)
			if ctx.Err() != nil {
				return nil
			}
			return composeFail(err)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&follow, "follow", "f", false, "Follow log output")
	fl.StringVarP(&tail, "tail", "n", "all", "Number of lines to show from the end of the logs for each container")
	fl.BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	fl.BoolVar(&noPrefix, "no-log-prefix", false, "Don't print prefix in logs")
	fl.BoolVar(&noColor, "no-color", false, "Produce monochrome output")
	return cmd
}

// --- exec ---

func composeFindContainer(ctx context.Context, s *composeSession, service string, index int) (engine.ContainerInfo, error) {
	cs, err := s.e.Select(ctx, s.p, []string{service}, false)
	if err != nil {
		return engine.ContainerInfo{}, composeFail(err)
	}
	for _, c := range cs {
		if index == 0 && c.State == planner.StateRunning || index > 0 && c.Labels[planner.LabelNumber] == strconv.Itoa(index) {
			return c, nil
		}
	}
	return engine.ContainerInfo{}, &exitError{code: 1, err: fmt.Errorf("service %q is not running", service)}
}

func composeEnvList(env []string) []string {
	out := make([]string, 0, len(env))
	for _, e := range env {
		if !strings.Contains(e, "=") {
			if v, ok := os.LookupEnv(e); ok {
				e = e + "=" + v
			} else {
				continue
			}
		}
		out = append(out, e)
	}
	return out
}

func composeExecCmd(a *app) *cobra.Command {
	var (
		index                     int
		noTTY, detach, privileged bool
		user, workdir             string
		env                       []string
	)
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] SERVICE COMMAND [ARGS...]",
		Short: "Execute a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth exec")
			if err != nil {
				return err
			}
			defer s.Close()
			c, err := composeFindContainer(ctx, s, args[0], index)
			if err != nil {
				return err
			}
			tty := !noTTY && composeIsTTY(a.stdin) && composeIsTTY(a.stdout)
			ps := crt.ProcessSpec{Args: args[1:], Env: composeEnvList(env), User: user, WorkingDir: workdir, Tty: tty, Privileged: privileged}
			code, err := composeRunProcess(a, tty, detach, func(stdio crt.Stdio) (int, error) {
				return s.parts.rt.Exec(ctx, c.ID, ps, stdio)
			})
			if err != nil {
				return composeFail(err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.IntVar(&index, "index", 0, "Index of the container if service has multiple replicas")
	fl.BoolVarP(&noTTY, "no-TTY", "T", false, "Disable pseudo-TTY allocation")
	fl.BoolVarP(&detach, "detach", "d", false, "Detached mode: Run command in the background")
	fl.BoolVar(&privileged, "privileged", false, "Give extended privileges to the process")
	fl.StringVarP(&user, "user", "u", "", "Run the command as this user")
	fl.StringVarP(&workdir, "workdir", "w", "", "Path to workdir directory for this command")
	fl.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	return cmd
}

func composeIsTTY(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// composeRunProcess connects the terminal to a process run by fn (raw mode for a tty).
func composeRunProcess(a *app, tty, detach bool, fn func(crt.Stdio) (int, error)) (int, error) {
	stdio := crt.Stdio{Stdin: a.stdin, Stdout: a.stdout, Stderr: a.stderr, Detach: detach}
	if detach {
		stdio.Stdin = nil
	}
	if tty {
		if f, ok := a.stdin.(*os.File); ok {
			if st, err := term.MakeRaw(int(f.Fd())); err == nil {
				defer term.Restore(int(f.Fd()), st)
			}
		}
	}
	return fn(stdio)
}

// --- run ---

func composeRunCmd(a *app) *cobra.Command {
	var (
		rm, detach, noDeps, noTTY, servicePorts, interactive bool
		env, publish, volumes                                []string
		entrypoint, user, workdir, name                      string
	)
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] SERVICE [COMMAND] [ARGS...]",
		Short: "Run a one-off command on a service",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth run")
			if err != nil {
				return err
			}
			defer s.Close()
			svc, ok := s.p.Service(args[0])
			if !ok {
				for _, d := range s.p.DisabledServices {
					if d.Name == args[0] {
						svc, ok = d, true
					}
				}
			}
			if !ok {
				return &exitError{code: 1, err: fmt.Errorf("no such service: %s", args[0])}
			}
			prog := composeNewProgress(a)
			if !noDeps && len(svc.DependsOn) > 0 {
				var deps []string
				for d := range svc.DependsOn {
					deps = append(deps, d)
				}
				sort.Strings(deps)
				if _, err := s.e.Up(ctx, s.p, engine.UpOptions{Options: planner.Options{Services: deps}}, prog); err != nil {
					return composeFail(err)
				}
			} else if _, err := s.e.Up(ctx, composeResourcesOnly(s.p, svc), engine.UpOptions{}, prog); err != nil {
				// Without dependencies to bring up, the project's networks and volumes are
				// still needed, as `docker compose run` makes them.
				return composeFail(err)
			}
			opt := engine.CreateOptions{OneOff: true, NoRestart: true, User: user, WorkingDir: workdir, Number: 1}
			opt.Name = name
			if opt.Name == "" {
				opt.Name = fmt.Sprintf("%s-%s-run-%s", s.p.Name, svc.Name, engine.NewID()[:12])
			}
			if len(args) > 1 {
				opt.Command = args[1:]
			}
			if cmd.Flags().Changed("entrypoint") {
				opt.Entrypoint = strings.Fields(entrypoint)
			}
			if len(env) > 0 {
				opt.Env = map[string]string{}
				for _, kv := range composeEnvList(env) {
					k, v, _ := strings.Cut(kv, "=")
					opt.Env[k] = v
				}
			}
			if !servicePorts {
				opt.Ports = []spec.Port{}
			}
			for _, p := range publish {
				port, err := composeParsePublish(p)
				if err != nil {
					return err
				}
				opt.Ports = append(opt.Ports, port)
			}
			for _, v := range volumes {
				m, err := composeParseVolume(v)
				if err != nil {
					return err
				}
				opt.Volumes = append(opt.Volumes, m)
			}
			tty := !noTTY && !detach && composeIsTTY(a.stdin) && composeIsTTY(a.stdout)
			opt.Tty = tty
			opt.OpenStdin = !detach && interactive
			opt.AutoRemove = rm && detach
			id, err := s.e.CreateContainer(ctx, s.p, svc, opt)
			if err != nil {
				return composeFail(err)
			}
			cleanup := func() {
				if rm {
					cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
					defer cancel()
					_ = s.e.RemoveContainer(cctx, s.p, id)
				}
			}
			if detach {
				if err := s.parts.rt.Start(ctx, id); err != nil {
					cleanup()
					return composeFail(err)
				}
				fmt.Fprintln(a.stdout, opt.Name)
				return nil
			}
			code, err := composeRunProcess(a, tty, false, func(stdio crt.Stdio) (int, error) {
				if !opt.OpenStdin {
					stdio.Stdin = nil
				}
				return s.parts.rt.Run(ctx, id, stdio)
			})
			cleanup()
			if err != nil {
				return composeFail(err)
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false)
	fl.BoolVar(&rm, "rm", false, "Automatically remove the container when it exits")
	fl.BoolVarP(&detach, "detach", "d", false, "Run container in background and print container ID")
	fl.BoolVar(&noDeps, "no-deps", false, "Don't start linked services")
	fl.BoolVarP(&noTTY, "no-TTY", "T", false, "Disable pseudo-TTY allocation (default: auto-detected)")
	fl.BoolVarP(&interactive, "interactive", "i", true, "Keep STDIN open even if not attached")
	fl.BoolVarP(&servicePorts, "service-ports", "P", false, "Run command with all service's ports enabled and mapped to the host")
	fl.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	fl.StringArrayVarP(&publish, "publish", "p", nil, "Publish a container's port(s) to the host")
	fl.StringArrayVarP(&volumes, "volume", "v", nil, "Bind mount a volume")
	fl.StringVar(&entrypoint, "entrypoint", "", "Override the entrypoint of the image")
	fl.StringVarP(&user, "user", "u", "", "Run as specified username or uid")
	fl.StringVarP(&workdir, "workdir", "w", "", "Working directory inside the container")
	fl.StringVar(&name, "name", "", "Assign a name to the container")
	return cmd
}

// composeParsePublish parses [[IP:]HOST:]CONTAINER[/PROTO].
func composeParsePublish(s string) (spec.Port, error) {
	bad := &exitError{code: 1, err: fmt.Errorf("-p %q: want [[IP:]HOST:]CONTAINER[/PROTO], e.g. 8080:80", s)}
	rest, proto, _ := strings.Cut(s, "/")
	if proto == "" {
		proto = "tcp"
	}
	parts := strings.Split(rest, ":")
	var p spec.Port
	p.Protocol = proto
	switch len(parts) {
	case 1:
	case 2:
		p.Published = parts[0]
	case 3:
		p.HostIP, p.Published = parts[0], parts[1]
	default:
		return p, bad
	}
	n, err := strconv.ParseUint(parts[len(parts)-1], 10, 16)
	if err != nil {
		return p, bad
	}
	p.Target = uint32(n)
	return p, nil
}

// composeParseVolume parses SRC:DST[:ro] (absolute or relative SRC binds, names are volumes).
func composeParseVolume(s string) (spec.Mount, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return spec.Mount{}, &exitError{code: 1, err: fmt.Errorf("-v %q: want SOURCE:TARGET[:ro]", s)}
	}
	m := spec.Mount{Source: parts[0], Target: parts[1], Type: spec.MountVolume}
	if strings.HasPrefix(m.Source, "/") || strings.HasPrefix(m.Source, ".") {
		m.Type = spec.MountBind
		if !strings.HasPrefix(m.Source, "/") {
			wd, _ := os.Getwd()
			m.Source = wd + "/" + m.Source
		}
	}
	if len(parts) == 3 && parts[2] == "ro" {
		m.ReadOnly = true
	}
	return m, nil
}

// --- start, stop, restart, kill, pause, unpause, rm ---

func composeStartCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "start [SERVICE...]",
		Short: "Start services",
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := composeOpen(cmd.Context(), a, false, "berth start")
			if err != nil {
				return err
			}
			defer s.Close()
			return composeFail(s.e.Start(cmd.Context(), s.p, args, composeNewProgress(a)))
		},
	}
}

func composeStopCmd(a *app) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "stop [SERVICE...]",
		Short: "Stop services",
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := composeOpen(cmd.Context(), a, false, "berth stop")
			if err != nil {
				return err
			}
			defer s.Close()
			return composeFail(s.e.Stop(cmd.Context(), s.p, args, composeTimeout(cmd, timeout), composeNewProgress(a)))
		},
	}
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "Specify a shutdown timeout in seconds")
	return cmd
}

func composeRestartCmd(a *app) *cobra.Command {
	var (
		timeout int
		noDeps  bool
	)
	cmd := &cobra.Command{
		Use:   "restart [SERVICE...]",
		Short: "Restart service containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := composeOpen(cmd.Context(), a, false, "berth restart")
			if err != nil {
				return err
			}
			defer s.Close()
			prog := composeNewProgress(a)
			if err := s.e.Stop(cmd.Context(), s.p, args, composeTimeout(cmd, timeout), prog); err != nil {
				return composeFail(err)
			}
			return composeFail(s.e.Start(cmd.Context(), s.p, args, prog))
		},
	}
	cmd.Flags().IntVarP(&timeout, "timeout", "t", 10, "Specify a shutdown timeout in seconds")
	cmd.Flags().BoolVar(&noDeps, "no-deps", false, "Don't restart dependent services")
	return cmd
}

func composeKillCmd(a *app) *cobra.Command {
	var (
		sig           string
		removeOrphans bool
	)
	cmd := &cobra.Command{
		Use:   "kill [SERVICE...]",
		Short: "Force stop service containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := composeOpen(cmd.Context(), a, false, "berth kill")
			if err != nil {
				return err
			}
			defer s.Close()
			return composeFail(s.e.Signal(cmd.Context(), s.p, args, sig))
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "SIGKILL", "SIGNAL to send to the container")
	cmd.Flags().BoolVar(&removeOrphans, "remove-orphans", false, "Remove containers for services not defined in the Compose file")
	return cmd
}

func composePauseCmd(a *app, unpause bool) *cobra.Command {
	use, short := "pause [SERVICE...]", "Pause services"
	if unpause {
		use, short = "unpause [SERVICE...]", "Unpause services"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := composeOpen(cmd.Context(), a, false, "berth "+cmd.Name())
			if err != nil {
				return err
			}
			defer s.Close()
			done, err := s.e.Pause(cmd.Context(), s.p, args, unpause)
			for _, c := range done {
				fmt.Fprintf(a.stderr, "Container %s %sd\n", c.Name, strings.Title(cmd.Name())) //nolint:staticcheck
			}
			return composeFail(err)
		},
	}
}

func composeRmCmd(a *app) *cobra.Command {
	var force, stop, volumes bool
	cmd := &cobra.Command{
		Use:   "rm [SERVICE...]",
		Short: "Removes stopped service containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth rm")
			if err != nil {
				return err
			}
			defer s.Close()
			prog := composeNewProgress(a)
			if stop {
				if err := s.e.Stop(ctx, s.p, args, nil, prog); err != nil {
					return composeFail(err)
				}
			}
			removed, err := s.e.RemoveStopped(ctx, s.p, args, false, prog)
			if len(removed) == 0 && err == nil {
				fmt.Fprintln(a.stderr, "No stopped containers")
			}
			return composeFail(err)
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&force, "force", "f", false, "Don't ask to confirm removal")
	fl.BoolVarP(&stop, "stop", "s", false, "Stop the containers, if required, before removing")
	fl.BoolVarP(&volumes, "volumes", "v", false, "Remove any anonymous volumes attached to containers")
	return cmd
}

// --- create, pull, scale ---

func composeCreateCmd(a *app) *cobra.Command {
	var f composeUpFlags
	cmd := &cobra.Command{
		Use:   "create [SERVICE...]",
		Short: "Creates containers for a service",
		RunE: func(cmd *cobra.Command, args []string) error {
			return composeUp(cmd, a, &f, args, true)
		},
	}
	composeUpFlagSet(cmd, &f, false)
	return cmd
}

func composePullCmd(a *app) *cobra.Command {
	var ignoreFailures, quiet bool
	cmd := &cobra.Command{
		Use:   "pull [SERVICE...]",
		Short: "Pull service images",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth pull")
			if err != nil {
				return err
			}
			defer s.Close()
			prog := composeNewProgress(a)
			var errs []error
			for _, svc := range s.p.Services {
				if len(args) > 0 && !composeContains(args, svc.Name) || svc.Image == "" {
					continue
				}
				ev := engine.Event{Time: time.Now(), Resource: "image:" + svc.Image, Name: svc.Image, Kind: "EnsureImage"}
				if err := (wireImages{s: s.parts.store}).Pull(ctx, svc.Image); err != nil {
					ev.Status, ev.Text, ev.Err = engine.StatusError, err.Error(), err
					prog.Event(ev)
					if !ignoreFailures {
						errs = append(errs, err)
					}
					continue
				}
				ev.Status, ev.Text = engine.StatusDone, "Pulled"
				prog.Event(ev)
			}
			return composeFail(errors.Join(errs...))
		},
	}
	cmd.Flags().BoolVar(&ignoreFailures, "ignore-pull-failures", false, "Pull what it can and ignores images with pull failures")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Pull without printing progress information")
	return cmd
}

func composeScaleCmd(a *app) *cobra.Command {
	var noDeps bool
	cmd := &cobra.Command{
		Use:   "scale SERVICE=REPLICAS...",
		Short: "Scale services",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			scale, err := composeParseScale(args)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth scale")
			if err != nil {
				return err
			}
			defer s.Close()
			var services []string
			for n := range scale {
				services = append(services, n)
			}
			sort.Strings(services)
			opt := engine.UpOptions{Options: planner.Options{Services: services, Scale: scale, NoRecreate: true, NoDeps: noDeps}}
			_, err = s.e.Up(ctx, s.p, opt, composeNewProgress(a))
			return composeFail(err)
		},
	}
	cmd.Flags().BoolVar(&noDeps, "no-deps", false, "Don't start linked services")
	return cmd
}

// --- images, top, port, ls, wait, events ---

func composeImagesCmd(a *app) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "images [SERVICE...]",
		Short: "List images used by the created containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, true, "berth images")
			if err != nil {
				return err
			}
			defer s.Close()
			cs, err := s.e.Select(ctx, s.p, args, true)
			if err != nil {
				return composeFail(err)
			}
			type row struct {
				Container, Repository, Tag, ID string
				Size                           int64
			}
			var rows []row
			for _, c := range cs {
				ref := c.Labels[engine.LabelImageRef]
				repo, tag := ref, "latest"
				if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
					repo, tag = ref[:i], ref[i+1:]
				}
				r := row{Container: c.Name, Repository: repo, Tag: tag, ID: c.Labels[planner.LabelImage]}
				if s.parts.store != nil {
					if img, err := s.parts.store.Resolve(ctx, r.ID); err == nil {
						r.Size = img.Size
					}
				}
				rows = append(rows, r)
			}
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(a.stdout, r.ID)
				}
				return nil
			}
			if format == "json" {
				b, _ := json.Marshal(rows)
				fmt.Fprintf(a.stdout, "%s\n", b)
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER\tREPOSITORY\tTAG\tIMAGE ID\tSIZE")
			for _, r := range rows {
				id := strings.TrimPrefix(r.ID, "sha256:")
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Container, r.Repository, r.Tag, id[:min(12, len(id))], composeSize(r.Size))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display IDs")
	cmd.Flags().StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
	return cmd
}

func composeSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fGB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fMB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fkB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}

func composeTopCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "top [SERVICE...]",
		Short: "Display the running processes",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth top")
			if err != nil {
				return err
			}
			defer s.Close()
			cs, err := s.e.Select(ctx, s.p, args, false)
			if err != nil {
				return composeFail(err)
			}
			for _, c := range cs {
				if c.State != planner.StateRunning {
					continue
				}
				pids, err := s.parts.rt.Processes(ctx, c.ID)
				if err != nil {
					return composeFail(err)
				}
				fmt.Fprintln(a.stdout, c.Name)
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "PID\tCMD")
				for _, pid := range pids {
					b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
					fmt.Fprintf(tw, "%d\t%s\n", pid, strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")))
				}
				tw.Flush()
				fmt.Fprintln(a.stdout)
			}
			return nil
		},
	}
}

func composePortCmd(a *app) *cobra.Command {
	var (
		protocol string
		index    int
	)
	cmd := &cobra.Command{
		Use:   "port [OPTIONS] SERVICE PRIVATE_PORT",
		Short: "Print the public port for a port binding",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, true, "berth port")
			if err != nil {
				return err
			}
			defer s.Close()
			c, err := composeFindContainer(ctx, s, args[0], index)
			if err != nil {
				return err
			}
			want, err := strconv.ParseUint(args[1], 10, 16)
			if err != nil {
				return &exitError{code: 1, err: fmt.Errorf("private port %q is not a number", args[1])}
			}
			if s.parts.net != nil {
				ports, err := s.parts.net.PublishedPorts(ctx, c.ID)
				if err != nil {
					return composeFail(err)
				}
				for _, p := range ports {
					if uint64(p.ContainerPort) == want && (p.Protocol == protocol || p.Protocol == "" && protocol == "tcp") {
						host := p.HostIP
						if host == "" {
							host = "0.0.0.0"
						}
						fmt.Fprintf(a.stdout, "%s:%d\n", host, p.HostPort)
						return nil
					}
				}
			}
			return &exitError{code: 1, err: fmt.Errorf("no port %d/%s published for %s", want, protocol, args[0])}
		},
	}
	cmd.Flags().StringVar(&protocol, "protocol", "tcp", "tcp or udp")
	cmd.Flags().IntVar(&index, "index", 0, "Index of the container if service has multiple replicas")
	return cmd
}

func composeLsCmd(a *app) *cobra.Command {
	var (
		all, quiet bool
		format     string
	)
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List running compose projects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			parts, err := wireOpen(a, true)
			if err != nil {
				return err
			}
			defer parts.Close()
			type project struct {
				Name        string `json:"Name"`
				Status      string `json:"Status"`
				ConfigFiles string `json:"ConfigFiles"`
				states      map[string]int
			}
			projects := map[string]*project{}
			if parts.rt != nil {
				cs, err := wireRuntime{r: parts.rt}.List(ctx)
				if err != nil {
					return composeFail(err)
				}
				for _, c := range cs {
					name := c.Labels[planner.LabelProject]
					if name == "" {
						continue
					}
					p := projects[name]
					if p == nil {
						p = &project{Name: name, ConfigFiles: c.Labels[planner.LabelConfigFile], states: map[string]int{}}
						projects[name] = p
					}
					p.states[c.State]++
				}
			}
			var names []string
			for n, p := range projects {
				if !all && p.states[planner.StateRunning] == 0 {
					continue
				}
				var st []string
				for s, k := range p.states {
					st = append(st, fmt.Sprintf("%s(%d)", s, k))
				}
				sort.Strings(st)
				p.Status = strings.Join(st, ", ")
				names = append(names, n)
			}
			sort.Strings(names)
			switch {
			case quiet:
				for _, n := range names {
					fmt.Fprintln(a.stdout, n)
				}
			case format == "json":
				out := make([]*project, 0, len(names))
				for _, n := range names {
					out = append(out, projects[n])
				}
				b, _ := json.Marshal(out)
				fmt.Fprintf(a.stdout, "%s\n", b)
			default:
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "NAME\tSTATUS\tCONFIG FILES")
				for _, n := range names {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", n, projects[n].Status, projects[n].ConfigFiles)
				}
				return tw.Flush()
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Show all stopped Compose projects")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display project names")
	cmd.Flags().StringVar(&format, "format", "table", "Format the output. Values: [table | json]")
	return cmd
}

func composeWaitCmd(a *app) *cobra.Command {
	var downProject bool
	cmd := &cobra.Command{
		Use:   "wait SERVICE [SERVICE...]",
		Short: "Block until containers of all (or specified) services stop.",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, false, "berth wait")
			if err != nil {
				return err
			}
			defer s.Close()
			cs, err := s.e.Select(ctx, s.p, args, false)
			if err != nil {
				return composeFail(err)
			}
			var mu sync.Mutex
			codes := map[string]int{}
			err = s.e.Each(ctx, cs, func(ctx context.Context, c engine.ContainerInfo) error {
				code, err := s.parts.rt.Wait(ctx, c.ID)
				if err != nil {
					return err
				}
				mu.Lock()
				codes[c.Name] = code
				mu.Unlock()
				return nil
			})
			if err != nil {
				return composeFail(err)
			}
			exit := 0
			for _, c := range cs {
				fmt.Fprintf(a.stdout, "%s exited with code %d\n", c.Name, codes[c.Name])
				if codes[c.Name] != 0 && exit == 0 {
					exit = codes[c.Name]
				}
			}
			if downProject {
				if _, err := s.e.Down(ctx, s.p, engine.DownOptions{}, composeNewProgress(a)); err != nil {
					return composeFail(err)
				}
			}
			if exit != 0 {
				return &exitError{code: exit}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&downProject, "down-project", false, "Drops project when the first container stops")
	return cmd
}

func composeEventsCmd(a *app) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "events [SERVICE...]",
		Short: "Receive real time events from containers",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			s, err := composeOpen(ctx, a, true, "berth events")
			if err != nil {
				return err
			}
			defer s.Close()
			last := map[string]string{}
			first := true
			for {
				cs, err := s.e.Select(ctx, s.p, args, true)
				if err != nil {
					return composeFail(err)
				}
				seen := map[string]bool{}
				for _, c := range cs {
					seen[c.ID] = true
					st := c.State + "/" + c.Health
					if old, ok := last[c.ID]; !first && (!ok || old != st) {
						composeEmitEvent(a.stdout, asJSON, c, composeEventAction(last[c.ID], c))
					}
					last[c.ID] = st
				}
				for id := range last {
					if !seen[id] {
						if !first {
							composeEmitEvent(a.stdout, asJSON, engine.ContainerInfo{ID: id, Labels: map[string]string{}}, "destroy")
						}
						delete(last, id)
					}
				}
				first = false
				if !composeAwaitChange(ctx, s.parts, last) {
					return nil
				}
			}
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "Output events as a stream of json objects")
	return cmd
}

// composeAwaitChange returns when a container of ids changed state or any container was
// created or removed (or after 2s, to notice monitors that died silently), and false when ctx
// ended. Without a runtime it polls every 500ms.
func composeAwaitChange(ctx context.Context, parts *wireParts, ids map[string]string) bool {
	wait := 500 * time.Millisecond
	var changes <-chan struct{}
	if parts != nil && parts.rt != nil {
		list := make([]string, 0, len(ids))
		for id := range ids {
			list = append(list, id)
		}
		if ch, stop, err := parts.rt.WatchContainers(ctx, list); err == nil {
			defer stop()
			changes, wait = ch, 2*time.Second
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-changes:
	case <-t.C:
	}
	return true
}

func composeEventAction(old string, c engine.ContainerInfo) string {
	switch {
	case old == "":
		return "create"
	case c.State == planner.StateRunning && strings.HasPrefix(old, planner.StateRunning) && c.Health != "":
		return "health_status: " + c.Health
	case c.State == planner.StateRunning:
		return "start"
	case c.State == planner.StatePaused:
		return "pause"
	case c.State == planner.StateExited:
		return "die"
	}
	return c.State
}

func composeEmitEvent(w io.Writer, asJSON bool, c engine.ContainerInfo, action string) {
	now := time.Now()
	if asJSON {
		b, _ := json.Marshal(map[string]any{"time": now.Format(time.RFC3339Nano), "type": "container", "action": action,
			"id": c.ID, "service": c.Labels[planner.LabelService], "attributes": map[string]string{"name": c.Name}})
		fmt.Fprintf(w, "%s\n", b)
		return
	}
	fmt.Fprintf(w, "%s container %s %s (name=%s)\n", now.Format(time.RFC3339Nano), action, c.ID, c.Name)
}

// composeResourcesOnly is p reduced to what a one-off container of svc needs before it is
// created: its networks, volumes and image. The only enabled service is a stand-in for svc with
// no replicas and no dependencies; the real services are disabled, which the planner treats
// as known (not orphans) and leaves alone.
func composeResourcesOnly(p *spec.Project, svc spec.Service) *spec.Project {
	stand := svc
	stand.Name = svc.Name + "-run-resources"
	stand.Image = svc.ImageName(p.Name)
	stand.Scale = 0
	stand.DependsOn, stand.Links, stand.VolumesFrom = nil, nil, nil
	stand.ContainerName = ""
	if strings.HasPrefix(stand.NetworkMode, "service:") || strings.HasPrefix(stand.NetworkMode, "container:") {
		stand.NetworkMode = ""
	}
	q := *p
	q.Services = []spec.Service{stand}
	q.DisabledServices = append(slices.Clone(p.Services), p.DisabledServices...)
	return &q
}
