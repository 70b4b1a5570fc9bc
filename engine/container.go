package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

// NewID returns a random 64-hex container ID.
func NewID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("engine: read random: " + err.Error())
	}
	return hex.EncodeToString(b[:])
}

// CreateOptions adjust a container made outside a plan (`run`).
type CreateOptions struct {
	Name    string
	Number  int
	OneOff  bool
	Hash    string
	Command []string // overrides the service's command when non-nil
	// Entrypoint overrides the service's entrypoint when non-nil.
	Entrypoint []string
	Env        map[string]string
	User       string
	WorkingDir string
	Ports      []spec.Port // replaces the service's ports when non-nil
	Volumes    []spec.Mount
	Tty        bool
	OpenStdin  bool
	NoRestart  bool
	// AutoRemove removes the container, its sandbox, writable layer and anonymous volumes
	// when it exits (`run -d --rm`); the Runtime must be an AutoRemover.
	AutoRemove bool
}

// CreateContainer creates one container of svc outside a plan (for `run`), returning its ID.
func (e *Engine) CreateContainer(ctx context.Context, p *spec.Project, svc spec.Service, opt CreateOptions) (string, error) {
	// Under the project lock, so that a concurrent up or down never sweeps this create.
	unlock, err := e.Lock(ctx, p.Name, nil)
	if err != nil {
		return "", err
	}
	defer unlock()
	x := e.newExec(p, planner.Observed{}, NopProgress{})
	if opt.Command != nil {
		svc.Command = opt.Command
	}
	if opt.Entrypoint != nil {
		svc.Entrypoint = opt.Entrypoint
		if opt.Command == nil {
			svc.Command = []string{}
		}
	}
	if len(opt.Env) > 0 {
		env := map[string]string{}
		for k, v := range svc.Environment {
			env[k] = v
		}
		for k, v := range opt.Env {
			env[k] = v
		}
		svc.Environment = env
	}
	if opt.User != "" {
		svc.User = opt.User
	}
	if opt.WorkingDir != "" {
		svc.WorkingDir = opt.WorkingDir
	}
	if opt.Ports != nil {
		svc.Ports = opt.Ports
	}
	svc.Volumes = append(svc.Volumes, opt.Volumes...)
	if opt.Tty {
		svc.Tty = true
	}
	if opt.OpenStdin {
		svc.StdinOpen = true
	}
	if opt.NoRestart {
		svc.Restart = "no"
	}
	if opt.Hash == "" {
		opt.Hash = planner.ServiceHash(svc)
	}
	ar, ok := e.cfg.Runtime.(AutoRemover)
	if opt.AutoRemove && !ok {
		return "", fmt.Errorf("remove when it exits: %w", ErrUnsupported)
	}
	id, err := x.createContainerOpts(ctx, svc, opt.Number, opt.Name, opt.Hash, opt.OneOff)
	if err != nil || !opt.AutoRemove {
		return id, err
	}
	if err := ar.SetAutoRemove(ctx, id); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		defer cancel()
		return "", errors.Join(fmt.Errorf("remove when it exits: %w", err), x.removeContainerVolumes(cctx, id, true))
	}
	return id, nil
}

// RemoveContainer removes a container and everything made for it (sandbox, writable layer).
func (e *Engine) RemoveContainer(ctx context.Context, p *spec.Project, id string) error {
	x := e.newExec(p, planner.Observed{}, NopProgress{})
	return x.removeContainer(ctx, id)
}

// RemoveContainerVolumes removes a container (force: running or not), everything made for it
// and its anonymous volumes; a missing container is not an error. It is what an AutoRemover's
// container runs when it exits.
func (e *Engine) RemoveContainerVolumes(ctx context.Context, id string) error {
	x := e.newExec(&spec.Project{}, planner.Observed{}, NopProgress{})
	return x.removeContainerVolumes(ctx, id, true)
}

func (x *exec) createContainer(ctx context.Context, svc spec.Service, number int, name, hash string) (string, error) {
	return x.createContainerOpts(ctx, svc, number, name, hash, false)
}

