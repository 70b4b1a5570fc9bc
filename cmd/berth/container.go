package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"text/template"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-dev/berth/netns"
	crt "github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/storage"
)

// Labels berth keeps on containers made by `berth container`.
const (
	containerImageIDLabel  = "io.berth.image.id"
	containerImageRefLabel = "io.berth.image.ref"
	containerAnonVolLabel  = "io.berth.anonymous-volumes"
	containerNetworkLabel  = "io.berth.network"
)

// containerDefaultNetwork is the network -p and --network bridge use, created on demand.
const containerDefaultNetwork = "bridge"

// addContainerCommands registers `berth container ...`.
func addContainerCommands(root *cobra.Command, a *app) {
	c := &cobra.Command{
		Use:     "container",
		Aliases: []string{"ctr"},
		Short:   "Manage containers",
	}
	c.AddCommand(
		containerRunCmd(a), containerCreateCmd(a), containerStartCmd(a), containerStopCmd(a),
		containerRestartCmd(a), containerKillCmd(a), containerRmCmd(a), containerExecCmd(a),
		containerLogsCmd(a), containerPsCmd(a), containerInspectCmd(a), containerTopCmd(a),
		containerPauseCmd(a, false), containerPauseCmd(a, true), containerWaitCmd(a),
		containerPortCmd(a), containerRenameCmd(a), containerStatsCmd(a), containerAttachCmd(a),
		containerPruneCmd(a), containerCpCmd(a), containerCommitCmd(a),
	)
	root.AddCommand(c)
}

// containerParts are what container commands work with.
type containerParts struct {
	rt   *crt.Runtime
	vols *crt.Volumes
	a    *app
}

func containerOpen(a *app) (*containerParts, error) {
	rt, err := crt.New(crt.Config{Root: filepath.Join(a.opts.Root, "containers"), RunRoot: a.opts.RunRoot, Logger: a.logger})
	if err != nil {
		return nil, err
	}
	vols, err := crt.NewVolumes(filepath.Join(a.opts.Root, "volumes"))
	if err != nil {
		return nil, err
	}
	return &containerParts{rt: rt, vols: vols, a: a}, nil
}

func containerStore(a *app) (*storage.Store, error) {
	return storage.Open(filepath.Join(a.opts.Root, "storage"))
}

// resolve finds a container by name, ID or ID prefix.
func (p *containerParts) resolve(ctx context.Context, ref string) (string, error) {
	id, err := p.rt.Resolve(ctx, ref)
	if err != nil {
		return "", &exitError{code: 1, err: fmt.Errorf("no such container: %s", ref)}
	}
	return id, nil
}

// forEach runs fn for each named container, printing each name on success, as Docker does.
func (p *containerParts) forEach(ctx context.Context, refs []string, fn func(id string) error) error {
	var failed []string
	for _, ref := range refs {
		id, err := p.resolve(ctx, ref)
		if err == nil {
			err = fn(id)
		}
		if err != nil {
			fmt.Fprintf(p.a.stderr, "Error response for %s: %v\n", ref, err)
			failed = append(failed, ref)
			continue
		}
		fmt.Fprintln(p.a.stdout, ref)
	}
	if len(failed) > 0 {
		return &exitError{code: 1}
	}
	return nil
}

// mountRootfs mounts (idempotently) the container's image and writable layer.
func (p *containerParts) mountRootfs(ctx context.Context, id string) error {
	c, err := p.rt.Get(ctx, id)
	if err != nil {
		return err
	}
	imgID := c.Config.Labels[containerImageIDLabel]
	if imgID == "" {
		return nil // made by something else that manages its rootfs
	}
	s, err := containerStore(p.a)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Mount(ctx, id, imgID)
	return err
}

// remove deletes a container, its writable layer and (with volumes) its anonymous volumes.
func (p *containerParts) remove(ctx context.Context, id string, force, volumes bool) error {
	tr := containerTracer()
	c, err := p.rt.Get(ctx, id)
	if err != nil {
		return err
	}
	tr("rm-get")
	if err := p.rt.Remove(ctx, id, force); err != nil {
		return err
	}
	tr("rm-runtime")
	if err := containerLeaveNetwork(ctx, p.a, c.Config); err != nil {
		return err
	}
	if c.Config.Labels[containerImageIDLabel] != "" {
		s, err := containerStore(p.a)
		if err != nil {
			return err
		}
		defer s.Close()
		tr("rm-store")
		if err := s.Unmount(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		tr("rm-unmount")
		if err := s.RemoveContainerLayer(ctx, id); err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		tr("rm-layer")
	}
	if volumes {
		for _, v := range strings.Split(c.Config.Labels[containerAnonVolLabel], ",") {
			if v != "" {
				_ = p.vols.Remove(ctx, v)
			}
		}
	}
	return nil
}

// containerLeaveNetwork removes a removed container's network sandbox (its addresses, veths
// and published ports) when it has one berth made.
func containerLeaveNetwork(ctx context.Context, a *app, c crt.ContainerConfig) error {
	if c.NetNSPath == "" || c.NetNSPath == "host" {
		return nil
	}
	m, err := containerNetworks(a)
	if err != nil {
		return err
	}
	if c.NetNSPath != m.SandboxPath(c.ID) {
		return nil // joined another container's namespace: not ours to remove
	}
	if err := m.RemoveSandbox(ctx, c.ID); err != nil && !errors.Is(err, netns.ErrNotFound) && !errors.Is(err, netns.ErrNoSandbox) {
		return fmt.Errorf("remove network sandbox of %s: %w", c.Name, err)
	}
	if err := m.ForgetPorts(ctx, c.ID); err != nil {
		return err
	}
	return nil
}

// --- run / create ---

type containerRunOpts struct {
	detach, rm, interactive, tty, init, readOnly, privileged, noHealthcheck                     bool
	name, network, workdir, user, entrypoint, hostname, restart, memory, memorySwap, stopSignal string
	memReservation, shmSize, logMaxSize, pull                                                   string
	pid, ipc, userns                                                                            string
	volumesFrom                                                                                 []string
	cpus                                                                                        float64
	cpuShares, pidsLimit                                                                        int64
	stopTimeout, logMaxFiles                                                                    int
	env, envFiles, volumes, publish, capAdd, capDrop, labels, tmpfs, ulimits, securityOpt       []string
	sysctls, devices, groupAdd, dns, addHost                                                    []string
	healthCmd                                                                                   string
	healthInterval, healthTimeout, healthStartPeriod, healthStartInterval                       time.Duration
	healthRetries                                                                               int
	changed                                                                                     map[string]bool
}

func containerRunFlags(cmd *cobra.Command, o *containerRunOpts, run bool) {
	f := cmd.Flags()
	f.SetInterspersed(false)
	if run {
		f.BoolVarP(&o.detach, "detach", "d", false, "Run in the background and print the container ID")
		f.BoolVar(&o.rm, "rm", false, "Remove the container when it exits")
	}
	f.BoolVarP(&o.interactive, "interactive", "i", false, "Keep STDIN open")
	f.BoolVarP(&o.tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.StringVar(&o.name, "name", "", "Container name (default: a generated one)")
	f.StringArrayVarP(&o.env, "env", "e", nil, "Set environment variables (KEY=VALUE, or KEY to copy it)")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "Read environment variables from a file")
	f.StringArrayVarP(&o.volumes, "volume", "v", nil, "Mount a volume: NAME:/path, /host:/path[:ro], or /path")
	f.StringArrayVarP(&o.publish, "publish", "p", nil, "Publish a container's port to the host: [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]")
	f.StringVar(&o.network, "network", "none", "Network: none, host, bridge (berth's default network) or a network from `berth network create` (-p alone implies bridge)")
	f.StringVarP(&o.workdir, "workdir", "w", "", "Working directory inside the container")
	f.StringVarP(&o.user, "user", "u", "", "User (name|uid[:group|gid])")
	f.StringVar(&o.entrypoint, "entrypoint", "", "Override the image's entrypoint")
	f.Bool("help", false, "help for "+cmd.Name()) // -h is --hostname, as in Docker
	f.StringVarP(&o.hostname, "hostname", "h", "", "Container host name")
	f.StringVar(&o.restart, "restart", "no", "Restart policy: no, always, on-failure[:N], unless-stopped")
	f.StringVarP(&o.memory, "memory", "m", "", "Memory limit (e.g. 256m)")
	f.StringVar(&o.memorySwap, "memory-swap", "", "Memory plus swap limit (-1 unlimited)")
	f.StringVar(&o.memReservation, "memory-reservation", "", "Memory soft limit")
	f.Float64Var(&o.cpus, "cpus", 0, "Number of CPUs")
	f.Int64Var(&o.cpuShares, "cpu-shares", 0, "CPU shares (relative weight)")
	f.Int64Var(&o.pidsLimit, "pids-limit", 0, "Maximum number of processes (-1 unlimited)")
	f.BoolVar(&o.init, "init", false, "Run an init as PID 1 that forwards signals and reaps processes")
	f.BoolVar(&o.readOnly, "read-only", false, "Mount the root filesystem read-only")
	f.BoolVar(&o.privileged, "privileged", false, "Give the container every capability and device")
	f.StringArrayVar(&o.capAdd, "cap-add", nil, "Add a capability")
	f.StringArrayVar(&o.capDrop, "cap-drop", nil, "Drop a capability")
	f.StringArrayVarP(&o.labels, "label", "l", nil, "Set a label (KEY=VALUE)")
	f.StringArrayVar(&o.tmpfs, "tmpfs", nil, "Mount a tmpfs: /path[:options]")
	f.StringArrayVar(&o.ulimits, "ulimit", nil, "Set a ulimit: name=soft[:hard]")
	f.StringArrayVar(&o.securityOpt, "security-opt", nil, "Security options (seccomp=unconfined, no-new-privileges)")
	f.StringArrayVar(&o.sysctls, "sysctl", nil, "Set a namespaced kernel parameter")
	f.StringArrayVar(&o.devices, "device", nil, "Add a host device: /dev/x[:/dev/y[:rwm]]")
	f.StringArrayVar(&o.groupAdd, "group-add", nil, "Additional groups")
	f.StringVar(&o.shmSize, "shm-size", "", "Size of /dev/shm (default 64m)")
	f.StringVar(&o.stopSignal, "stop-signal", "", "Signal to stop the container")
	f.IntVar(&o.stopTimeout, "stop-timeout", -1, "Seconds to wait before killing the container on stop")
	f.StringVar(&o.healthCmd, "health-cmd", "", "Command to check health")
	f.DurationVar(&o.healthInterval, "health-interval", 0, "Time between health checks")
	f.DurationVar(&o.healthTimeout, "health-timeout", 0, "Maximum time for one health check")
	f.DurationVar(&o.healthStartPeriod, "health-start-period", 0, "Start period during which failures do not count")
	f.DurationVar(&o.healthStartInterval, "health-start-interval", 0, "Time between health checks during the start period")
	f.IntVar(&o.healthRetries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	f.BoolVar(&o.noHealthcheck, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
	f.StringVar(&o.logMaxSize, "log-max-size", "", "Rotate the log at this size (default 10m)")
	f.IntVar(&o.logMaxFiles, "log-max-files", 0, "Log files to keep (default 3)")
	f.StringArrayVar(&o.dns, "dns", nil, "DNS server for /etc/resolv.conf")
	f.StringArrayVar(&o.addHost, "add-host", nil, "Add a host-to-IP mapping (host:ip)")
	f.StringArrayVar(&o.volumesFrom, "volumes-from", nil, "Mount the volumes of a container: NAME[:ro|rw]")
	f.StringVar(&o.pid, "pid", "", "PID namespace: host or container:NAME (default: the container's own)")
	f.StringVar(&o.ipc, "ipc", "", "IPC namespace: private, shareable, none, host or container:NAME (default private)")
	f.StringVar(&o.userns, "userns", "", "User namespace: host (none, the default) or auto (root in the container is an unprivileged host user from a range berth picks)")
}

func containerRunCmd(a *app) *cobra.Command {
	o := &containerRunOpts{}
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create and start a container from an image",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changed = map[string]bool{"network": cmd.Flags().Changed("network")}
			return containerRun(cmd.Context(), a, o, args, true)
		},
	}
	containerRunFlags(cmd, o, true)
	return cmd
}

func containerCreateCmd(a *app) *cobra.Command {
	o := &containerRunOpts{}
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Create a container from an image without starting it",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.changed = map[string]bool{"network": cmd.Flags().Changed("network")}
			return containerRun(cmd.Context(), a, o, args, false)
		},
	}
	containerRunFlags(cmd, o, false)
	return cmd
}

