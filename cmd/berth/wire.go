package main

// wire*.go adapt the concrete storage, runtime and network packages to the engine's small
// interfaces (engine/deps.go). This is the only place where they meet.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/engine"
	"github.com/berth-dev/berth/netns"
	crt "github.com/berth-dev/berth/runtime"
	"github.com/berth-dev/berth/spec"
	"github.com/berth-dev/berth/storage"
)

// On-disk layout under --root and --run-root (DESIGN.md "On disk").
func wireStorageRoot(a *app) string    { return filepath.Join(a.opts.Root, "storage") }
func wireContainersRoot(a *app) string { return filepath.Join(a.opts.Root, "containers") }
func wireVolumesRoot(a *app) string    { return filepath.Join(a.opts.Root, "volumes") }
func wireNetworksRoot(a *app) string   { return filepath.Join(a.opts.Root, "networks") }
func wireNetRunRoot(a *app) string     { return a.opts.RunRoot }

// wireParts are the concrete parts a command opened.
type wireParts struct {
	store *storage.Store
	rt    *crt.Runtime
	net   *netns.Manager
	vols  *wireVolumes
}

func (w *wireParts) Close() {
	if w.store != nil {
		_ = w.store.Close()
	}
}

// wireStateExists reports whether berth has state on this machine (the root exists).
func wireStateExists(a *app) bool {
	_, err := os.Stat(a.opts.Root)
	return err == nil
}

// wireOpen opens the concrete parts. With readOnly and no state on the machine it opens
// nothing, so that observing finds an empty machine (`up --dry-run` without root).
func wireOpen(a *app, readOnly bool) (*wireParts, error) {
	w := &wireParts{}
	if readOnly && !wireStateExists(a) {
		return w, nil
	}
	var err error
	if w.store, err = storage.Open(wireStorageRoot(a)); err != nil {
		if readOnly && errors.Is(err, fs.ErrPermission) {
			return &wireParts{}, nil
		}
		return nil, fmt.Errorf("open image store: %w", err)
	}
	if w.rt, err = crt.New(crt.Config{Root: wireContainersRoot(a), RunRoot: a.opts.RunRoot, Logger: a.logger}); err != nil {
		w.Close()
		if readOnly && errors.Is(err, fs.ErrPermission) {
			return &wireParts{}, nil
		}
		return nil, fmt.Errorf("open runtime: %w", err)
	}
	if w.net, err = netns.New(netns.Config{Root: wireNetworksRoot(a), RunRoot: wireNetRunRoot(a), Logger: a.logger}); err != nil {
		w.Close()
		if readOnly && errors.Is(err, fs.ErrPermission) {
			return &wireParts{}, nil
		}
		return nil, fmt.Errorf("open networks: %w", err)
	}
	vols, err := crt.NewVolumes(wireVolumesRoot(a))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open volumes: %w", err)
	}
	w.vols = &wireVolumes{v: vols}
	return w, nil
}

// wireEngine builds an engine over the parts; nil parts stay nil in the engine.
func wireEngine(a *app, w *wireParts, who string) (*engine.Engine, error) {
	cfg := engine.Config{
		RunRoot:  a.opts.RunRoot,
		Logger:   a.logger,
		Parallel: a.opts.Parallel,
		Who:      who,
	}
	if w.store != nil {
		cfg.Images = wireImages{s: w.store}
		cfg.Layers = wireLayers{s: w.store}
		cfg.Builder = buildNewComposeBuilder(a, w.store)
	}
	if w.rt != nil {
		r := wireRuntime{r: w.rt, rmCmd: wireRemoveArgs(a)}
		cfg.Runtime, cfg.Lister, cfg.Signaler, cfg.Logs = r, r, r, r
	}
	if w.net != nil {
		cfg.Networks = wireNetworks{m: w.net}
		cfg.Sandboxes = wireSandboxes{m: w.net, netnsDir: filepath.Join(wireNetRunRoot(a), "netns")}
	}
	if w.vols != nil {
		cfg.Volumes = w.vols
	}
	if w.rt == nil {
		// Nothing to lock when nothing can change (dry run on a machine without state).
		cfg.RunRoot = ""
	}
	return engine.New(cfg)
}

