package engine

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/berth-dev/berth/planner"
)

var (
	_ Images    = (*fakeImages)(nil)
	_ Layers    = (*fakeLayers)(nil)
	_ Runtime   = (*fakeRuntime)(nil)
	_ Lister    = (*fakeRuntime)(nil)
	_ Logs      = (*fakeRuntime)(nil)
	_ Networks  = (*fakeNetworks)(nil)
	_ Sandboxes = (*fakeSandboxes)(nil)
	_ Volumes   = (*fakeVolumes)(nil)
)

// world is a shared call log for every fake, so tests can check ordering across parts.
type world struct {
	mu    sync.Mutex
	calls []string
}

func (w *world) log(format string, args ...any) {
	w.mu.Lock()
	w.calls = append(w.calls, fmt.Sprintf(format, args...))
	w.mu.Unlock()
}

func (w *world) Calls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.calls...)
}

type fakeImages struct {
	w      *world
	mu     sync.Mutex
	images map[string]Image
}

func (f *fakeImages) Resolve(_ context.Context, ref string) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, ok := f.images[ref]
	if !ok {
		return Image{}, fmt.Errorf("image %s: %w", ref, ErrNotFound)
	}
	return img, nil
}

func (f *fakeImages) Pull(_ context.Context, ref string) error {
	f.w.log("pull %s", ref)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[ref] = Image{ID: "sha256:" + ref, Cmd: []string{"sh"}}
	return nil
}

func (f *fakeImages) Remove(_ context.Context, ref string) error {
	f.w.log("rmi %s", ref)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.images, ref)
	return nil
}

type fakeLayers struct{ w *world }

func (f *fakeLayers) Mount(_ context.Context, id, image string) (string, error) {
	f.w.log("mount %s %s", short(id), image)
	return "/rootfs/" + id, nil
}
func (f *fakeLayers) Unmount(_ context.Context, id string) error {
	f.w.log("unmount %s", short(id))
	return nil
}
func (f *fakeLayers) Remove(_ context.Context, id string) error {
	f.w.log("rmlayer %s", short(id))
	return nil
}

func short(id string) string {
	if len(id) > 6 {
		return id[:6]
	}
	return id
}

type fakeContainer struct {
	cfg   ContainerConfig
	state string
	exit  int
	logs  []LogLine
}

type fakeRuntime struct {
	w  *world
	mu sync.Mutex
	cs map[string]*fakeContainer
	// failStart makes Start of containers with this name fail.
	failStart map[string]error
	// onStart, when set, decides the state a container enters when started (default running).
	onStart func(c *fakeContainer)
	// startDelay makes Start take this long, to observe parallelism.
	startDelay time.Duration
	running    int
	maxRunning int
}

func newFakeRuntime(w *world) *fakeRuntime {
	return &fakeRuntime{w: w, cs: map[string]*fakeContainer{}, failStart: map[string]error{}}
}

func (f *fakeRuntime) Create(_ context.Context, c ContainerConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range f.cs {
		if o.cfg.Name == c.Name {
			return fmt.Errorf("name %s in use", c.Name)
		}
	}
	f.cs[c.ID] = &fakeContainer{cfg: c, state: planner.StateCreated}
	f.w.log("create %s", c.Name)
	return nil
}