func containerRun(ctx context.Context, a *app, o *containerRunOpts, args []string, start bool) error {
	tr := containerTracer()
	defer tr("done")
	ports, err := containerParsePublishes(o.publish)
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	network := o.network
	if network == "" || (len(ports) > 0 && !containerFlagChanged(o, "network")) {
		network = "none"
		if len(ports) > 0 {
			network = "bridge"
		}
	}
	if len(ports) > 0 && (network == "none" || network == "host") {
		return &exitError{code: 125, err: fmt.Errorf("-p/--publish needs a network: it has no effect with --network %s; use --network bridge or a network from `berth network create`", network)}
	}
	p, err := containerOpen(a)
	if err != nil {
		return err
	}
	s, err := containerStore(a)
	if err != nil {
		return err
	}
	defer s.Close()
	tr("open")
	img, err := s.Resolve(ctx, args[0])
	tr("resolve")
	if err != nil {
		return &exitError{code: 125, err: fmt.Errorf("image %s: %w (import, load, build or pull it first)", args[0], err)}
	}
	id := crt.NewID()
	o.network = network
	c, err := containerConfig(a, p, o, img, args, id)
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	tr("config")
	var netUndo func()
	if network != "none" && network != "host" {
		undo, err := containerJoinNetwork(ctx, a, &c, o, network, ports)
		if err != nil {
			return &exitError{code: 125, err: err}
		}
		netUndo = undo
		tr("network")
	}
	rootfs, err := s.Mount(ctx, id, img.ID)
	tr("mount")
	if err != nil {
		if netUndo != nil {
			netUndo()
		}
		return fmt.Errorf("mount image: %w", err)
	}
	c.Rootfs = rootfs
	if err := p.rt.Create(ctx, c); err != nil {
		_ = s.Unmount(ctx, id)
		_ = s.RemoveContainerLayer(ctx, id)
		if netUndo != nil {
			netUndo()
		}
		code := 125
		return &exitError{code: code, err: err}
	}
	s.Close()
	tr("create")
	if !start {
		fmt.Fprintln(a.stdout, id)
		return nil
	}
	if o.detach {
		if o.rm {
			if err := containerSetAutoRemove(ctx, a, p, id); err != nil {
				return err
			}
		}
		if err := p.rt.Start(ctx, id); err != nil {
			return &exitError{code: 125, err: err}
		}
		fmt.Fprintln(a.stdout, id)
		return nil
	}
	code, err := containerAttachRun(ctx, a, p, id, o.interactive, o.tty, true)
	tr("run")
	if o.rm {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := p.remove(rctx, id, true, true); rerr != nil {
			fmt.Fprintln(a.stderr, "berth: remove:", rerr)
		}
		tr("remove")
	}
	if err != nil {
		return &exitError{code: 125, err: err}
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// containerFlagChanged reports whether the user gave the flag (set by the run/create commands).
func containerFlagChanged(o *containerRunOpts, name string) bool { return o.changed[name] }

// containerNetworks opens the network manager with the same configuration as the engine's
// (cmd/berth/wire.go), so both see the same networks, addresses and ports.
func containerNetworks(a *app) (*netns.Manager, error) {
	return netns.New(netns.Config{Root: filepath.Join(a.opts.Root, "networks"), RunRoot: a.opts.RunRoot, Logger: a.logger})
}

// containerJoinNetwork gives the container a network sandbox attached to network ("bridge" is
// berth's default network, created on first use), publishes ports and writes the container's
// hosts and resolv.conf. undo releases everything on a later failure.
func containerJoinNetwork(ctx context.Context, a *app, c *crt.ContainerConfig, o *containerRunOpts, network string, ports []netns.PortMapping) (func(), error) {
	m, err := containerNetworks(a)
	if err != nil {
		return nil, err
	}
	if network == containerDefaultNetwork {
		if _, err := m.EnsureNetwork(ctx, netns.NetworkConfig{Name: containerDefaultNetwork}); err != nil {
			return nil, fmt.Errorf("default network %q: %w", containerDefaultNetwork, err)
		}
	} else if _, err := m.InspectNetwork(ctx, network); err != nil {
		if errors.Is(err, netns.ErrNotFound) {
			return nil, fmt.Errorf("network %s not found: create it with `berth network create %s`, or use --network bridge, none or host", network, network)
		}
		return nil, err
	}
	id := c.ID
	undo := func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		_ = m.RemoveSandbox(cctx, id)
		_ = m.ForgetPorts(cctx, id)
	}
	ok := false
	defer func() {
		if !ok {
			undo()
		}
	}()
	if len(ports) > 0 {
		if err := m.CheckPorts(ctx, ports); err != nil {
			return nil, err
		}
	}
	nsPath, err := m.CreateSandbox(ctx, id)
	if err != nil {
		return nil, err
	}
	ep, err := m.Attach(ctx, id, network, netns.EndpointConfig{Hostname: c.Hostname, ContainerName: c.Name})
	if err != nil {
		return nil, err
	}
	if len(ports) > 0 {
		if _, err := m.Publish(ctx, id, ports); err != nil {
			return nil, err
		}
	}
	c.NetNSPath = nsPath
	c.Labels[containerNetworkLabel] = network
	if c.Hosts, err = netns.HostsFile(netns.HostsOptions{Hostname: c.Hostname, IPs: []string{ep.IP},
		ExtraHosts: o.addHost, HostGateway: ep.Gateway}); err != nil {
		return nil, err
	}
	if c.ResolvConf, err = m.ResolvConf(netns.ResolvOptions{Nameserver: ep.Gateway, DNS: o.dns}); err != nil {
		return nil, err
	}
	ok = true
	return undo, nil
}

// containerParsePublishes parses -p values: [[HOST_IP:]HOST_PORT:]CONTAINER_PORT[/PROTO], where
// ports may be equal-length ranges (8000-8001:80-81) and HOST_PORT may be empty (random).
func containerParsePublishes(specs []string) ([]netns.PortMapping, error) {
	var out []netns.PortMapping
	for _, spec := range specs {
		ms, err := containerParsePublish(spec)
		if err != nil {
			return nil, fmt.Errorf("-p %q: %w; use [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp], e.g. 8080:80", spec, err)
		}
		out = append(out, ms...)
	}
	return out, nil
}

func containerParsePublish(spec string) ([]netns.PortMapping, error) {
	rest, proto, _ := strings.Cut(spec, "/")
	if proto == "" {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return nil, fmt.Errorf("unknown protocol %q", proto)
	}
	var hostIP, hostPart, ctrPart string
	if strings.HasPrefix(rest, "[") { // [v6]:host:ctr
		end := strings.Index(rest, "]")
		if end < 0 {
			return nil, errors.New("unterminated [")
		}
		hostIP, rest = rest[1:end], strings.TrimPrefix(rest[end+1:], ":")
		hostPart, ctrPart, _ = strings.Cut(rest, ":")
		if ctrPart == "" {
			return nil, errors.New("no container port")
		}
	} else {
		parts := strings.Split(rest, ":")
		switch len(parts) {
		case 1:
			ctrPart = parts[0]
		case 2:
			hostPart, ctrPart = parts[0], parts[1]
		case 3:
			hostIP, hostPart, ctrPart = parts[0], parts[1], parts[2]
		default:
			return nil, errors.New("too many colons")
		}
	}
	if hostIP != "" && net.ParseIP(hostIP) == nil {
		return nil, fmt.Errorf("%q is not an IP address", hostIP)
	}
	cLo, cHi, err := containerPortRange(ctrPart)
	if err != nil {
		return nil, err
	}
	var hLo, hHi uint16
	if hostPart != "" {
		if hLo, hHi, err = containerPortRange(hostPart); err != nil {
			return nil, err
		}
		if hHi-hLo != cHi-cLo {
			if cLo != cHi {
				return nil, errors.New("host and container port ranges differ in length")
			}
			// A host range for one container port: Docker picks one of them; take the first.
			hHi = hLo
		}
	}
	var out []netns.PortMapping
	for i := 0; i <= int(cHi-cLo); i++ {
		pm := netns.PortMapping{HostIP: hostIP, ContainerPort: cLo + uint16(i), Protocol: proto}
		if hostPart != "" {
			pm.HostPort = hLo + uint16(i)
		}
		out = append(out, pm)
	}
	return out, nil
}

func containerPortRange(s string) (uint16, uint16, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(lo, 10, 16)
	if err != nil || a == 0 {
		return 0, 0, fmt.Errorf("%q is not a port", s)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(hi, 10, 16); err != nil || b < a {
			return 0, 0, fmt.Errorf("%q is not a port range", s)
		}
	}
	return uint16(a), uint16(b), nil
}

// containerSetAutoRemove makes the monitor run `berth container rm -f -v ID` when the container
// exits, so the writable layer and anonymous volumes go too.
func containerSetAutoRemove(ctx context.Context, a *app, p *containerParts, id string) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return p.rt.SetAutoRemove(ctx, id, []string{exe, "--root", a.opts.Root, "--run-root", a.opts.RunRoot, "container", "rm", "-f", "-v", id})
}