// wireNotFound adds engine.ErrNotFound to a leaf package's not-found error.
func wireNotFound(err error, leaf ...error) error {
	if err == nil {
		return nil
	}
	for _, l := range leaf {
		if errors.Is(err, l) {
			return fmt.Errorf("%w (%w)", err, engine.ErrNotFound)
		}
	}
	return err
}

// wireClass adds the engine's error class to a leaf package's error of class leaf, keeping
// the message as it is.
func wireClass(err, leaf, class error) error {
	if err == nil || !errors.Is(err, leaf) {
		return err
	}
	return &wireClassed{err: err, class: class}
}

type wireClassed struct{ err, class error }

func (e *wireClassed) Error() string   { return e.err.Error() }
func (e *wireClassed) Unwrap() []error { return []error{e.err, e.class} }

// --- images and layers (storage) ---

type wireImages struct{ s *storage.Store }

func (w wireImages) Resolve(ctx context.Context, ref string) (engine.Image, error) {
	img, err := w.s.Resolve(ctx, ref)
	if err != nil {
		return engine.Image{}, wireNotFound(err, storage.ErrNotFound)
	}
	c := img.Config
	out := engine.Image{
		ID: img.ID, Env: c.Env, Cmd: c.Cmd, Entrypoint: c.Entrypoint, WorkingDir: c.WorkingDir,
		User: c.User, StopSignal: c.StopSignal, Volumes: c.Volumes,
	}
	if h := c.Healthcheck; h != nil && len(h.Test) > 0 && h.Test[0] != "NONE" {
		out.Healthcheck = &spec.Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}
	}
	return out, nil
}

func (w wireImages) Pull(ctx context.Context, ref string) error {
	return wirePull(ctx, w.s, ref)
}

func (w wireImages) Remove(ctx context.Context, ref string) error {
	return wireRemoveImage(ctx, w.s, ref)
}

type wireLayers struct{ s *storage.Store }

func (w wireLayers) Mount(ctx context.Context, containerID, imageID string) (string, error) {
	return w.s.Mount(ctx, containerID, imageID)
}

func (w wireLayers) Unmount(ctx context.Context, containerID string) error {
	return wireNotFound(w.s.Unmount(ctx, containerID), storage.ErrNotFound)
}

func (w wireLayers) Remove(ctx context.Context, containerID string) error {
	return wireNotFound(w.s.RemoveContainerLayer(ctx, containerID), storage.ErrNotFound)
}

var _ engine.LayerLister = wireLayers{}

// List returns the containers with a writable layer, made when their directory was.
func (w wireLayers) List(ctx context.Context) ([]engine.Leftover, error) {
	ids, err := w.s.ContainerLayers(ctx)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return wireLeftovers(ids, func(id string) string { return filepath.Dir(w.s.RootFS(id)) }), nil
}

// wireLeftovers stamps IDs with the modification time of the path each one names (zero when
// it is gone: the engine then leaves it alone).
func wireLeftovers(ids []string, path func(id string) string) []engine.Leftover {
	out := make([]engine.Leftover, 0, len(ids))
	for _, id := range ids {
		l := engine.Leftover{ID: id}
		if st, err := os.Lstat(path(id)); err == nil {
			l.Created = st.ModTime()
		}
		out = append(out, l)
	}
	return out
}

// --- containers (runtime) ---

type wireRuntime struct {
	r *crt.Runtime
	// rmCmd is the command, without the container ID, that removes a container with
	// everything the engine made for it (the hidden __remove-container).
	rmCmd []string
}

var (
	_ engine.AutoRemover  = wireRuntime{}
	_ engine.StateWatcher = wireRuntime{}
	_ engine.IDLister     = wireRuntime{}
)

