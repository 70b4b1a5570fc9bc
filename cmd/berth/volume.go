package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/spf13/cobra"

	crt "github.com/berth-dev/berth/runtime"
)

// addVolumeCommands registers `berth volume ...`.
func addVolumeCommands(root *cobra.Command, a *app) {
	v := &cobra.Command{
		Use:   "volume",
		Short: "Manage named volumes",
	}
	v.AddCommand(volumeCreateCmd(a), volumeLsCmd(a), volumeInspectCmd(a), volumeRmCmd(a), volumePruneCmd(a))
	root.AddCommand(v)
}

func volumeOpen(a *app) (*crt.Volumes, error) {
	return crt.NewVolumes(filepath.Join(a.opts.Root, "volumes"))
}

// volumeUsers returns, per volume name, the containers that mount it.
func volumeUsers(cmd *cobra.Command, a *app, vols *crt.Volumes, name string) ([]string, error) {
	p, err := containerOpen(a)
	if err != nil {
		return nil, err
	}
	cs, err := p.rt.List(cmd.Context())
	if err != nil {
		return nil, err
	}
	return vols.InUse(name, cs), nil
}

func volumeCreateCmd(a *app) *cobra.Command {
	var labels, opts []string
	var driver string
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] [VOLUME]",
		Short: "Create a volume",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if driver != "local" {
				return fmt.Errorf("volume driver %q is not supported: only local", driver)
			}
			if len(opts) > 0 {
				return fmt.Errorf("volume driver options are not supported")
			}
			vols, err := volumeOpen(a)
			if err != nil {
				return err
			}
			name := containerAnonName()
			if len(args) == 1 {
				name = args[0]
			}
			lm := map[string]string{}
			for _, l := range labels {
				k, v, _ := strings.Cut(l, "=")
				lm[k] = v
			}
			if _, err := vols.Ensure(cmd.Context(), name, lm); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, name)
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "Set a label (KEY=VALUE)")
	cmd.Flags().StringVarP(&driver, "driver", "d", "local", "Volume driver")
	cmd.Flags().StringArrayVarP(&opts, "opt", "o", nil, "Driver options (not supported)")
	return cmd
}