// containerTracer prints phase timings to stderr when BERTH_TRACE is set.
func containerTracer() func(string) {
	if os.Getenv("BERTH_TRACE") == "" {
		return func(string) {}
	}
	t0 := time.Now()
	last := t0
	return func(phase string) {
		now := time.Now()
		fmt.Fprintf(os.Stderr, "trace %-8s +%6.1fms (total %6.1fms)\n", phase, float64(now.Sub(last).Microseconds())/1000, float64(now.Sub(t0).Microseconds())/1000)
		last = now
	}
}

// containerAttachRun starts (start) or attaches to the container with the terminal attached.
func containerAttachRun(ctx context.Context, a *app, p *containerParts, id string, stdin, tty, start bool) (int, error) {
	stdio := crt.Stdio{Stdout: a.stdout, Stderr: a.stderr}
	if stdin {
		stdio.Stdin = a.stdin
	}
	if tty {
		if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			old, err := term.MakeRaw(int(f.Fd()))
			if err == nil {
				defer term.Restore(int(f.Fd()), old)
			}
			resize := make(chan [2]uint16, 1)
			stdio.Resize = resize
			sendSize := func() {
				if w, h, err := term.GetSize(int(f.Fd())); err == nil {
					select {
					case resize <- [2]uint16{uint16(w), uint16(h)}:
					default:
					}
				}
			}
			sendSize()
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			defer signal.Stop(winch)
			go func() {
				for range winch {
					sendSize()
				}
			}()
		}
	}
	if start {
		return p.rt.Run(ctx, id, stdio)
	}
	return p.rt.Attach(ctx, id, stdio)
}

// containerConfig builds the runtime config from flags and the image.
func containerConfig(a *app, p *containerParts, o *containerRunOpts, img storage.Image, args []string, id string) (crt.ContainerConfig, error) {
	ic := img.Config
	c := crt.ContainerConfig{
		ID: id, Name: o.name, Image: args[0],
		Labels:     map[string]string{containerImageIDLabel: img.ID, containerImageRefLabel: args[0]},
		Tty:        o.tty,
		OpenStdin:  o.interactive,
		Hostname:   o.hostname,
		WorkingDir: ic.WorkingDir,
		User:       ic.User,
		StopSignal: ic.StopSignal,
		Init:       o.init,
		ReadOnly:   o.readOnly,
		Privileged: o.privileged,
		CapAdd:     o.capAdd, CapDrop: o.capDrop,
		SecurityOpt: o.securityOpt,
		GroupAdd:    o.groupAdd,
		Restart:     o.restart,
		LogMaxFiles: o.logMaxFiles,
		VolumesFrom: o.volumesFrom,
		PIDMode:     o.pid,
		IPCMode:     o.ipc,
		UsernsMode:  o.userns,
	}
	// Command line: entrypoint + cmd, with Docker's override rules.
	entry := ic.Entrypoint
	cmdArgs := ic.Cmd
	if o.entrypoint != "" {
		entry = []string{o.entrypoint}
		cmdArgs = nil
	}
	if len(args) > 1 {
		cmdArgs = args[1:]
	}
	c.Args = append(append([]string(nil), entry...), cmdArgs...)
	if len(c.Args) == 0 {
		return c, errors.New("no command: the image has no CMD or ENTRYPOINT; give one after the image")
	}
	if o.workdir != "" {
		c.WorkingDir = o.workdir
	}
	if o.user != "" {
		c.User = o.user
	}
	if o.stopSignal != "" {
		c.StopSignal = o.stopSignal
	}
	if o.stopTimeout >= 0 {
		c.StopTimeout = time.Duration(o.stopTimeout) * time.Second
	}
	// Name (the runtime checks again under its lock when creating).
	taken := func(name string) bool {
		t, err := p.rt.NameTaken(context.Background(), name)
		return err != nil || t
	}
	if c.Name == "" {
		c.Name = containerGenName(taken)
	} else if taken(c.Name) {
		return c, fmt.Errorf("the container name %q is already in use; remove that container or choose another --name", c.Name)
	}
	// Environment.
	env := append([]string(nil), ic.Env...)
	for _, f := range o.envFiles {
		lines, err := containerReadEnvFile(f)
		if err != nil {
			return c, err
		}
		env = containerMergeEnv(env, lines)
	}
	var flagEnv []string
	for _, e := range o.env {
		if !strings.Contains(e, "=") {
			if v, ok := os.LookupEnv(e); ok {
				flagEnv = append(flagEnv, e+"="+v)
			}
			continue
		}
		flagEnv = append(flagEnv, e)
	}
	c.Env = containerMergeEnv(env, flagEnv)
	for _, l := range o.labels {
		k, v, _ := strings.Cut(l, "=")
		c.Labels[k] = v
	}
	// Network.
	switch o.network {
	case "host":
		c.NetNSPath = "host"
	default:
		// none: a namespace with only loopback; a named network: containerJoinNetwork sets the
		// sandbox path, hosts and resolv.conf.
		c.NetNSPath = ""
	}
	if c.Hostname == "" && c.NetNSPath != "host" {
		c.Hostname = id[:12]
	}
	if c.NetNSPath == "host" {
		if b, err := os.ReadFile("/etc/hosts"); err == nil {
			c.Hosts = string(b)
		}
		if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
			c.ResolvConf = string(b)
		}
	} else {
		c.Hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + c.Hostname + "\n"
	}
	for _, h := range o.addHost {
		name, ip, ok := strings.Cut(h, ":")
		if !ok {
			return c, fmt.Errorf("--add-host %q: use host:ip", h)
		}
		if c.Hosts == "" {
			c.Hosts = "127.0.0.1\tlocalhost\n"
		}
		c.Hosts += ip + "\t" + name + "\n"
	}
	if len(o.dns) > 0 {
		c.ResolvConf = ""
		for _, d := range o.dns {
			c.ResolvConf += "nameserver " + d + "\n"
		}
	}
	// Resources.
	var err error
	size := func(flag, v string) (int64, error) {
		if v == "" {
			return 0, nil
		}
		if v == "-1" {
			return -1, nil
		}
		n, err := units.RAMInBytes(v)
		if err != nil {
			return 0, fmt.Errorf("--%s %q: %w", flag, v, err)
		}
		return n, nil
	}
	if c.Resources.Memory, err = size("memory", o.memory); err != nil {
		return c, err
	}
	if c.Resources.MemorySwap, err = size("memory-swap", o.memorySwap); err != nil {
		return c, err
	}
	if c.Resources.MemoryReservation, err = size("memory-reservation", o.memReservation); err != nil {
		return c, err
	}
	if c.ShmSize, err = size("shm-size", o.shmSize); err != nil {
		return c, err
	}
	if c.LogMaxSize, err = size("log-max-size", o.logMaxSize); err != nil {
		return c, err
	}
	c.Resources.CPUs = o.cpus
	if o.cpuShares > 0 {
		c.Resources.CPUShares = uint64(o.cpuShares)
	}
	c.Resources.PidsLimit = o.pidsLimit
	for _, u := range o.ulimits {
		name, val, ok := strings.Cut(u, "=")
		if !ok {
			return c, fmt.Errorf("--ulimit %q: use name=soft[:hard]", u)
		}
		softS, hardS, hasHard := strings.Cut(val, ":")
		soft, err := strconv.ParseInt(softS, 10, 64)
		if err != nil {
			return c, fmt.Errorf("--ulimit %q: %w", u, err)
		}
		hard := soft
		if hasHard {
			if hard, err = strconv.ParseInt(hardS, 10, 64); err != nil {
				return c, fmt.Errorf("--ulimit %q: %w", u, err)
			}
		}
		c.Ulimits = append(c.Ulimits, crt.Ulimit{Name: name, Soft: soft, Hard: hard})
	}
	if len(o.sysctls) > 0 {
		c.Sysctls = map[string]string{}
		for _, s := range o.sysctls {
			k, v, ok := strings.Cut(s, "=")
			if !ok {
				return c, fmt.Errorf("--sysctl %q: use key=value", s)
			}
			c.Sysctls[k] = v
		}
	}
	for _, d := range o.devices {
		parts := strings.Split(d, ":")
		dev := crt.Device{PathOnHost: parts[0]}
		if len(parts) > 1 {
			dev.PathInContainer = parts[1]
		}
		if len(parts) > 2 {
			dev.CgroupPermissions = parts[2]
		}
		c.Devices = append(c.Devices, dev)
	}
	if len(o.tmpfs) > 0 {
		c.Tmpfs = map[string]string{}
		for _, t := range o.tmpfs {
			path, opts, _ := strings.Cut(t, ":")
			c.Tmpfs[path] = opts
		}
	}
	// Volumes: flags, then the image's VOLUMEs not already covered.
	var anon []string
	covered := map[string]bool{}
	for _, v := range o.volumes {
		m, anonName, err := containerParseVolume(p, v)
		if err != nil {
			return c, err
		}
		if anonName != "" {
			anon = append(anon, anonName)
		}
		covered[m.Target] = true
		c.Mounts = append(c.Mounts, m)
	}
	for _, target := range ic.Volumes {
		if covered[target] {
			continue
		}
		name := containerAnonName()
		src, err := p.vols.Ensure(context.Background(), name, map[string]string{"io.berth.anonymous": "true"})
		if err != nil {
			return c, err
		}
		anon = append(anon, name)
		c.Mounts = append(c.Mounts, crt.Mount{Type: "volume", Source: src, Target: target})
	}
	if len(anon) > 0 {
		c.Labels[containerAnonVolLabel] = strings.Join(anon, ",")
	}
	// Healthcheck: flags over the image's.
	if ic.Healthcheck != nil {
		h := ic.Healthcheck
		c.Healthcheck = &crt.Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}
	}
	if o.healthCmd != "" {
		if c.Healthcheck == nil {
			c.Healthcheck = &crt.Healthcheck{}
		}
		c.Healthcheck.Test = []string{"CMD-SHELL", o.healthCmd}
	}
	if c.Healthcheck != nil {
		if o.healthInterval > 0 {
			c.Healthcheck.Interval = o.healthInterval
		}
		if o.healthTimeout > 0 {
			c.Healthcheck.Timeout = o.healthTimeout
		}
		if o.healthStartPeriod > 0 {
			c.Healthcheck.StartPeriod = o.healthStartPeriod
		}
		if o.healthStartInterval > 0 {
			c.Healthcheck.StartInterval = o.healthStartInterval
		}
		if o.healthRetries > 0 {
			c.Healthcheck.Retries = o.healthRetries
		}
	}
	if o.noHealthcheck {
		c.Healthcheck = nil
	}
	return c, nil
}