// SetAutoRemove makes the container's monitor run `berth __remove-container ID` when the
// container exits, which releases its sandbox, writable layer and anonymous volumes too.
func (w wireRuntime) SetAutoRemove(ctx context.Context, id string) error {
	if len(w.rmCmd) == 0 {
		return fmt.Errorf("auto-remove: no berth executable: %w", engine.ErrUnsupported)
	}
	cmd := append(append([]string(nil), w.rmCmd...), id)
	return wireNotFound(w.r.SetAutoRemove(ctx, id, cmd), crt.ErrNotFound)
}

func (w wireRuntime) Create(ctx context.Context, c engine.ContainerConfig) error {
	return w.r.Create(ctx, wireContainerConfig(c))
}

func (w wireRuntime) Start(ctx context.Context, id string) error {
	return wireNotFound(w.r.Start(ctx, id), crt.ErrNotFound)
}

func (w wireRuntime) Stop(ctx context.Context, id string, grace time.Duration) error {
	err := w.r.Stop(ctx, id, grace)
	if errors.Is(err, crt.ErrNotRunning) {
		return nil
	}
	return wireNotFound(err, crt.ErrNotFound)
}

func (w wireRuntime) Remove(ctx context.Context, id string, force bool) error {
	err := w.r.Remove(ctx, id, force)
	if errors.Is(err, crt.ErrNotFound) {
		return nil
	}
	return err
}

func (w wireRuntime) Inspect(ctx context.Context, id string) (engine.ContainerInfo, error) {
	c, err := w.r.Get(ctx, id)
	if err != nil {
		return engine.ContainerInfo{}, wireNotFound(err, crt.ErrNotFound)
	}
	return wireInfo(c), nil
}

func (w wireRuntime) List(ctx context.Context) ([]engine.ContainerInfo, error) {
	cs, err := w.r.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]engine.ContainerInfo, len(cs))
	for i, c := range cs {
		out[i] = wireInfo(c)
	}
	return out, nil
}

func (w wireRuntime) IDs(ctx context.Context) ([]string, error) { return w.r.IDs(ctx) }

func (w wireRuntime) WatchState(ctx context.Context, ids []string) (<-chan struct{}, func(), error) {
	return w.r.WatchState(ctx, ids)
}

func (w wireRuntime) Kill(ctx context.Context, id, signal string) error {
	sig, err := crt.ParseSignal(signal)
	if err != nil {
		return err
	}
	err = w.r.Kill(ctx, id, sig)
	if errors.Is(err, crt.ErrNotRunning) {
		return nil
	}
	return wireNotFound(err, crt.ErrNotFound)
}

func (w wireRuntime) Pause(ctx context.Context, id string) error   { return w.r.Pause(ctx, id) }
func (w wireRuntime) Unpause(ctx context.Context, id string) error { return w.r.Unpause(ctx, id) }

func (w wireRuntime) Tail(ctx context.Context, id string, n int) ([]engine.LogLine, error) {
	var out []engine.LogLine
	err := w.r.ReadLogs(ctx, id, crt.LogOptions{Tail: n}, func(l crt.LogLine) error {
		out = append(out, engine.LogLine{Time: l.Time, Stream: l.Stream, Text: l.Text})
		return nil
	})
	return out, wireNotFound(err, crt.ErrNotFound)
}

func (w wireRuntime) Follow(ctx context.Context, id string, tail int, untilExit bool, fn func(engine.LogLine)) error {
	err := w.r.ReadLogs(ctx, id, crt.LogOptions{Tail: tail, Follow: true}, func(l crt.LogLine) error {
		fn(engine.LogLine{Time: l.Time, Stream: l.Stream, Text: l.Text})
		return nil
	})
	return wireNotFound(err, crt.ErrNotFound)
}

func wireInfo(c crt.Container) engine.ContainerInfo {
	info := engine.ContainerInfo{
		ID: c.Config.ID, Name: c.Config.Name, Labels: c.Config.Labels,
		State: c.State.Status, ExitCode: c.State.ExitCode, Pid: c.State.Pid,
		Created: c.Config.Created, Command: strings.Join(c.Config.Args, " "),
	}
	if c.State.Health != nil {
		info.Health = c.State.Health.Status
	}
	if info.Labels == nil {
		info.Labels = map[string]string{}
	}
	return info
}

