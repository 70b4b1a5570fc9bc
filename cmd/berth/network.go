package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/netns"
)

// addNetworkCommands registers `berth network ...` and the hidden `__dns` server mode.
func addNetworkCommands(root *cobra.Command, a *app) {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Manage networks",
	}
	cmd.AddCommand(networkLsCmd(a), networkInspectCmd(a), networkCreateCmd(a), networkRmCmd(a),
		networkPruneCmd(a), networkConnectCmd(a), networkDisconnectCmd(a))
	root.AddCommand(cmd)
	root.AddCommand(&cobra.Command{
		Use:                "__dns",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return netns.RunDNS(cmd.Context(), args)
		},
	})
}

// networkManager opens the network manager on the global roots.
func networkManager(a *app) (*netns.Manager, error) {
	return netns.New(netns.Config{
		Root:    filepath.Join(a.opts.Root, "networks"),
		RunRoot: a.opts.RunRoot,
		Logger:  a.logger,
	})
}

func networkLsCmd(a *app) *cobra.Command {
	var quiet bool
	var format string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := networkManager(a)
			if err != nil {
				return err
			}
			nets, err := m.ListNetworks(cmd.Context())
			if err != nil {
				return err
			}
			switch {
			case quiet:
				for _, n := range nets {
					fmt.Fprintln(a.stdout, n.Name)
				}
			case format == "json":
				return json.NewEncoder(a.stdout).Encode(nets)
			default:
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 3, ' ', 0)
				fmt.Fprintln(tw, "NETWORK ID\tNAME\tDRIVER\tSUBNET\tGATEWAY\tINTERNAL")
				for _, n := range nets {
					fmt.Fprintf(tw, "%s\t%s\tbridge\t%s\t%s\t%t\n", n.ID[:12], n.Name, n.Subnet, n.Gateway, n.Internal)
				}
				return tw.Flush()
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "Only display network names")
	cmd.Flags().StringVar(&format, "format", "table", "Output format: table or json")
	return cmd
}

func networkInspectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NETWORK...",
		Short: "Display detailed information on one or more networks",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := networkManager(a)
			if err != nil {
				return err
			}
			var out []netns.Network
			for _, name := range args {
				n, err := m.InspectNetwork(cmd.Context(), name)
				if err != nil {
					return networkUserError(err)
				}
				out = append(out, n)
			}
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "    ")
			return enc.Encode(out)
		},
	}
}

func networkCreateCmd(a *app) *cobra.Command {
	var nc netns.NetworkConfig
	var labels, opts []string
	var driver string
	cmd := &cobra.Command{
		Use:   "create NETWORK",
		Short: "Create a network",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if driver != "" && driver != "bridge" {
				return &exitError{code: 1, err: fmt.Errorf("driver %q is not supported: berth networks are bridges", driver)}
			}
			var err error
			nc.Name = args[0]
			if nc.Labels, err = networkKV(labels, "label"); err != nil {
				return err
			}
			if nc.DriverOpts, err = networkKV(opts, "opt"); err != nil {
				return err
			}
			m, err := networkManager(a)
			if err != nil {
				return err
			}
			n, err := m.EnsureNetwork(cmd.Context(), nc)
			if err != nil {
				return networkUserError(err)
			}
			fmt.Fprintln(a.stdout, n.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "bridge", "Driver (only bridge)")
	f.BoolVar(&nc.Internal, "internal", false, "Restrict external access to the network")
	f.StringVar(&nc.Subnet, "subnet", "", "Subnet in CIDR format")
	f.StringVar(&nc.Gateway, "gateway", "", "Gateway address of the subnet")
	f.StringVar(&nc.IPRange, "ip-range", "", "Allocate container addresses from a sub-range (CIDR)")
	f.StringArrayVar(&labels, "label", nil, "Set metadata on the network (KEY=VALUE, repeatable)")
	f.StringArrayVarP(&opts, "opt", "o", nil, "Driver options (KEY=VALUE, repeatable)")
	return cmd
}

func networkKV(items []string, what string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, it := range items {
		k, v, _ := strings.Cut(it, "=")
		if k == "" {
			return nil, &exitError{code: 1, err: fmt.Errorf("--%s %q: use KEY=VALUE", what, it)}
		}
		out[k] = v
	}
	return out, nil
}

func networkRmCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm NETWORK...",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := networkManager(a)
			if err != nil {
				return err
			}
			var errs []error
			for _, name := range args {
				if _, err := m.InspectNetwork(cmd.Context(), name); err != nil {
					errs = append(errs, networkUserError(err))
					continue
				}
				rm := m.RemoveNetwork
				if force {
					rm = m.RemoveNetworkForce
				}
				if err := rm(cmd.Context(), name); err != nil {
					errs = append(errs, networkUserError(err))
					continue
				}
				fmt.Fprintln(a.stdout, name)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "Remove even while containers are attached")
	return cmd
}

func networkPruneCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove all networks no container uses, and what killed berth processes left behind",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !force {
				fmt.Fprintln(a.stderr, "berth: removing every network without containers (use -f to skip this notice)")
			}
			m, err := networkManager(a)
			if err != nil {
				return err
			}
			if err := m.Recover(cmd.Context()); err != nil {
				return err
			}
			nets, err := m.ListNetworks(cmd.Context())
			if err != nil {
				return err
			}
			for _, n := range nets {
				err := m.RemoveNetwork(cmd.Context(), n.Name)
				if errors.Is(err, netns.ErrInUse) {
					continue
				}
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, "Deleted Network:", n.Name)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "Do not print a notice")
	return cmd
}

func networkConnectCmd(a *app) *cobra.Command {
	var ep netns.EndpointConfig
	cmd := &cobra.Command{
		Use:   "connect NETWORK CONTAINER_ID",
		Short: "Connect a container (by ID) to a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := networkManager(a)
			if err != nil {
				return err
			}
			e, err := m.Attach(cmd.Context(), args[1], args[0], ep)
			if err != nil {
				return networkUserError(err)
			}
			fmt.Fprintf(a.stdout, "%s %s/%d\n", e.Interface, e.IP, e.Prefix)
			return nil
		},
	}
	cmd.Flags().StringVar(&ep.IPv4Address, "ip", "", "IPv4 address")
	cmd.Flags().StringSliceVar(&ep.Aliases, "alias", nil, "Network-scoped alias for the container")
	return cmd
}

func networkDisconnectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "disconnect NETWORK CONTAINER_ID",
		Short: "Disconnect a container (by ID) from a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := networkManager(a)
			if err != nil {
				return err
			}
			return networkUserError(m.Detach(cmd.Context(), args[1], args[0]))
		},
	}
}

// networkUserError adds what to do to the errors a user can fix.
func networkUserError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, netns.ErrNotFound):
		return &exitError{code: 1, err: fmt.Errorf("%w\n  hint: `berth network ls` lists the networks", err)}
	case errors.Is(err, netns.ErrInUse):
		return &exitError{code: 1, err: fmt.Errorf("%w\n  hint: stop its containers first, or use --force", err)}
	case errors.Is(err, netns.ErrNoSandbox):
		return &exitError{code: 1, err: fmt.Errorf("%w\n  hint: the container must be running (its network namespace exists while it runs)", err)}
	case errors.Is(err, netns.ErrInvalid), errors.Is(err, netns.ErrAddressInUse), errors.Is(err, netns.ErrMismatch),
		errors.Is(err, netns.ErrPoolExhausted), errors.Is(err, netns.ErrPortInUse):
		return &exitError{code: 1, err: err}
	}
	return err
}