// containerParseVolume parses -v: NAME:/path[:opts], /host:/path[:opts] or /path (anonymous).
func containerParseVolume(p *containerParts, v string) (crt.Mount, string, error) {
	parts := strings.Split(v, ":")
	var src, target, opts string
	switch len(parts) {
	case 1:
		target = parts[0]
	case 2:
		src, target = parts[0], parts[1]
	case 3:
		src, target, opts = parts[0], parts[1], parts[2]
	default:
		return crt.Mount{}, "", fmt.Errorf("-v %q: use NAME:/path[:ro], /host/path:/path[:ro] or /path", v)
	}
	if !filepath.IsAbs(target) {
		return crt.Mount{}, "", fmt.Errorf("-v %q: the container path must be absolute", v)
	}
	m := crt.Mount{Target: target}
	for _, o := range strings.Split(opts, ",") {
		switch o {
		case "ro", "readonly":
			m.ReadOnly = true
		case "", "rw":
		default:
			m.Options = append(m.Options, o)
		}
	}
	anonName := ""
	switch {
	case src == "":
		anonName = containerAnonName()
		path, err := p.vols.Ensure(context.Background(), anonName, map[string]string{"io.berth.anonymous": "true"})
		if err != nil {
			return m, "", err
		}
		m.Type, m.Source = "volume", path
	case strings.HasPrefix(src, "/") || strings.HasPrefix(src, "."):
		abs, err := filepath.Abs(src)
		if err != nil {
			return m, "", err
		}
		m.Type, m.Source = "bind", abs
	default:
		path, err := p.vols.Ensure(context.Background(), src, nil)
		if err != nil {
			return m, "", err
		}
		m.Type, m.Source = "volume", path
	}
	return m, anonName, nil
}

func containerAnonName() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func containerReadEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--env-file: %w", err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if !strings.Contains(line, "=") {
			if v, ok := os.LookupEnv(line); ok {
				out = append(out, line+"="+v)
			}
			continue
		}
		out = append(out, line)
	}
	return out, sc.Err()
}

// containerMergeEnv overlays KEY=VALUE entries, later ones winning, keeping first positions.
func containerMergeEnv(base, over []string) []string {
	out := append([]string(nil), base...)
	idx := map[string]int{}
	for i, e := range out {
		k, _, _ := strings.Cut(e, "=")
		idx[k] = i
	}
	for _, e := range over {
		k, _, _ := strings.Cut(e, "=")
		if i, ok := idx[k]; ok {
			out[i] = e
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	return out
}

var containerAdjectives = []string{
	"brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid",
	"merry", "nimble", "proud", "quiet", "rapid", "sharp", "steady", "swift", "tender", "witty",
	"bold", "bright", "cosmic", "dreamy", "epic", "frosty", "golden", "hardy", "jovial", "loyal",
}

var containerNouns = []string{
	"albatross", "badger", "cormorant", "dolphin", "egret", "falcon", "gannet", "heron", "ibis",
	"jackal", "kestrel", "lynx", "marlin", "narwhal", "osprey", "pelican", "quokka", "raven",
	"seal", "tern", "urchin", "walrus", "yak", "zebra", "anchor", "buoy", "harbor", "keel", "mast", "tide",
}

func containerGenName(taken func(string) bool) string {
	pick := func(l []string) string {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(l))))
		return l[n.Int64()]
	}
	for i := 0; ; i++ {
		name := pick(containerAdjectives) + "_" + pick(containerNouns)
		if i > 20 {
			name += strconv.Itoa(i)
		}
		if !taken(name) {
			return name
		}
	}
}

// --- lifecycle ---

func containerStartCmd(a *app) *cobra.Command {
	var attach, interactive bool
	cmd := &cobra.Command{
		Use:   "start [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Start one or more stopped containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			if attach && len(args) == 1 {
				id, err := p.resolve(ctx, args[0])
				if err != nil {
					return err
				}
				if err := p.mountRootfs(ctx, id); err != nil {
					return err
				}
				c, _ := p.rt.Get(ctx, id)
				code, err := containerAttachRun(ctx, a, p, id, interactive, c.Config.Tty, true)
				if err != nil {
					return err
				}
				if code != 0 {
					return &exitError{code: code}
				}
				return nil
			}
			return p.forEach(ctx, args, func(id string) error {
				if err := p.mountRootfs(ctx, id); err != nil {
					return err
				}
				return p.rt.Start(ctx, id)
			})
		},
	}
	cmd.Flags().BoolVarP(&attach, "attach", "a", false, "Attach STDOUT/STDERR and forward signals")
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "Attach the container's STDIN")
	return cmd
}

func containerStopCmd(a *app) *cobra.Command {
	var timeout int
	var sig string
	cmd := &cobra.Command{
		Use:   "stop [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Stop one or more running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			t := time.Duration(-1)
			if cmd.Flags().Changed("time") {
				t = time.Duration(timeout) * time.Second
			}
			return p.forEach(ctx, args, func(id string) error {
				if sig != "" {
					s, err := crt.ParseSignal(sig)
					if err != nil {
						return err
					}
					if err := p.rt.Kill(ctx, id, s); err != nil {
						return err
					}
				}
				return p.rt.Stop(ctx, id, t)
			})
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "Seconds to wait before killing the container")
	cmd.Flags().StringVarP(&sig, "signal", "s", "", "Signal to send first (default: the container's stop signal)")
	return cmd
}