// wireContainerConfig maps the engine's container config (and the service's settings the
// engine does not interpret) to the runtime's.
func wireContainerConfig(c engine.ContainerConfig) crt.ContainerConfig {
	s := c.Service
	out := crt.ContainerConfig{
		ID: c.ID, Name: c.Name, Labels: c.Labels, Image: c.Labels["io.berth.image.ref"],
		Rootfs: c.Rootfs, Args: c.Args, Env: c.Env, WorkingDir: c.WorkingDir, User: c.User,
		GroupAdd: s.GroupAdd, Hostname: c.Hostname, Domainname: s.Domainname,
		Tty: c.Tty, OpenStdin: c.OpenStdin, NetNSPath: c.NetNSPath,
		PIDMode: s.PID, IPCMode: s.IPC, UsernsMode: s.UsernsMode, VolumesFrom: s.VolumesFrom,
		Hosts: c.Hosts, ResolvConf: c.ResolvConf,
		Resources: crt.Resources{
			Memory: s.Resources.MemLimit, MemorySwap: s.Resources.MemSwapLimit,
			MemoryReservation: s.Resources.MemReservation, CPUs: s.Resources.CPUs,
			CpusetCpus: s.Resources.Cpuset, PidsLimit: s.Resources.PidsLimit,
		},
		CapAdd: s.CapAdd, CapDrop: s.CapDrop, Privileged: s.Privileged, ReadOnly: s.ReadOnly,
		SecurityOpt: s.SecurityOpt, Sysctls: s.Sysctls, ShmSize: s.ShmSize,
		StopSignal: c.StopSignal, Restart: c.Restart,
	}
	if s.Resources.CPUShares > 0 {
		out.Resources.CPUShares = uint64(s.Resources.CPUShares)
	}
	if s.Init != nil {
		out.Init = *s.Init
	}
	if s.StopGracePeriod != nil {
		out.StopTimeout = *s.StopGracePeriod
	}
	for _, m := range c.Mounts {
		out.Mounts = append(out.Mounts, crt.Mount{Type: m.Type, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, Options: m.Options})
	}
	for name, u := range s.Ulimits {
		out.Ulimits = append(out.Ulimits, crt.Ulimit{Name: name, Soft: u.Soft, Hard: u.Hard})
	}
	for _, d := range s.Devices {
		parts := strings.Split(d, ":")
		dev := crt.Device{PathOnHost: parts[0]}
		if len(parts) > 1 {
			dev.PathInContainer = parts[1]
		}
		if len(parts) > 2 {
			dev.CgroupPermissions = parts[2]
		}
		out.Devices = append(out.Devices, dev)
	}
	if h := c.Healthcheck; h != nil {
		out.Healthcheck = &crt.Healthcheck{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries}
	}
	if s.Logging != nil {
		if v, ok := s.Logging.Options["max-size"]; ok {
			if n, err := wireParseSize(v); err == nil {
				out.LogMaxSize = n
			}
		}
		if v, ok := s.Logging.Options["max-file"]; ok {
			if n, err := strconv.Atoi(v); err == nil {
				out.LogMaxFiles = n
			}
		}
	}
	return out
}

func wireParseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for suf, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			mult = m
			s = strings.TrimSuffix(s, suf)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

var _ engine.PortChecker = wireSandboxes{}

// --- networks (netns) ---

type wireNetworks struct{ m *netns.Manager }

func (w wireNetworks) Ensure(ctx context.Context, n engine.NetworkConfig) error {
	_, err := w.m.EnsureNetwork(ctx, netns.NetworkConfig{Name: n.Name, Labels: n.Labels, Internal: n.Internal,
		Subnet: n.Subnet, Gateway: n.Gateway, IPRange: n.IPRange})
	return err
}

func (w wireNetworks) Remove(ctx context.Context, name string) error {
	err := w.m.RemoveNetwork(ctx, name)
	if errors.Is(err, netns.ErrNotFound) {
		return nil
	}
	return err
}