func (f *fakeRuntime) Start(_ context.Context, id string) error {
	f.mu.Lock()
	c, ok := f.cs[id]
	if !ok {
		f.mu.Unlock()
		return ErrNotFound
	}
	name := c.cfg.Name
	f.running++
	if f.running > f.maxRunning {
		f.maxRunning = f.running
	}
	err := f.failStart[name]
	f.mu.Unlock()
	f.w.log("start %s", name)
	time.Sleep(f.startDelay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.running--
	if err != nil {
		c.state = planner.StateExited
		c.exit = 1
		return err
	}
	c.state = planner.StateRunning
	if f.onStart != nil {
		f.onStart(c)
	}
	f.w.log("started %s", name)
	return nil
}

func (f *fakeRuntime) Stop(_ context.Context, id string, grace time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cs[id]
	if !ok {
		return ErrNotFound
	}
	c.state = planner.StateExited
	f.w.log("stop %s %s", c.cfg.Name, grace)
	return nil
}

func (f *fakeRuntime) Remove(_ context.Context, id string, force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cs[id]
	if !ok {
		return nil
	}
	delete(f.cs, id)
	f.w.log("rm %s", c.cfg.Name)
	return nil
}

func (f *fakeRuntime) Inspect(_ context.Context, id string) (ContainerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cs[id]
	if !ok {
		return ContainerInfo{}, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return f.info(c), nil
}

func (f *fakeRuntime) info(c *fakeContainer) ContainerInfo {
	health := ""
	if h, ok := c.cfg.Labels["test.health"]; ok {
		health = h
	}
	return ContainerInfo{ID: c.cfg.ID, Name: c.cfg.Name, Labels: c.cfg.Labels, State: c.state, ExitCode: c.exit, Health: health}
}

func (f *fakeRuntime) List(context.Context) ([]ContainerInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ContainerInfo
	for _, c := range f.cs {
		out = append(out, f.info(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeRuntime) Tail(_ context.Context, id string, n int) ([]LogLine, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cs[id]
	if !ok {
		return nil, ErrNotFound
	}
	l := c.logs
	if n >= 0 && len(l) > n {
		l = l[len(l)-n:]
	}
	return append([]LogLine(nil), l...), nil
}

func (f *fakeRuntime) Follow(ctx context.Context, id string, tail int, untilExit bool, fn func(LogLine)) error {
	lines, err := f.Tail(ctx, id, tail)
	for _, l := range lines {
		fn(l)
	}
	return err
}

func (f *fakeRuntime) byName(name string) *fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.cs {
		if c.cfg.Name == name {
			return c
		}
	}
	return nil
}

type fakeNetworks struct {
	w    *world
	mu   sync.Mutex
	nets map[string]NetworkInfo
}

func (f *fakeNetworks) Ensure(_ context.Context, n NetworkConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nets[n.Name] = NetworkInfo{Name: n.Name, Labels: n.Labels}
	f.w.log("netcreate %s", n.Name)
	return nil
}

func (f *fakeNetworks) Remove(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nets, name)
	f.w.log("netrm %s", name)
	return nil
}

func (f *fakeNetworks) List(context.Context) ([]NetworkInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []NetworkInfo
	for _, n := range f.nets {
		out = append(out, n)
	}
	return out, nil
}

type fakeSandboxes struct {
	w       *world
	mu      sync.Mutex
	next    int
	aliases map[string][]string          // network -> aliases attached
	links   map[string]map[string]string // container name -> link aliases
}

func (f *fakeSandboxes) Create(_ context.Context, id string) (string, error) {
	f.w.log("sandbox %s", short(id))
	return "/run/netns/" + id, nil
}

func (f *fakeSandboxes) Attach(_ context.Context, id string, ep EndpointConfig) (Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	if f.aliases == nil {
		f.aliases = map[string][]string{}
	}
	f.aliases[ep.Network] = append(f.aliases[ep.Network], ep.Aliases...)
	if f.links == nil {
		f.links = map[string]map[string]string{}
	}
	f.links[ep.ContainerName] = ep.Links
	f.w.log("attach %s %s %v", ep.ContainerName, ep.Network, ep.Aliases)
	return Endpoint{Network: ep.Network, IP: fmt.Sprintf("10.210.0.%d", f.next+1), Gateway: "10.210.0.1", DNS: "10.210.0.1"}, nil
}

func (f *fakeSandboxes) Publish(_ context.Context, id string, ports []PortMapping) ([]PortMapping, error) {
	f.w.log("publish %s %v", short(id), ports)
	return ports, nil
}

func (f *fakeSandboxes) Remove(_ context.Context, id string, networks []string) error {
	f.w.log("unsandbox %s %v", short(id), networks)
	return nil
}

type fakeVolumes struct {
	w    *world
	mu   sync.Mutex
	vols map[string]VolumeInfo
}

func (f *fakeVolumes) Ensure(_ context.Context, name string, labels map[string]string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.vols[name]; !ok {
		f.w.log("volcreate %s", name)
	}
	f.vols[name] = VolumeInfo{Name: name, Labels: labels}
	return "/volumes/" + name, nil
}

func (f *fakeVolumes) Remove(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.vols, name)
	f.w.log("volrm %s", name)
	return nil
}

func (f *fakeVolumes) List(context.Context) ([]VolumeInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []VolumeInfo
	for _, v := range f.vols {
		out = append(out, v)
	}
	return out, nil
}

// fakes is a complete set of parts over one world.
type fakes struct {
	w   *world
	img *fakeImages
	rt  *fakeRuntime
	net *fakeNetworks
	sb  *fakeSandboxes
	vol *fakeVolumes
}

func newFakes() *fakes {
	w := &world{}
	return &fakes{
		w:   w,
		img: &fakeImages{w: w, images: map[string]Image{"busybox": {ID: "sha256:bb", Cmd: []string{"sh"}, Env: []string{"PATH=/bin", "A=image"}}}},
		rt:  newFakeRuntime(w),
		net: &fakeNetworks{w: w, nets: map[string]NetworkInfo{}},
		sb:  &fakeSandboxes{w: w},
		vol: &fakeVolumes{w: w, vols: map[string]VolumeInfo{}},
	}
}

func (f *fakes) config() Config {
	return Config{
		Images: f.img, Layers: &fakeLayers{w: f.w}, Runtime: f.rt, Lister: f.rt, Logs: f.rt,
		Networks: f.net, Sandboxes: f.sb, Volumes: f.vol, PollInterval: time.Millisecond,
	}
}