func containerRestartCmd(a *app) *cobra.Command {
	var timeout int
	cmd := &cobra.Command{
		Use:   "restart [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Restart one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			t := time.Duration(-1)
			if cmd.Flags().Changed("time") {
				t = time.Duration(timeout) * time.Second
			}
			return p.forEach(ctx, args, func(id string) error {
				if err := p.rt.Stop(ctx, id, t); err != nil {
					return err
				}
				if err := p.mountRootfs(ctx, id); err != nil {
					return err
				}
				return p.rt.Start(ctx, id)
			})
		},
	}
	cmd.Flags().IntVarP(&timeout, "time", "t", 10, "Seconds to wait before killing the container")
	return cmd
}

func containerKillCmd(a *app) *cobra.Command {
	var sig string
	cmd := &cobra.Command{
		Use:   "kill [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Send a signal to one or more running containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			s, err := crt.ParseSignal(sig)
			if err != nil {
				return err
			}
			return p.forEach(ctx, args, func(id string) error { return p.rt.Kill(ctx, id, s) })
		},
	}
	cmd.Flags().StringVarP(&sig, "signal", "s", "KILL", "Signal to send")
	return cmd
}

func containerRmCmd(a *app) *cobra.Command {
	var force, volumes bool
	cmd := &cobra.Command{
		Use:     "rm [OPTIONS] CONTAINER [CONTAINER...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more containers",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			return p.forEach(ctx, args, func(id string) error {
				err := p.remove(ctx, id, force, volumes)
				if errors.Is(err, crt.ErrRunning) {
					return errors.New("container is running: stop it first or use --force")
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Kill and remove a running container")
	cmd.Flags().BoolVarP(&volumes, "volumes", "v", false, "Remove the container's anonymous volumes")
	return cmd
}

func containerPruneCmd(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all stopped containers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			all, err := p.rt.List(ctx)
			if err != nil {
				return err
			}
			for _, c := range all {
				if c.State.Running() {
					continue
				}
				if err := p.remove(ctx, c.Config.ID, false, false); err != nil {
					fmt.Fprintln(a.stderr, "berth:", err)
					continue
				}
				fmt.Fprintln(a.stdout, c.Config.ID)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "Do not prompt for confirmation")
	return cmd
}

func containerPauseCmd(a *app, unpause bool) *cobra.Command {
	use, short := "pause", "Pause all processes within one or more containers"
	if unpause {
		use, short = "unpause", "Unpause all processes within one or more containers"
	}
	return &cobra.Command{
		Use:   use + " CONTAINER [CONTAINER...]",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			return p.forEach(ctx, args, func(id string) error {
				if unpause {
					return p.rt.Unpause(ctx, id)
				}
				return p.rt.Pause(ctx, id)
			})
		},
	}
}

func containerWaitCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "wait CONTAINER [CONTAINER...]",
		Short: "Block until one or more containers stop, then print their exit codes",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			for _, ref := range args {
				id, err := p.resolve(ctx, ref)
				if err != nil {
					return err
				}
				code, err := p.rt.Wait(ctx, id)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, code)
			}
			return nil
		},
	}
}

func containerRenameCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rename CONTAINER NEW_NAME",
		Short: "Rename a container",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			id, err := p.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			return p.rt.Rename(ctx, id, args[1])
		},
	}
}

func containerPortCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "port CONTAINER [PRIVATE_PORT[/PROTO]]",
		Short: "List port mappings or a specific mapping for the container",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			id, err := p.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			m, err := containerNetworks(a)
			if err != nil {
				return err
			}
			ports, err := m.PublishedPorts(ctx, id)
			if err != nil {
				return err
			}
			sort.Slice(ports, func(i, j int) bool {
				if ports[i].ContainerPort != ports[j].ContainerPort {
					return ports[i].ContainerPort < ports[j].ContainerPort
				}
				if ports[i].Protocol != ports[j].Protocol {
					return ports[i].Protocol < ports[j].Protocol
				}
				return ports[i].HostIP < ports[j].HostIP
			})
			var want uint64
			wantProto := "tcp"
			if len(args) == 2 {
				ps, proto, _ := strings.Cut(args[1], "/")
				if proto != "" {
					wantProto = proto
				}
				if want, err = strconv.ParseUint(ps, 10, 16); err != nil {
					return &exitError{code: 1, err: fmt.Errorf("%q is not a port: use PORT[/PROTO], e.g. 80/tcp", args[1])}
				}
			}
			found := false
			for _, pm := range ports {
				host := pm.HostIP
				if host == "" {
					host = "0.0.0.0"
				}
				addr := net.JoinHostPort(host, strconv.Itoa(int(pm.HostPort)))
				if len(args) == 2 {
					if uint64(pm.ContainerPort) != want || pm.Protocol != wantProto {
						continue
					}
					fmt.Fprintln(a.stdout, addr)
				} else {
					fmt.Fprintf(a.stdout, "%d/%s -> %s\n", pm.ContainerPort, pm.Protocol, addr)
				}
				found = true
			}
			if len(args) == 2 && !found {
				return &exitError{code: 1, err: fmt.Errorf("no public port '%s' published for %s", args[1], args[0])}
			}
			return nil
		},
	}
}

// --- exec / attach / logs ---

func containerExecCmd(a *app) *cobra.Command {
	var interactive, tty, detach, privileged bool
	var env []string
	var user, workdir string
	cmd := &cobra.Command{
		Use:   "exec [OPTIONS] CONTAINER COMMAND [ARG...]",
		Short: "Execute a command in a running container",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			id, err := p.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			var fenv []string
			for _, e := range env {
				if !strings.Contains(e, "=") {
					if v, ok := os.LookupEnv(e); ok {
						fenv = append(fenv, e+"="+v)
					}
					continue
				}
				fenv = append(fenv, e)
			}
			stdio := crt.Stdio{Stdout: a.stdout, Stderr: a.stderr, Detach: detach}
			if interactive {
				stdio.Stdin = a.stdin
			}
			if tty {
				if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
					if old, err := term.MakeRaw(int(f.Fd())); err == nil {
						defer term.Restore(int(f.Fd()), old)
					}
					resize := make(chan [2]uint16, 1)
					if w, h, err := term.GetSize(int(f.Fd())); err == nil {
						resize <- [2]uint16{uint16(w), uint16(h)}
					}
					close(resize)
					stdio.Resize = resize
				}
			}
			code, err := p.rt.Exec(ctx, id, crt.ProcessSpec{Args: args[1:], Env: fenv, User: user, WorkingDir: workdir, Tty: tty, Privileged: privileged}, stdio)
			if err != nil {
				return &exitError{code: 126, err: err}
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.BoolVarP(&interactive, "interactive", "i", false, "Keep STDIN open")
	f.BoolVarP(&tty, "tty", "t", false, "Allocate a pseudo-TTY")
	f.BoolVarP(&detach, "detach", "d", false, "Run the command in the background")
	f.BoolVar(&privileged, "privileged", false, "Give the command every capability")
	f.StringArrayVarP(&env, "env", "e", nil, "Set environment variables")
	f.StringVarP(&user, "user", "u", "", "User (name|uid[:group|gid])")
	f.StringVarP(&workdir, "workdir", "w", "", "Working directory")
	return cmd
}

func containerAttachCmd(a *app) *cobra.Command {
	var noStdin bool
	cmd := &cobra.Command{
		Use:   "attach [OPTIONS] CONTAINER",
		Short: "Attach to a running container's input and output",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			id, err := p.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			c, err := p.rt.Get(ctx, id)
			if err != nil {
				return err
			}
			code, err := containerAttachRun(ctx, a, p, id, !noStdin && c.Config.OpenStdin, c.Config.Tty, false)
			if err != nil {
				return err
			}
			if code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&noStdin, "no-stdin", false, "Do not attach STDIN")
	return cmd
}

func containerLogsCmd(a *app) *cobra.Command {
	var follow, timestamps bool
	var tail, since, until string
	cmd := &cobra.Command{
		Use:   "logs [OPTIONS] CONTAINER",
		Short: "Fetch the logs of a container",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			id, err := p.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			opt := crt.LogOptions{Follow: follow, Timestamps: timestamps, Tail: -1}
			if tail != "" && tail != "all" {
				n, err := strconv.Atoi(tail)
				if err != nil {
					return fmt.Errorf("--tail %q: use a number or all", tail)
				}
				opt.Tail = n
			}
			if opt.Since, err = containerParseTime(since); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if opt.Until, err = containerParseTime(until); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			err = p.rt.LogsSplit(ctx, id, opt, a.stdout, a.stderr)
			if errors.Is(err, context.Canceled) {
				return nil
			}
			return err
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&follow, "follow", "f", false, "Follow log output")
	f.BoolVarP(&timestamps, "timestamps", "t", false, "Show timestamps")
	f.StringVarP(&tail, "tail", "n", "all", "Number of lines to show from the end")
	f.StringVar(&since, "since", "", "Show logs since a timestamp (RFC 3339) or a relative time (e.g. 42m)")
	f.StringVar(&until, "until", "", "Show logs before a timestamp or relative time")
	return cmd
}

// containerParseTime parses an RFC 3339 time, a Unix timestamp or a duration ago.
func containerParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC3339, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time or duration", s)
}

// --- ps / inspect / top / stats ---

// containerRow is one container as ps templates see it.
type containerRow struct {
	ID, Image, Command, CreatedAt, RunningFor, Ports, State, Status, Names, Size, Mounts, Networks string
	LabelsMap                                                                                      map[string]string
}

