package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/spec"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// globalOptions are the flags every command shares.
type globalOptions struct {
	Files       []string
	ProjectName string
	ProjectDir  string
	EnvFiles    []string
	Profiles    []string
	Root        string
	RunRoot     string
	Progress    string
	Parallel    int
	Debug       bool
}

// app carries what the commands need; it is built once per process in run.
type app struct {
	opts   globalOptions
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	logger *slog.Logger
}

// exitError carries a specific exit code (a container's, or Compose's) out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := newRootCmd(a)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(stderr, "berth:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "berth:", err)
	var se *spec.Error
	if errors.As(err, &se) || errors.Is(err, spec.ErrInvalid) || errors.Is(err, spec.ErrNotFound) {
		return 1
	}
	return 1
}

func newRootCmd(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "Run Compose projects on an embedded, daemonless container engine",
		Long: `berth reads a Compose file and runs it: images built or pulled, networks and volumes
made, containers started in dependency order. No daemon: each command observes, plans, acts
and exits; every container keeps running under its own small monitor.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelWarn
			if a.opts.Debug {
				level = slog.LevelDebug
			}
			a.logger = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			return nil
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = false
	f := root.PersistentFlags()
	f.StringArrayVarP(&a.opts.Files, "file", "f", nil, "Compose configuration files (repeatable; merged in order)")
	f.StringVarP(&a.opts.ProjectName, "project-name", "p", "", "Project name")
	f.StringVar(&a.opts.ProjectDir, "project-directory", "", "Alternate working directory (default: the first compose file's directory)")
	f.StringArrayVar(&a.opts.EnvFiles, "env-file", nil, "Alternate environment files (repeatable)")
	f.StringArrayVar(&a.opts.Profiles, "profile", nil, "Profiles to enable (repeatable)")
	f.StringVar(&a.opts.Root, "root", envOr("BERTH_ROOT", "/var/lib/berth"), "State root directory (env BERTH_ROOT)")
	f.StringVar(&a.opts.RunRoot, "run-root", envOr("BERTH_RUN_ROOT", "/run/berth"), "Runtime state directory (env BERTH_RUN_ROOT)")
	f.StringVar(&a.opts.Progress, "progress", "auto", "Progress output: auto, tty, plain, json, quiet")
	f.IntVar(&a.opts.Parallel, "parallel", -1, "Maximum parallel actions (-1: unlimited)")
	f.BoolVar(&a.opts.Debug, "debug", false, "Log debug information to stderr")

	root.AddCommand(newVersionCmd(a), newGenDocsCmd())
	addConfigCommands(root, a)
	addGraphCommand(root, a)
	addComposeCommands(root, a)
	addImageCommands(root, a)
	addContainerCommands(root, a)
	addVolumeCommands(root, a)
	addNetworkCommands(root, a)
	addConvertCommand(root, a)
	return root
}

func newVersionCmd(a *app) *cobra.Command {
	var short bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the berth version information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if short {
				fmt.Fprintln(a.stdout, version)
				return nil
			}
			fmt.Fprintf(a.stdout, "berth version %s\n", version)
			return nil
		},
	}
	cmd.Flags().BoolVar(&short, "short", false, "Print only the version number")
	return cmd
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
