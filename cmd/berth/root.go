package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	root.SetArgs(expandGlobalShorthands(root, args))
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
			configureLogrus(a.stderr, a.opts.Debug)
			return nil
		},
	}
	root.CompletionOptions.HiddenDefaultCmd = false
	f := root.PersistentFlags()
	// -f and -p are Compose's shorthands for --file and --project-name. Docker's commands use the
	// same letters for their own flags (rm -f, logs -f, run -p), so the shorthands are expanded
	// by expandGlobalShorthands rather than registered here.
	f.StringArrayVar(&a.opts.Files, "file", nil, "Compose configuration files, -f (repeatable; merged in order)")
	f.StringVar(&a.opts.ProjectName, "project-name", "", "Project name, -p")
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
	addBuildCommands(root, a)
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

// globalShorthands are the root's shorthands that subcommands may reuse for flags of their own.
var globalShorthands = map[string]string{"-f": "--file", "-p": "--project-name"}

// expandGlobalShorthands rewrites -f and -p into --file and --project-name where they mean the
// global flags: always before the subcommand (`berth -f x.yaml up`), and after it only when the
// subcommand has no -f or -p of its own (`berth up -f x.yaml`, but `berth logs -f` follows).
// Nothing after the first positional argument of the subcommand is touched: that is where
// `berth run SERVICE CMD...` and `berth exec SERVICE CMD...` carry the container's command.
func expandGlobalShorthands(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		cmd = root
	}
	names := len(strings.Fields(cmd.CommandPath())) - 1 // subcommand words to skip
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(out, args[i:]...)
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if i > 0 && takesValue(root, cmd, args[i-1]) {
				out = append(out, arg)
				continue
			}
			if names == 0 {
				// The subcommand's first positional argument: leave the rest alone.
				return append(out, args[i:]...)
			}
			names--
			out = append(out, arg)
			continue
		}
		key, value, hasValue := arg, "", false
		if len(arg) > 2 && arg[1] != '-' {
			key, value, hasValue = arg[:2], strings.TrimPrefix(arg[2:], "="), true
		}
		long, global := globalShorthands[key]
		inSubcommand := names == 0 && cmd != root
		if global && inSubcommand && cmd.LocalNonPersistentFlags().ShorthandLookup(key[1:]) != nil {
			global = false
		}
		if !global {
			out = append(out, arg)
			continue
		}
		if hasValue {
			out = append(out, long+"="+value)
		} else {
			out = append(out, long)
		}
	}
	return out
}

// takesValue reports whether the flag written as arg (a root flag or one of cmd's) consumes the
// next argument as its value.
func takesValue(root, cmd *cobra.Command, arg string) bool {
	if !strings.HasPrefix(arg, "-") || strings.Contains(arg, "=") || arg == "-" || arg == "--" {
		return false
	}
	if _, ok := globalShorthands[arg]; ok {
		return true
	}
	lookup := func(c *cobra.Command) *pflag.Flag {
		if strings.HasPrefix(arg, "--") {
			if f := c.Flags().Lookup(arg[2:]); f != nil {
				return f
			}
			return c.PersistentFlags().Lookup(arg[2:])
		}
		// -abc: only the last shorthand can take a value.
		short := arg[len(arg)-1:]
		if f := c.Flags().ShorthandLookup(short); f != nil {
			return f
		}
		return c.PersistentFlags().ShorthandLookup(short)
	}
	f := lookup(cmd)
	if f == nil {
		f = lookup(root)
	}
	return f != nil && f.NoOptDefVal == ""
}

// configureLogrus tames the global logrus logger that compose-go and libcontainer write to:
// warnings reach the user as plain "level=warning" lines, debug output only with --debug.
func configureLogrus(w io.Writer, debug bool) {
	logrus.SetOutput(w)
	logrus.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableQuote: true})
	if debug {
		logrus.SetLevel(logrus.DebugLevel)
	} else {
		logrus.SetLevel(logrus.WarnLevel)
	}
}