func (r containerRow) Labels() string {
	var kv []string
	for k, v := range r.LabelsMap {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

func (r containerRow) Label(k string) string { return r.LabelsMap[k] }

func containerStatusText(st crt.State) string {
	ago := func(t time.Time) string { return units.HumanDuration(time.Since(t)) }
	switch st.Status {
	case crt.StatusRunning, crt.StatusPaused:
		s := "Up " + ago(st.StartedAt)
		if st.Status == crt.StatusPaused {
			s += " (Paused)"
		}
		if st.Health != nil {
			s += " (" + st.Health.Status + ")"
		}
		return s
	case crt.StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", st.ExitCode, ago(st.FinishedAt))
	case crt.StatusExited:
		if st.FinishedAt.IsZero() {
			return fmt.Sprintf("Exited (%d)", st.ExitCode)
		}
		return fmt.Sprintf("Exited (%d) %s ago", st.ExitCode, ago(st.FinishedAt))
	case crt.StatusCreated:
		return "Created"
	}
	return st.Status
}

func containerMatches(c crt.Container, filters []string) (bool, error) {
	for _, f := range filters {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return false, fmt.Errorf("--filter %q: use key=value", f)
		}
		switch k {
		case "name":
			if !strings.Contains(c.Config.Name, v) {
				return false, nil
			}
		case "id":
			if !strings.HasPrefix(c.Config.ID, v) {
				return false, nil
			}
		case "label":
			lk, lv, hasV := strings.Cut(v, "=")
			got, ok := c.Config.Labels[lk]
			if !ok || hasV && got != lv {
				return false, nil
			}
		case "status":
			if c.State.Status != v {
				return false, nil
			}
		case "exited":
			if c.State.Status != crt.StatusExited || strconv.Itoa(c.State.ExitCode) != v {
				return false, nil
			}
		case "ancestor":
			if c.Config.Image != v && c.Config.Labels[containerImageIDLabel] != v {
				return false, nil
			}
		case "health":
			h := "none"
			if c.State.Health != nil {
				h = c.State.Health.Status
			}
			if h != v {
				return false, nil
			}
		default:
			return false, fmt.Errorf("--filter %q: unsupported key %q (name, id, label, status, exited, ancestor, health)", f, k)
		}
	}
	return true, nil
}

func containerPsCmd(a *app) *cobra.Command {
	var all, quiet, noTrunc, latest bool
	var filters []string
	var format string
	var last int
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"ps", "list"},
		Short:   "List containers",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			cs, err := p.rt.List(ctx)
			if err != nil {
				return err
			}
			var rows []containerRow
			for i := len(cs) - 1; i >= 0; i-- { // newest first
				c := cs[i]
				if !all && !c.State.Running() && !latest && last <= 0 {
					continue
				}
				ok, err := containerMatches(c, filters)
				if err != nil {
					return err
				}
				if !ok {
					continue
				}
				id := c.Config.ID
				command := strings.Join(c.Config.Args, " ")
				if !noTrunc {
					id = id[:12]
					if len(command) > 20 {
						command = command[:19] + "…"
					}
				}
				rows = append(rows, containerRow{
					ID: id, Image: c.Config.Image, Command: strconv.Quote(command),
					CreatedAt:  c.Config.Created.Local().Format("2006-01-02 15:04:05 -0700 MST"),
					RunningFor: units.HumanDuration(time.Since(c.Config.Created)) + " ago",
					State:      c.State.Status, Status: containerStatusText(c.State), Names: c.Config.Name,
					LabelsMap: c.Config.Labels, Networks: containerNetworkName(c.Config),
				})
				if latest && len(rows) == 1 || last > 0 && len(rows) >= last {
					break
				}
			}
			if quiet {
				for _, r := range rows {
					fmt.Fprintln(a.stdout, r.ID)
				}
				return nil
			}
			return containerPrintRows(a.stdout, format, rows)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&all, "all", "a", false, "Show all containers (default shows just running)")
	f.BoolVarP(&quiet, "quiet", "q", false, "Only display container IDs")
	f.BoolVar(&noTrunc, "no-trunc", false, "Do not truncate output")
	f.BoolVarP(&latest, "latest", "l", false, "Show the latest created container")
	f.IntVarP(&last, "last", "n", -1, "Show n last created containers")
	f.StringArrayVarP(&filters, "filter", "f", nil, "Filter output (name=, id=, label=, status=, exited=, ancestor=, health=)")
	f.StringVar(&format, "format", "", "Format output: table, json, or a Go template")
	return cmd
}

func containerNetworkName(c crt.ContainerConfig) string {
	if n := c.Labels[containerNetworkLabel]; n != "" {
		return n
	}
	switch ns := c.NetNSPath; ns {
	case "":
		return "none"
	case "host":
		return "host"
	}
	return filepath.Base(c.NetNSPath)
}