func (x *exec) createContainerOpts(ctx context.Context, svc spec.Service, number int, name, hash string, oneOff bool) (_ string, err error) {
	c := &x.e.cfg
	if c.Images == nil || c.Layers == nil || c.Runtime == nil {
		return "", fmt.Errorf("create container: %w", ErrUnsupported)
	}
	// Secrets and configs fail (external, missing file) before anything is made.
	if _, err := fileMounts(x.p, svc, "", os.LookupEnv); err != nil {
		return "", err
	}
	ref := svc.ImageName(x.p.Name)
	img, err := c.Images.Resolve(ctx, ref)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	// id is not the named result: a failing return sets that to "" before the rollback runs.
	id := NewID()
	var attached []string
	// Every step that made something pushes its undo; a failure runs them in reverse, under
	// a context of their own, so that a failed or interrupted create leaves nothing behind.
	// The journal entry stays when the rollback is incomplete (or the process dies): the next
	// up or down of the project finishes it (Sweep).
	if err := x.e.journalBegin(x.p.Name, id); err != nil {
		return "", err
	}
	var undo rollback
	defer func() {
		if err == nil {
			x.e.journalEnd(x.p.Name, id)
			return
		}
		if rerr := undo.run(ctx, rollbackTimeout); rerr != nil {
			x.e.log.Warn("create container: rollback incomplete", "container", name, "id", id, "err", rerr)
			err = errors.Join(err, fmt.Errorf("roll back %s: %w", name, rerr))
			return
		}
		x.e.journalEnd(x.p.Name, id)
	}()

	undo.push("writable layer", func(ctx context.Context) error {
		return errors.Join(ignoreNotFound(c.Layers.Unmount(ctx, id)), ignoreNotFound(c.Layers.Remove(ctx, id)))
	})
	rootfs, err := c.Layers.Mount(ctx, id, img.ID)
	if err != nil {
		return "", fmt.Errorf("mount rootfs: %w", err)
	}

	hostname := svc.Hostname
	if hostname == "" {
		hostname = id[:12]
	}
	cfg := ContainerConfig{
		ID:       id,
		Name:     name,
		Hostname: hostname,
		Rootfs:   rootfs,
		Restart:  svc.Restart,
		Tty:      svc.Tty,
		// Stdin of detached containers is not kept open by the runtime.
		OpenStdin: svc.StdinOpen,
		Service:   svc,
	}

	// Network.
	var endpoints []Endpoint
	switch {
	case svc.NetworkMode == "host":
		cfg.NetNSPath = "host"
	case strings.HasPrefix(svc.NetworkMode, "service:"), strings.HasPrefix(svc.NetworkMode, "container:"):
		// Join the other container's namespace through its PID 1.
		peer, err := x.peerContainer(ctx, svc.NetworkMode)
		if err != nil {
			return "", err
		}
		cfg.NetNSPath = fmt.Sprintf("/proc/%d/ns/net", peer.Pid)
	default:
		if c.Sandboxes == nil {
			return "", fmt.Errorf("network sandbox: %w", ErrUnsupported)
		}
		// Remove undoes a partial Create, the attachments and the published ports.
		undo.push("network sandbox", func(ctx context.Context) error {
			return ignoreNotFound(c.Sandboxes.Remove(ctx, id, attached))
		})
		ns, err := c.Sandboxes.Create(ctx, id)
		if err != nil {
			return "", fmt.Errorf("create network namespace: %w", err)
		}
		cfg.NetNSPath = ns
		if svc.NetworkMode != "none" {
			for _, key := range x.networkOrder(svc) {
				sn := svc.Networks[key]
				n, ok := x.p.Networks[key]
				if !ok {
					return "", fmt.Errorf("network %q: %w", key, ErrNotFound)
				}
				aliases := x.aliases(svc, name, sn)
				ep, err := c.Sandboxes.Attach(ctx, id, EndpointConfig{
					Network: n.Name, IPv4Address: sn.IPv4Address, Aliases: aliases,
					Hostname: hostname, ContainerName: name, Links: linkAliases(svc),
				})
				if err != nil {
					return "", fmt.Errorf("attach to network %s: %w", n.Name, err)
				}
				attached = append(attached, n.Name)
				endpoints = append(endpoints, ep)
			}
			if err := x.publish(ctx, svc, id, number); err != nil {
				return "", err
			}
		}
		cfg.Hosts = hostsFile(hostname, svc, endpoints)
		cfg.ResolvConf = resolvConf(svc, endpoints)
	}

	// Namespaces and volumes shared with other containers: the runtime joins or copies them
	// from containers, so a service reference becomes the container that stands for it.
	if err := x.resolveShared(ctx, &cfg.Service); err != nil {
		return "", err
	}

	// Process.
	entrypoint, cmd := img.Entrypoint, img.Cmd
	if svc.Entrypoint != nil {
		entrypoint = svc.Entrypoint
		cmd = nil
	}
	if svc.Command != nil {
		cmd = svc.Command
	}
	cfg.Args = append(append([]string{}, entrypoint...), cmd...)
	if len(cfg.Args) == 0 {
		return "", fmt.Errorf("service %s: no command: the image has no CMD or ENTRYPOINT; set command in the compose file", svc.Name)
	}
	cfg.Env = mergeEnv(img.Env, svc.Environment)
	cfg.WorkingDir = firstNonEmpty(svc.WorkingDir, img.WorkingDir)
	cfg.User = firstNonEmpty(svc.User, img.User)
	cfg.StopSignal = firstNonEmpty(svc.StopSignal, img.StopSignal)
	switch {
	case svc.Healthcheck != nil && svc.Healthcheck.Disable:
	case svc.Healthcheck != nil && len(svc.Healthcheck.Test) > 0:
		hc := *svc.Healthcheck
		cfg.Healthcheck = &hc
	case img.Healthcheck != nil:
		hc := *img.Healthcheck
		if svc.Healthcheck != nil {
			// Timing overrides without a test keep the image's test.
			mergeHealth(&hc, svc.Healthcheck)
		}
		cfg.Healthcheck = &hc
	}

	// Mounts.
	mounts, anon, err := x.mounts(ctx, svc, img, &undo)
	if err != nil {
		return "", err
	}
	files, err := fileMounts(x.p, svc, rootfs, os.LookupEnv)
	if err != nil {
		return "", err
	}
	cfg.Mounts = append(mounts, files...)

	// Labels.
	labels := map[string]string{}
	for k, v := range svc.Labels {
		labels[k] = v
	}
	labels[planner.LabelProject] = x.p.Name
	labels[planner.LabelService] = svc.Name
	labels[planner.LabelNumber] = strconv.Itoa(number)
	labels[planner.LabelOneOff] = "False"
	if oneOff {
		labels[planner.LabelOneOff] = "True"
	}
	labels[planner.LabelConfigHash] = hash
	labels[planner.LabelImage] = img.ID
	labels[planner.LabelWorkingDir] = x.p.WorkingDir
	labels[planner.LabelConfigFile] = strings.Join(x.p.ComposeFiles, ",")
	labels[planner.LabelVersion] = "berth"
	if deps := dependsOnLabel(svc); deps != "" {
		labels[planner.LabelDependsOn] = deps
	}
	labels[LabelNetworks] = strings.Join(attached, ",")
	labels[LabelImageRef] = ref
	if len(anon) > 0 {
		labels[LabelAnonVolumes] = strings.Join(anon, ",")
	}
	if fh, err := json.Marshal(planner.FieldHashes(svc)); err == nil {
		labels[LabelFieldHashes] = string(fh)
	}
	cfg.Labels = labels

	undo.push("container", func(ctx context.Context) error {
		return ignoreNotFound(c.Runtime.Remove(ctx, id, true))
	})
	if err := c.Runtime.Create(ctx, cfg); err != nil {
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	return id, nil
}

// peerContainer finds the running container named by network_mode "service:NAME" or
// "container:NAME".
func (x *exec) peerContainer(ctx context.Context, mode string) (ContainerInfo, error) {
	c := &x.e.cfg
	kind, name, _ := strings.Cut(mode, ":")
	if c.Lister == nil {
		return ContainerInfo{}, fmt.Errorf("network_mode %q: %w", mode, ErrUnsupported)
	}
	all, err := c.Lister.List(ctx)
	if err != nil {
		return ContainerInfo{}, err
	}
	for _, o := range all {
		match := o.Name == name || o.ID == name
		if kind == "service" {
			match = o.Labels[planner.LabelProject] == x.p.Name && o.Labels[planner.LabelService] == name &&
				o.Labels[planner.LabelOneOff] != "True"
		}
		if match && o.State == planner.StateRunning && o.Pid > 0 {
			return o, nil
		}
	}
	return ContainerInfo{}, fmt.Errorf("network_mode %q: no running container: %w", mode, ErrNotFound)
}

// resolveShared rewrites the service's volumes_from, pid and ipc references for the runtime:
// "service:NAME" (and a bare service name in volumes_from) becomes "container:ID" of the
// service's lowest-numbered container (running, for pid and ipc); "container:NAME" is left
// to the runtime. A service that another one joins with ipc: service:NAME gets a shareable
// IPC namespace, so that its /dev/shm is shared too.
func (x *exec) resolveShared(ctx context.Context, svc *spec.Service) error {
	if len(svc.VolumesFrom) > 0 {
		out := make([]string, 0, len(svc.VolumesFrom))
		for _, v := range svc.VolumesFrom {
			if ref, ok := strings.CutPrefix(v, "container:"); ok {
				out = append(out, ref)
				continue
			}
			name, mode, _ := strings.Cut(v, ":")
			o, err := x.serviceContainer(ctx, "volumes_from", name, false)
			if err != nil {
				return err
			}
			if mode != "" {
				out = append(out, o.ID+":"+mode)
			} else {
				out = append(out, o.ID)
			}
		}
		svc.VolumesFrom = out
	}
	for _, f := range []struct {
		key string
		v   *string
	}{{"pid", &svc.PID}, {"ipc", &svc.IPC}} {
		name, ok := strings.CutPrefix(*f.v, "service:")
		if !ok {
			continue
		}
		o, err := x.serviceContainer(ctx, f.key, name, true)
		if err != nil {
			return err
		}
		*f.v = "container:" + o.ID
	}
	if svc.IPC == "" || svc.IPC == "private" {
		for _, other := range x.p.Services {
			if other.Name != svc.Name && other.IPC == "service:"+svc.Name {
				svc.IPC = "shareable"
				break
			}
		}
	}
	return nil
}

// serviceContainer returns the lowest-numbered container (not one-off) of this project's
// service name, only among running ones when running is set. key names the referring
// setting in errors.
func (x *exec) serviceContainer(ctx context.Context, key, name string, running bool) (ContainerInfo, error) {
	c := &x.e.cfg
	if c.Lister == nil {
		return ContainerInfo{}, fmt.Errorf("%s: service:%s: %w", key, name, ErrUnsupported)
	}
	all, err := c.Lister.List(ctx)
	if err != nil {
		return ContainerInfo{}, err
	}
	var best ContainerInfo
	bestN := 0
	for _, o := range all {
		if o.Labels[planner.LabelProject] != x.p.Name || o.Labels[planner.LabelService] != name ||
			o.Labels[planner.LabelOneOff] == "True" {
			continue
		}
		if running && o.State != planner.StateRunning {
			continue
		}
		n, _ := strconv.Atoi(o.Labels[planner.LabelNumber])
		if best.ID == "" || n < bestN {
			best, bestN = o, n
		}
	}
	if best.ID == "" {
		what := "no container"
		if running {
			what = "no running container"
		}
		return ContainerInfo{}, fmt.Errorf("%s: service %s has %s: %w", key, name, what, ErrNotFound)
	}
	return best, nil
}

func mergeHealth(dst, src *spec.Healthcheck) {
	if src.Interval != 0 {
		dst.Interval = src.Interval
	}
	if src.Timeout != 0 {
		dst.Timeout = src.Timeout
	}
	if src.StartPeriod != 0 {
		dst.StartPeriod = src.StartPeriod
	}
	if src.StartInterval != 0 {
		dst.StartInterval = src.StartInterval
	}
	if src.Retries != 0 {
		dst.Retries = src.Retries
	}
}

func dependsOnLabel(svc spec.Service) string {
	var deps []string
	for name, d := range svc.DependsOn {
		deps = append(deps, fmt.Sprintf("%s:%s:%t", name, d.Condition, d.Restart))
	}
	sort.Strings(deps)
	return strings.Join(deps, ",")
}

// networkOrder sorts a service's networks by priority (highest first), then key.
func (x *exec) networkOrder(svc spec.Service) []string {
	keys := make([]string, 0, len(svc.Networks))
	for k := range svc.Networks {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		pi, pj := svc.Networks[keys[i]].Priority, svc.Networks[keys[j]].Priority
		if pi != pj {
			return pi > pj
		}
		return keys[i] < keys[j]
	})
	return keys
}