func volumeLsCmd(a *app) *cobra.Command {
	var quiet bool
	var filters []string
	var format string
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List volumes",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vols, err := volumeOpen(a)
			if err != nil {
				return err
			}
			all, err := vols.List(cmd.Context())
			if err != nil {
				return err
			}
			var out []crt.Volume
			for _, v := range all {
				ok := true
				for _, f := range filters {
					k, val, _ := strings.Cut(f, "=")
					switch k {
					case "name":
						ok = ok && strings.Contains(v.Name, val)
					case "label":
						lk, lv, hasV := strings.Cut(val, "=")
						got, has := v.Labels[lk]
						ok = ok && has && (!hasV || got == lv)
					case "dangling":
						users, err := volumeUsers(cmd, a, vols, v.Name)
						if err != nil {
							return err
						}
						ok = ok && (len(users) == 0) == (val == "true" || val == "1")
					default:
						return fmt.Errorf("--filter %q: unsupported key (name, label, dangling)", f)
					}
				}
				if ok {
					out = append(out, v)
				}
			}
			if quiet {
				for _, v := range out {
					fmt.Fprintln(a.stdout, v.Name)
				}
				return nil
			}
			if format != "" && format != "table" {
				if format == "json" {
					for _, v := range out {
						b, _ := json.Marshal(v)
						fmt.Fprintln(a.stdout, string(b))
					}
					return nil
				}
				tmpl, err := template.New("ls").Funcs(containerTemplateFuncs).Parse(format)
				if err != nil {
					return fmt.Errorf("--format: %w", err)
				}
				for _, v := range out {
					if err := tmpl.Execute(a.stdout, v); err != nil {
						return fmt.Errorf("--format: %w", err)
					}
					fmt.Fprintln(a.stdout)
				}
				return nil
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "DRIVER\tVOLUME NAME")
			for _, v := range out {
				fmt.Fprintf(tw, "%s\t%s\n", v.Driver, v.Name)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display volume names")
	cmd.Flags().StringArrayVarP(&filters, "filter", "f", nil, "Filter output (name=, label=, dangling=)")
	cmd.Flags().StringVar(&format, "format", "", "Format output: table, json, or a Go template")
	return cmd
}

// volumeInspectJSON is Docker's volume inspect shape.
type volumeInspectJSON struct {
	CreatedAt  string            `json:"CreatedAt"`
	Driver     string            `json:"Driver"`
	Labels     map[string]string `json:"Labels"`
	Mountpoint string            `json:"Mountpoint"`
	Name       string            `json:"Name"`
	Options    map[string]string `json:"Options"`
	Scope      string            `json:"Scope"`
}

func volumeInspectCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] VOLUME [VOLUME...]",
		Short: "Display detailed information on one or more volumes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vols, err := volumeOpen(a)
			if err != nil {
				return err
			}
			var out []volumeInspectJSON
			for _, name := range args {
				v, err := vols.Inspect(cmd.Context(), name)
				if err != nil {
					return &exitError{code: 1, err: fmt.Errorf("no such volume: %s", name)}
				}
				out = append(out, volumeInspectJSON{CreatedAt: v.CreatedAt.Format("2006-01-02T15:04:05Z07:00"),
					Driver: v.Driver, Labels: v.Labels, Mountpoint: v.Mountpoint, Name: v.Name, Options: v.Options, Scope: "local"})
			}
			if format != "" {
				tmpl, err := template.New("inspect").Funcs(containerTemplateFuncs).Parse(format)
				if err != nil {
					return fmt.Errorf("--format: %w", err)
				}
				for _, v := range out {
					if err := tmpl.Execute(a.stdout, v); err != nil {
						return fmt.Errorf("--format: %w", err)
					}
					fmt.Fprintln(a.stdout)
				}
				return nil
			}
			b, _ := json.MarshalIndent(out, "", "    ")
			fmt.Fprintln(a.stdout, string(b))
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

func volumeRmCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] VOLUME [VOLUME...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more volumes",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			vols, err := volumeOpen(a)
			if err != nil {
				return err
			}
			failed := false
			for _, name := range args {
				if _, err := vols.Inspect(cmd.Context(), name); err != nil {
					if force {
						continue
					}
					fmt.Fprintf(a.stderr, "Error: no such volume: %s\n", name)
					failed = true
					continue
				}
				users, err := volumeUsers(cmd, a, vols, name)
				if err != nil {
					return err
				}
				if len(users) > 0 {
					fmt.Fprintf(a.stderr, "Error: volume %s is in use by %s: remove those containers first\n", name, strings.Join(users, ", "))
					failed = true
					continue
				}
				if err := vols.Remove(cmd.Context(), name); err != nil {
					fmt.Fprintln(a.stderr, "Error:", err)
					failed = true
					continue
				}
				fmt.Fprintln(a.stdout, name)
			}
			if failed {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not fail on missing volumes")
	return cmd
}

func volumePruneCmd(a *app) *cobra.Command {
	var force, all bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove unused volumes (anonymous ones, or all with --all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vols, err := volumeOpen(a)
			if err != nil {
				return err
			}
			list, err := vols.List(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Deleted Volumes:")
			for _, v := range list {
				if !all && v.Labels["io.berth.anonymous"] != "true" {
					continue
				}
				users, err := volumeUsers(cmd, a, vols, v.Name)
				if err != nil {
					return err
				}
				if len(users) > 0 {
					continue
				}
				if err := vols.Remove(cmd.Context(), v.Name); err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, v.Name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Remove all unused volumes, not just anonymous ones")
	return cmd
}