func containerPrintRows(w io.Writer, format string, rows []containerRow) error {
	switch {
	case format == "json":
		for _, r := range rows {
			b, _ := json.Marshal(r)
			fmt.Fprintln(w, string(b))
		}
		return nil
	case format == "" || format == "table":
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Image, r.Command, r.RunningFor, r.Status, r.Ports, r.Names)
		}
		return tw.Flush()
	}
	table := false
	if rest, ok := strings.CutPrefix(format, "table "); ok {
		table, format = true, rest
	}
	tmpl, err := template.New("ps").Funcs(containerTemplateFuncs).Parse(format)
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	out := w
	var tw *tabwriter.Writer
	if table {
		tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		out = tw
	}
	for _, r := range rows {
		if err := tmpl.Execute(out, r); err != nil {
			return fmt.Errorf("--format: %w", err)
		}
		fmt.Fprintln(out)
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

var containerTemplateFuncs = template.FuncMap{
	"json":  func(v any) string { b, _ := json.Marshal(v); return string(b) },
	"join":  strings.Join,
	"upper": strings.ToUpper,
	"lower": strings.ToLower,
	"truncate": func(s string, n int) string {
		if len(s) > n {
			return s[:n]
		}
		return s
	},
}

// containerInspectJSON is Docker's container inspect shape (the parts berth has).
type containerInspectJSON struct {
	ID              string                `json:"Id"`
	Created         string                `json:"Created"`
	Path            string                `json:"Path"`
	Args            []string              `json:"Args"`
	State           containerInspectState `json:"State"`
	Image           string                `json:"Image"`
	ResolvConfPath  string                `json:"ResolvConfPath"`
	HostnamePath    string                `json:"HostnamePath"`
	HostsPath       string                `json:"HostsPath"`
	LogPath         string                `json:"LogPath"`
	Name            string                `json:"Name"`
	RestartCount    int                   `json:"RestartCount"`
	Driver          string                `json:"Driver"`
	Platform        string                `json:"Platform"`
	HostConfig      map[string]any        `json:"HostConfig"`
	GraphDriver     map[string]any        `json:"GraphDriver"`
	Mounts          []map[string]any      `json:"Mounts"`
	Config          map[string]any        `json:"Config"`
	NetworkSettings map[string]any        `json:"NetworkSettings"`
}

type containerInspectState struct {
	Status     string      `json:"Status"`
	Running    bool        `json:"Running"`
	Paused     bool        `json:"Paused"`
	Restarting bool        `json:"Restarting"`
	OOMKilled  bool        `json:"OOMKilled"`
	Dead       bool        `json:"Dead"`
	Pid        int         `json:"Pid"`
	ExitCode   int         `json:"ExitCode"`
	Error      string      `json:"Error"`
	StartedAt  string      `json:"StartedAt"`
	FinishedAt string      `json:"FinishedAt"`
	Health     *crt.Health `json:"Health,omitempty"`
}

func containerTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func containerInspectOf(root string, c crt.Container) containerInspectJSON {
	cfg, st := c.Config, c.State
	dir := filepath.Join(root, cfg.ID)
	j := containerInspectJSON{
		ID: cfg.ID, Created: containerTime(cfg.Created), Image: cfg.Labels[containerImageIDLabel],
		Name: "/" + cfg.Name, RestartCount: st.RestartCount, Driver: "overlay2", Platform: "linux",
		LogPath: filepath.Join(dir, "log"),
		State: containerInspectState{
			Status: st.Status, Running: st.Status == crt.StatusRunning || st.Status == crt.StatusPaused,
			Paused: st.Status == crt.StatusPaused, Restarting: st.Status == crt.StatusRestarting,
			OOMKilled: st.OOMKilled, Dead: st.Status == crt.StatusDead, Pid: st.Pid, ExitCode: st.ExitCode,
			Error: st.Error, StartedAt: containerTime(st.StartedAt), FinishedAt: containerTime(st.FinishedAt),
			Health: st.Health,
		},
	}
	if len(cfg.Args) > 0 {
		j.Path, j.Args = cfg.Args[0], cfg.Args[1:]
	}
	if cfg.Hosts != "" {
		j.HostsPath = filepath.Join(dir, "hosts")
	}
	if cfg.ResolvConf != "" {
		j.ResolvConfPath = filepath.Join(dir, "resolv.conf")
	}
	if cfg.Hostname != "" {
		j.HostnamePath = filepath.Join(dir, "hostname")
	}
	restartName, restartMax, _ := strings.Cut(cfg.Restart, ":")
	if restartName == "" {
		restartName = "no"
	}
	maxRetry, _ := strconv.Atoi(restartMax)
	var binds []string
	for _, m := range cfg.Mounts {
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		mm := map[string]any{"Type": m.Type, "Source": m.Source, "Destination": m.Target, "Mode": mode, "RW": !m.ReadOnly}
		if m.Type == "volume" {
			mm["Name"] = filepath.Base(filepath.Dir(m.Source))
			mm["Driver"] = "local"
		}
		if m.Type == "bind" {
			binds = append(binds, m.Source+":"+m.Target+":"+mode)
		}
		j.Mounts = append(j.Mounts, mm)
	}
	if j.Mounts == nil {
		j.Mounts = []map[string]any{}
	}
	network := containerNetworkName(cfg)
	j.HostConfig = map[string]any{
		"Binds": binds, "NetworkMode": network, "Privileged": cfg.Privileged, "ReadonlyRootfs": cfg.ReadOnly,
		"RestartPolicy": map[string]any{"Name": restartName, "MaximumRetryCount": maxRetry},
		"AutoRemove":    cfg.AutoRemove, "CapAdd": cfg.CapAdd, "CapDrop": cfg.CapDrop, "SecurityOpt": cfg.SecurityOpt,
		"Memory": cfg.Resources.Memory, "MemorySwap": cfg.Resources.MemorySwap, "MemoryReservation": cfg.Resources.MemoryReservation,
		"NanoCpus": int64(cfg.Resources.CPUs * 1e9), "CpuShares": cfg.Resources.CPUShares, "CpusetCpus": cfg.Resources.CpusetCpus,
		"PidsLimit": cfg.Resources.PidsLimit, "ShmSize": cfg.ShmSize, "Init": cfg.Init, "Sysctls": cfg.Sysctls,
		"Tmpfs": cfg.Tmpfs, "GroupAdd": cfg.GroupAdd, "Ulimits": cfg.Ulimits, "Devices": cfg.Devices,
		"PidMode": cfg.PIDMode, "IpcMode": cfg.IPCMode, "UsernsMode": cfg.UsernsMode, "VolumesFrom": cfg.VolumesFrom,
		"LogConfig": map[string]any{"Type": "json-file", "Config": map[string]string{
			"max-size": strconv.FormatInt(cfg.LogMaxSize, 10), "max-file": strconv.Itoa(cfg.LogMaxFiles)}},
	}
	j.GraphDriver = map[string]any{"Name": "overlay2", "Data": map[string]string{"MergedDir": cfg.Rootfs}}
	var health any
	if cfg.Healthcheck != nil {
		health = map[string]any{"Test": cfg.Healthcheck.Test, "Interval": cfg.Healthcheck.Interval,
			"Timeout": cfg.Healthcheck.Timeout, "StartPeriod": cfg.Healthcheck.StartPeriod,
			"StartInterval": cfg.Healthcheck.StartInterval, "Retries": cfg.Healthcheck.Retries}
	}
	j.Config = map[string]any{
		"Hostname": cfg.Hostname, "Domainname": cfg.Domainname, "User": cfg.User, "Tty": cfg.Tty,
		"OpenStdin": cfg.OpenStdin, "Env": cfg.Env, "Cmd": cfg.Args, "Image": cfg.Image,
		"WorkingDir": cfg.WorkingDir, "Labels": cfg.Labels, "StopSignal": cfg.StopSignal,
		"Healthcheck": health,
	}
	if cfg.StopTimeout > 0 {
		j.Config["StopTimeout"] = int(cfg.StopTimeout / time.Second)
	}
	j.NetworkSettings = map[string]any{"Networks": map[string]any{network: map[string]any{}}, "Ports": map[string]any{}}
	return j
}

func containerInspectCmd(a *app) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] CONTAINER [CONTAINER...]",
		Short: "Display detailed information on one or more containers",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			var out []containerInspectJSON
			for _, ref := range args {
				id, err := p.resolve(ctx, ref)
				if err != nil {
					return err
				}
				c, err := p.rt.Get(ctx, id)
				if err != nil {
					return err
				}
				out = append(out, containerInspectOf(filepath.Join(a.opts.Root, "containers"), c))
			}
			if format != "" {
				tmpl, err := template.New("inspect").Funcs(containerTemplateFuncs).Parse(format)
				if err != nil {
					return fmt.Errorf("--format: %w", err)
				}
				for _, j := range out {
					// Templates see Docker's field names: go through JSON.
					var m map[string]any
					b, _ := json.Marshal(j)
					_ = json.Unmarshal(b, &m)
					if err := tmpl.Execute(a.stdout, m); err != nil {
						return fmt.Errorf("--format: %w", err)
					}
					fmt.Fprintln(a.stdout)
				}
				return nil
			}
			b, err := json.MarshalIndent(out, "", "    ")
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, string(b))
			return nil
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "Format output using a Go template")
	return cmd
}

func containerTopCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "top CONTAINER",
		Short: "Display the running processes of a container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			id, err := p.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			pids, err := p.rt.Processes(ctx, id)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "UID\tPID\tPPID\tSTIME\tCMD")
			for _, pid := range pids {
				uid, ppid, cmdline := containerProcInfo(pid)
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", uid, pid, ppid, "-", cmdline)
			}
			return tw.Flush()
		},
	}
}

// containerProcInfo reads a process' uid, parent and command line from /proc.
func containerProcInfo(pid int) (uid, ppid, cmdline string) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	cmdline = strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(st), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Uid:":
			uid = f[1]
		case "PPid:":
			ppid = f[1]
		}
	}
	return uid, ppid, cmdline
}

func containerStatsCmd(a *app) *cobra.Command {
	var noStream, all bool
	cmd := &cobra.Command{
		Use:   "stats [OPTIONS] [CONTAINER...]",
		Short: "Display a snapshot of containers' resource usage",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			var ids []string
			if len(args) == 0 {
				cs, err := p.rt.List(ctx)
				if err != nil {
					return err
				}
				for _, c := range cs {
					if all || c.State.Running() {
						ids = append(ids, c.Config.ID)
					}
				}
			} else {
				for _, ref := range args {
					id, err := p.resolve(ctx, ref)
					if err != nil {
						return err
					}
					ids = append(ids, id)
				}
			}
			// Two samples 500ms apart give the CPU rate.
			first := map[string]crt.Stats{}
			for _, id := range ids {
				s, _ := p.rt.Stats(ctx, id)
				first[id] = s
			}
			t0 := time.Now()
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(500 * time.Millisecond):
			}
			elapsed := time.Since(t0)
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tPIDS")
			for _, id := range ids {
				c, err := p.rt.Get(ctx, id)
				if err != nil {
					continue
				}
				s, _ := p.rt.Stats(ctx, id)
				cpu := 0.0
				if s.CPUUsage > first[id].CPUUsage {
					cpu = float64(s.CPUUsage-first[id].CPUUsage) / float64(elapsed.Nanoseconds()) * 100
				}
				memPct := 0.0
				limit := s.MemoryLimit
				if limit == 0 || limit > 1<<60 {
					limit = containerHostMemory()
				}
				if limit > 0 {
					memPct = float64(s.MemoryUsage) / float64(limit) * 100
				}
				fmt.Fprintf(tw, "%s\t%s\t%.2f%%\t%s / %s\t%.2f%%\t%d\n", id[:12], c.Config.Name, cpu,
					units.BytesSize(float64(s.MemoryUsage)), units.BytesSize(float64(limit)), memPct, s.Pids)
			}
			_ = noStream
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&noStream, "no-stream", false, "Print one snapshot and exit (the only mode supported)")
	cmd.Flags().BoolVarP(&all, "all", "a", false, "Show all containers")
	return cmd
}

func containerHostMemory() uint64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n * 1024
		}
	}
	return 0
}

// --- cp / commit ---

// containerCpArg splits a cp argument into container reference and path. As in Docker, an
// argument starting with / or . is always a local path; "-" is a tar stream.
func containerCpArg(arg string) (ref, p string) {
	if arg == "-" || strings.HasPrefix(arg, "/") || strings.HasPrefix(arg, ".") {
		return "", arg
	}
	ref, p, ok := strings.Cut(arg, ":")
	if !ok {
		return "", arg
	}
	return ref, p
}

// containerLocalPath makes a local cp path absolute, keeping the trailing "/" or "/." that
// carry meaning.
func containerLocalPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	switch {
	case p == "." || strings.HasSuffix(p, "/."):
		if abs != "/" {
			abs += "/."
		}
	case strings.HasSuffix(p, "/") && abs != "/":
		abs += "/"
	}
	return abs, nil
}

// containerFS mounts (idempotently) a container's rootfs and returns its file system view.
func containerFS(ctx context.Context, p *containerParts, ref string) (*crt.ContainerFS, error) {
	id, err := p.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := p.mountRootfs(ctx, id); err != nil {
		return nil, fmt.Errorf("mount the filesystem of %s: %w", ref, err)
	}
	return p.rt.FS(ctx, id)
}