// aliases are the DNS names of a container on one network: the service name, the container
// name and the network aliases. Link aliases are not among them: only the linking container
// resolves those (linkAliases).
func (x *exec) aliases(svc spec.Service, name string, sn spec.ServiceNetwork) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	add(svc.Name)
	add(name)
	for _, a := range sn.Aliases {
		add(a)
	}
	return out
}

// linkAliases are the names svc's containers alone resolve through `links: [SERVICE:ALIAS]`
// (alias -> service); a link without an alias needs none, the service name resolves anyway.
func linkAliases(svc spec.Service) map[string]string {
	var out map[string]string
	for _, l := range svc.Links {
		target, alias, ok := strings.Cut(l, ":")
		if !ok || alias == "" || alias == target {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[alias] = target
	}
	return out
}

// portSpec is a port to publish: a fixed host port, a random one (HostPort 0), or one from
// the host port range HostPort-Last (Last > HostPort).
type portSpec struct {
	PortMapping
	Last uint16
}

func (p portSpec) ranged() bool { return p.Last > p.HostPort }

func (p portSpec) String() string {
	host := p.HostIP
	if host != "" {
		host += ":"
	}
	return fmt.Sprintf("%s%d-%d:%d/%s", host, p.HostPort, p.Last, p.ContainerPort, p.Protocol)
}

func portSpecs(ports []spec.Port) []portSpec {
	var out []portSpec
	for _, p := range ports {
		ps := portSpec{PortMapping: PortMapping{HostIP: p.HostIP, ContainerPort: uint16(p.Target), Protocol: p.Protocol}}
		if ps.Protocol == "" {
			ps.Protocol = "tcp"
		}
		first, last, isRange := strings.Cut(p.Published, "-")
		if first != "" {
			if n, err := strconv.ParseUint(first, 10, 16); err == nil {
				ps.HostPort = uint16(n)
			}
		}
		if isRange {
			if n, err := strconv.ParseUint(last, 10, 16); err == nil && uint16(n) > ps.HostPort {
				ps.Last = uint16(n)
			}
		}
		out = append(out, ps)
	}
	return out
}

// fixedPorts are the mappings with one fixed or random host port (not ranges), which can be
// checked before anything starts.
func fixedPorts(ports []spec.Port) []PortMapping {
	var out []PortMapping
	for _, p := range portSpecs(ports) {
		if !p.ranged() {
			out = append(out, p.PortMapping)
		}
	}
	return out
}

// publish publishes the service's ports for container id, replica number. A host port range
// gives each replica one port of it: replica n tries the range's n-th port first, then the
// others in order, so replicas created together get one port each in replica order, and
// never the same one (Publish is atomic and fails with ErrPortInUse on a taken port).
func (x *exec) publish(ctx context.Context, svc spec.Service, id string, number int) error {
	specs := portSpecs(svc.Ports)
	if len(specs) == 0 {
		return nil
	}
	sb := x.e.cfg.Sandboxes
	var done []PortMapping
	for _, p := range specs {
		if !p.ranged() {
			done = append(done, p.PortMapping)
		}
	}
	if len(done) > 0 {
		if _, err := sb.Publish(ctx, id, done); err != nil {
			return fmt.Errorf("publish ports: %w", err)
		}
	}
	// Publish replaces a container's ports: each try publishes every port chosen so far.
	for _, p := range specs {
		if !p.ranged() {
			continue
		}
		n := int(p.Last) - int(p.HostPort) + 1
		start := 0
		if number > 0 {
			start = (number - 1) % n
		}
		ok := false
		for i := 0; i < n && !ok; i++ {
			try := p.PortMapping
			try.HostPort = p.HostPort + uint16((start+i)%n)
			_, err := sb.Publish(ctx, id, append(append([]PortMapping(nil), done...), try))
			switch {
			case err == nil:
				done = append(done, try)
				ok = true
			case errors.Is(err, ErrPortInUse):
				continue
			default:
				return fmt.Errorf("publish ports: %w", err)
			}
		}
		if !ok {
			return fmt.Errorf("service %s: no free host port left in the range %s: %w", svc.Name, p, ErrPortInUse)
		}
	}
	return nil
}

func hostsFile(hostname string, svc spec.Service, eps []Endpoint) string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	for _, h := range svc.ExtraHosts {
		host, ip, ok := strings.Cut(h, ":")
		if !ok {
			continue
		}
		// IPv6 addresses contain colons: the host is before the first one.
		fmt.Fprintf(&b, "%s\t%s\n", ip, host)
	}
	full := hostname
	if svc.Domainname != "" {
		full = hostname + "." + svc.Domainname + " " + hostname
	}
	if len(eps) > 0 && eps[0].IP != "" {
		fmt.Fprintf(&b, "%s\t%s\n", eps[0].IP, full)
	} else {
		fmt.Fprintf(&b, "127.0.1.1\t%s\n", full)
	}
	return b.String()
}