func (w wireNetworks) List(ctx context.Context) ([]engine.NetworkInfo, error) {
	nets, err := w.m.ListNetworks(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]engine.NetworkInfo, len(nets))
	for i, n := range nets {
		out[i] = engine.NetworkInfo{Name: n.Name, Labels: n.Labels}
	}
	return out, nil
}

type wireSandboxes struct {
	m *netns.Manager
	// netnsDir is where netns mounts sandboxes; it makes the directory a shared mount of its
	// own, which Recover undoes when no sandbox is left.
	netnsDir string
}

func (w wireSandboxes) Create(ctx context.Context, id string) (string, error) {
	return w.m.CreateSandbox(ctx, id)
}

func (w wireSandboxes) Attach(ctx context.Context, id string, ep engine.EndpointConfig) (engine.Endpoint, error) {
	e, err := w.m.Attach(ctx, id, ep.Network, netns.EndpointConfig{IPv4Address: ep.IPv4Address,
		Aliases: ep.Aliases, Hostname: ep.Hostname, ContainerName: ep.ContainerName, Links: ep.Links})
	if err != nil {
		return engine.Endpoint{}, err
	}
	out := engine.Endpoint{Network: e.Network, IP: e.IP, Gateway: e.Gateway}
	n, err := w.m.InspectNetwork(ctx, ep.Network)
	if err == nil && n.Gateway != "" {
		// Each network's DNS server listens on its gateway address.
		out.DNS = n.Gateway
	}
	return out, nil
}

func (w wireSandboxes) Publish(ctx context.Context, id string, ports []engine.PortMapping) ([]engine.PortMapping, error) {
	in := make([]netns.PortMapping, len(ports))
	for i, p := range ports {
		in[i] = netns.PortMapping{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol}
	}
	got, err := w.m.Publish(ctx, id, in)
	if err != nil {
		return nil, wireClass(err, netns.ErrPortInUse, engine.ErrPortInUse)
	}
	out := make([]engine.PortMapping, len(got))
	for i, p := range got {
		out[i] = engine.PortMapping{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol}
	}
	return out, nil
}

func (w wireSandboxes) CheckPorts(ctx context.Context, ports []engine.PortMapping) error {
	in := make([]netns.PortMapping, len(ports))
	for i, p := range ports {
		in[i] = netns.PortMapping{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol}
	}
	return wireClass(w.m.CheckPorts(ctx, in), netns.ErrPortInUse, engine.ErrPortInUse)
}

func (w wireSandboxes) Remove(ctx context.Context, id string, networks []string) error {
	err := w.m.RemoveSandbox(ctx, id)
	if err != nil && !errors.Is(err, netns.ErrNotFound) && !errors.Is(err, netns.ErrNoSandbox) {
		return err
	}
	// The container is gone for good (recreate makes a new ID): its remembered ports too.
	return w.m.ForgetPorts(ctx, id)
}

var _ engine.SandboxSweeper = wireSandboxes{}

// List returns the containers with a mounted network sandbox.
func (w wireSandboxes) List(ctx context.Context) ([]engine.Leftover, error) {
	ids, err := w.m.ListSandboxes(ctx)
	if err != nil {
		return nil, err
	}
	return wireLeftovers(ids, w.m.SandboxPath), nil
}

// Recover sweeps endpoints, rules and DNS records of containers whose sandbox is gone, and
// unmounts the sandboxes' directory when no sandbox is left in it, so that a machine where
// everything is down has no mount of berth's. The unmount is not lazy: while any sandbox is
// mounted beneath, it fails with EBUSY and changes nothing; the next CreateSandbox mounts the
// directory again.
func (w wireSandboxes) Recover(ctx context.Context) error {
	if err := w.m.Recover(ctx); err != nil {
		return err
	}
	if w.netnsDir == "" {
		return nil
	}
	if ids, err := w.m.ListSandboxes(ctx); err != nil || len(ids) > 0 {
		return err
	}
	err := unix.Unmount(w.netnsDir, 0)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", w.netnsDir, err)
	}
	return nil
}