func containerCpCmd(a *app) *cobra.Command {
	var archive, follow bool
	cmd := &cobra.Command{
		Use:   "cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n  berth container cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
		Short: "Copy files/folders between a container and the local filesystem",
		Long: "Copy files/folders between a container and the local filesystem. Paths inside the container " +
			"are resolved inside it: symlinks never lead out of the container. Works for running and stopped " +
			"containers. Use '-' as the local path to read or write a tar archive on stdin/stdout.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			srcRef, src := containerCpArg(args[0])
			dstRef, dst := containerCpArg(args[1])
			switch {
			case srcRef != "" && dstRef != "":
				return &exitError{code: 1, err: errors.New("copying between containers is not supported; copy to a local path first")}
			case srcRef == "" && dstRef == "":
				return &exitError{code: 1, err: errors.New("one of the paths must be CONTAINER:PATH")}
			}
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			host := crt.NewContainerFS("/", false, nil)
			wrap := func(err error) error {
				if err == nil {
					return nil
				}
				var ee *exitError
				if errors.As(err, &ee) {
					return err
				}
				return &exitError{code: 1, err: err}
			}
			if srcRef != "" { // out of the container
				cfs, err := containerFS(ctx, p, srcRef)
				if err != nil {
					return wrap(err)
				}
				if src == "" {
					src = "/"
				}
				if !strings.HasPrefix(src, "/") {
					src = "/" + src // relative to the container's root, as Docker does for stopped containers
				}
				xo := crt.ExtractOptions{KeepOwner: archive}
				if dst == "-" {
					name := path.Base(path.Clean(src))
					follow := follow || strings.HasSuffix(src, "/") || strings.HasSuffix(src, "/.")
					if strings.HasSuffix(src, "/.") || name == "/" {
						name = "."
					}
					return wrap(cfs.WriteTar(ctx, a.stdout, src, name, follow))
				}
				d, err := containerLocalPath(dst)
				if err != nil {
					return wrap(err)
				}
				return wrap(crt.Copy(ctx, cfs, src, host, d, crt.CopyOptions{FollowLink: follow, Extract: xo}))
			}
			cfs, err := containerFS(ctx, p, dstRef)
			if err != nil {
				return wrap(err)
			}
			if dst == "" {
				dst = "/"
			}
			if !strings.HasPrefix(dst, "/") {
				dst = "/" + dst
			}
			xo := crt.ExtractOptions{Owner: &[2]int{0, 0}}
			if archive {
				xo = crt.ExtractOptions{KeepOwner: true}
			}
			if src == "-" {
				return wrap(cfs.ExtractTar(ctx, a.stdin, dst, xo))
			}
			s, err := containerLocalPath(src)
			if err != nil {
				return wrap(err)
			}
			return wrap(crt.Copy(ctx, host, s, cfs, dst, crt.CopyOptions{FollowLink: follow, Extract: xo}))
		},
	}
	cmd.Flags().BoolVarP(&archive, "archive", "a", false, "Archive mode (copy all uid/gid information)")
	cmd.Flags().BoolVarP(&follow, "follow-link", "L", false, "Always follow symbol link in SRC_PATH")
	return cmd
}

func containerCommitCmd(a *app) *cobra.Command {
	var author, message string
	var changes []string
	var pause bool
	cmd := &cobra.Command{
		Use:   "commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
		Short: "Create a new image from a container's changes",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := containerOpen(a)
			if err != nil {
				return err
			}
			id, err := p.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			c, err := p.rt.Get(ctx, id)
			if err != nil {
				return err
			}
			imgID := c.Config.Labels[containerImageIDLabel]
			if imgID == "" {
				return &exitError{code: 1, err: fmt.Errorf("container %s was not created from a berth image; only `berth container run/create` containers can be committed", args[0])}
			}
			s, err := containerStore(a)
			if err != nil {
				return err
			}
			defer s.Close()
			img, err := s.Resolve(ctx, imgID)
			if err != nil {
				return fmt.Errorf("image of %s: %w", args[0], err)
			}
			cfg := containerCommitConfig(img.Config, c.Config)
			for _, ch := range changes {
				if err := containerApplyChange(&cfg, ch); err != nil {
					return &exitError{code: 1, err: err}
				}
			}
			if pause && c.State.Status == crt.StatusRunning {
				if err := p.rt.Pause(ctx, id); err != nil {
					return fmt.Errorf("pause %s: %w", args[0], err)
				}
				defer func() { _ = p.rt.Unpause(context.WithoutCancel(ctx), id) }()
			}
			var refs []string
			if len(args) == 2 {
				refs = []string{args[1]}
			}
			out, err := s.Commit(ctx, id, storage.CommitOptions{
				Config: cfg, Refs: refs, Comment: message, Author: author,
				CreatedBy: strings.Join(c.Config.Args, " "),
			})
			if err != nil {
				if errors.Is(err, storage.ErrInvalidRef) {
					return &exitError{code: 1, err: err}
				}
				return fmt.Errorf("commit %s: %w", args[0], err)
			}
			fmt.Fprintln(a.stdout, out.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&author, "author", "a", "", `Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")`)
	f.StringVarP(&message, "message", "m", "", "Commit message")
	f.StringArrayVarP(&changes, "change", "c", nil, "Apply Dockerfile instruction to the created image")
	f.BoolVarP(&pause, "pause", "p", true, "Pause container during commit")
	return cmd
}

// containerCommitConfig is the committed image's config: the image's, with what the container
// was run with (environment, command, user, working directory, labels, stop signal).
func containerCommitConfig(ic storage.ImageConfig, c crt.ContainerConfig) storage.ImageConfig {
	out := ic
	out.Env = append([]string(nil), c.Env...)
	out.WorkingDir = c.WorkingDir
	out.User = c.User
	if c.StopSignal != "" {
		out.StopSignal = c.StopSignal
	}
	imageArgs := append(append([]string(nil), ic.Entrypoint...), ic.Cmd...)
	if !slicesEqual(imageArgs, c.Args) {
		if len(ic.Entrypoint) > 0 && len(c.Args) >= len(ic.Entrypoint) && slicesEqual(c.Args[:len(ic.Entrypoint)], ic.Entrypoint) {
			out.Cmd = append([]string(nil), c.Args[len(ic.Entrypoint):]...)
		} else {
			out.Entrypoint, out.Cmd = nil, append([]string(nil), c.Args...)
		}
	}
	labels := map[string]string{}
	for k, v := range ic.Labels {
		labels[k] = v
	}
	for k, v := range c.Labels {
		if !strings.HasPrefix(k, "io.berth.") {
			labels[k] = v
		}
	}
	out.Labels = nil
	if len(labels) > 0 {
		out.Labels = labels
	}
	return out
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// containerChangeArgs parses an instruction's arguments: a JSON array, or shell words.
func containerChangeArgs(rest string, shell bool) ([]string, error) {
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, "[") {
		var out []string
		if err := json.Unmarshal([]byte(rest), &out); err != nil {
			return nil, fmt.Errorf("%q is not a JSON array of strings", rest)
		}
		return out, nil
	}
	if shell {
		return []string{"/bin/sh", "-c", rest}, nil
	}
	return containerWords(rest)
}

// containerWords splits s at unquoted blanks, honouring "..." and '...' and backslash escapes.
func containerWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in, quote, esc := false, rune(0), false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc, in = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// containerKeyValues parses ENV/LABEL arguments: k=v pairs, or the legacy "KEY value" form.
func containerKeyValues(instr, rest string) ([][2]string, error) {
	words, err := containerWords(rest)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%s needs arguments", instr)
	}
	if !strings.Contains(words[0], "=") {
		k, v, _ := strings.Cut(strings.TrimSpace(rest), " ")
		return [][2]string{{k, strings.TrimSpace(v)}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: use KEY=VALUE", instr, w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// containerApplyChange applies one `--change` Dockerfile instruction to cfg.
func containerApplyChange(cfg *storage.ImageConfig, change string) error {
	instr, rest, _ := strings.Cut(strings.TrimSpace(change), " ")
	rest = strings.TrimSpace(rest)
	bad := func(err error) error { return fmt.Errorf("--change %q: %w", change, err) }
	switch strings.ToUpper(instr) {
	case "CMD", "ENTRYPOINT":
		args, err := containerChangeArgs(rest, true)
		if err != nil {
			return bad(err)
		}
		if strings.EqualFold(instr, "CMD") {
			cfg.Cmd = args
		} else {
			cfg.Entrypoint = args
		}
	case "ENV":
		kvs, err := containerKeyValues("ENV", rest)
		if err != nil {
			return bad(err)
		}
		for _, kv := range kvs {
			cfg.Env = containerMergeEnv(cfg.Env, []string{kv[0] + "=" + kv[1]})
		}
	case "LABEL":
		kvs, err := containerKeyValues("LABEL", rest)
		if err != nil {
			return bad(err)
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			cfg.Labels[kv[0]] = kv[1]
		}
	case "EXPOSE":
		for _, w := range strings.Fields(rest) {
			if !strings.Contains(w, "/") {
				w += "/tcp"
			}
			if !containsString(cfg.ExposedPorts, w) {
				cfg.ExposedPorts = append(cfg.ExposedPorts, w)
			}
		}
		sort.Strings(cfg.ExposedPorts)
	case "VOLUME":
		vols, err := containerChangeArgs(rest, false)
		if err != nil {
			return bad(err)
		}
		for _, v := range vols {
			if !containsString(cfg.Volumes, v) {
				cfg.Volumes = append(cfg.Volumes, v)
			}
		}
		sort.Strings(cfg.Volumes)
	case "USER":
		cfg.User = rest
	case "WORKDIR":
		if !strings.HasPrefix(rest, "/") {
			rest = path.Join("/", cfg.WorkingDir, rest)
		}
		cfg.WorkingDir = rest
	case "STOPSIGNAL":
		cfg.StopSignal = rest
	case "ONBUILD":
		cfg.OnBuild = append(cfg.OnBuild, rest)
	default:
		return bad(errors.New("supported instructions: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR"))
	}
	return nil
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