// resolvConf returns the container's resolv.conf, or "" to use the host's.
func resolvConf(svc spec.Service, eps []Endpoint) string {
	var servers []string
	servers = append(servers, svc.DNS...)
	if len(servers) == 0 {
		for _, ep := range eps {
			if ep.DNS != "" {
				servers = append(servers, ep.DNS)
				break
			}
		}
	}
	if len(servers) == 0 && len(svc.DNSSearch) == 0 && len(svc.DNSOpt) == 0 {
		return ""
	}
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(svc.DNSSearch) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(svc.DNSSearch, " "))
	}
	if len(svc.DNSOpt) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(svc.DNSOpt, " "))
	}
	return b.String()
}

// mergeEnv overlays the service's environment on the image's, keeping the image's order and
// appending new keys sorted.
func mergeEnv(image []string, service map[string]string) []string {
	out := make([]string, 0, len(image)+len(service))
	used := map[string]bool{}
	for _, kv := range image {
		k, _, _ := strings.Cut(kv, "=")
		if v, ok := service[k]; ok {
			out = append(out, k+"="+v)
			used[k] = true
			continue
		}
		out = append(out, kv)
	}
	keys := make([]string, 0, len(service))
	for k := range service {
		if !used[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		out = append(out, k+"="+service[k])
	}
	hasPath := false
	for _, kv := range out {
		if strings.HasPrefix(kv, "PATH=") {
			hasPath = true
		}
	}
	if !hasPath {
		out = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, out...)
	}
	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// mounts resolves a service's volumes (and the image's VOLUMEs) into host mounts.
// Anonymous volumes it makes get an undo on undo.
func (x *exec) mounts(ctx context.Context, svc spec.Service, img Image, undo *rollback) ([]Mount, []string, error) {
	c := &x.e.cfg
	var out []Mount
	var anon []string
	targets := map[string]bool{}
	ensure := func(name string, labels map[string]string) (string, error) {
		if c.Volumes == nil {
			return "", fmt.Errorf("volumes: %w", ErrUnsupported)
		}
		if labels["io.berth.anonymous"] == "true" {
			undo.push("anonymous volume "+name, func(ctx context.Context) error {
				return ignoreNotFound(c.Volumes.Remove(ctx, name))
			})
		}
		return c.Volumes.Ensure(ctx, name, labels)
	}
	for _, m := range svc.Volumes {
		targets[m.Target] = true
		switch m.Type {
		case spec.MountBind:
			opts := []string{}
			if m.Propagation != "" {
				opts = append(opts, m.Propagation)
			}
			out = append(out, Mount{Type: "bind", Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly, Options: opts})
		case spec.MountTmpfs:
			var opts []string
			if m.TmpfsSize > 0 {
				opts = append(opts, "size="+strconv.FormatInt(m.TmpfsSize, 10))
			}
			if m.TmpfsMode != 0 {
				opts = append(opts, "mode="+strconv.FormatUint(uint64(m.TmpfsMode), 8))
			}
			out = append(out, Mount{Type: "tmpfs", Source: "tmpfs", Target: m.Target, ReadOnly: m.ReadOnly, Options: opts})
		default:
			var name string
			labels := map[string]string{planner.LabelProject: x.p.Name}
			if m.Source == "" {
				name = NewID()
				labels["io.berth.anonymous"] = "true"
				anon = append(anon, name)
			} else if v, ok := x.p.Volumes[m.Source]; ok {
				name = v.Name
				labels[planner.LabelVolume] = m.Source
			} else {
				name = m.Source
			}
			path, err := ensure(name, labels)
			if err != nil {
				return nil, nil, fmt.Errorf("volume %s: %w", name, err)
			}
			if m.Subpath != "" {
				path = path + "/" + m.Subpath
			}
			var opts []string
			if m.NoCopy {
				opts = append(opts, "nocopy")
			}
			out = append(out, Mount{Type: "volume", Source: path, Target: m.Target, ReadOnly: m.ReadOnly, Options: opts})
		}
	}
	for _, t := range svc.Tmpfs {
		target, opt, _ := strings.Cut(t, ":")
		if targets[target] {
			continue
		}
		targets[target] = true
		var opts []string
		if opt != "" {
			opts = strings.Split(opt, ",")
		}
		out = append(out, Mount{Type: "tmpfs", Source: "tmpfs", Target: target, Options: opts})
	}
	for _, t := range img.Volumes {
		if targets[t] {
			continue
		}
		targets[t] = true
		name := NewID()
		path, err := ensure(name, map[string]string{planner.LabelProject: x.p.Name, "io.berth.anonymous": "true"})
		if err != nil {
			return nil, nil, fmt.Errorf("image volume %s: %w", t, err)
		}
		anon = append(anon, name)
		out = append(out, Mount{Type: "volume", Source: path, Target: t})
	}
	return out, anon, nil
}

func (x *exec) removeContainer(ctx context.Context, id string) error {
	return x.removeContainerVolumes(ctx, id, false)
}

// removeContainerVolumes removes a container; with volumes, its anonymous volumes too.
func (x *exec) removeContainerVolumes(ctx context.Context, id string, volumes bool) error {
	c := &x.e.cfg
	var networks []string
	info, err := c.Runtime.Inspect(ctx, id)
	switch {
	case err == nil:
		if s := info.Labels[LabelNetworks]; s != "" {
			networks = strings.Split(s, ",")
		}
	case errors.Is(err, ErrNotFound):
	default:
		return fmt.Errorf("inspect %s: %w", id, err)
	}
	t0 := time.Now()
	if err := c.Runtime.Remove(ctx, id, true); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("remove container: %w", err)
	}
	t1 := time.Now()
	if c.Sandboxes != nil {
		if err := c.Sandboxes.Remove(ctx, id, networks); err != nil {
			return fmt.Errorf("remove network namespace: %w", err)
		}
	}
	t2 := time.Now()
	if c.Layers != nil {
		if err := c.Layers.Unmount(ctx, id); err != nil {
			return fmt.Errorf("unmount rootfs: %w", err)
		}
		if err := c.Layers.Remove(ctx, id); err != nil {
			return fmt.Errorf("remove writable layer: %w", err)
		}
	}
	x.e.log.Debug("removed container", "id", id[:min(12, len(id))], "runtime", t1.Sub(t0), "sandbox", t2.Sub(t1), "rootfs", time.Since(t2))
	if volumes && c.Volumes != nil && info.Labels[LabelAnonVolumes] != "" {
		for _, v := range strings.Split(info.Labels[LabelAnonVolumes], ",") {
			if err := c.Volumes.Remove(ctx, v); err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("remove anonymous volume %s: %w", v, err)
			}
		}
	}
	return nil
}
