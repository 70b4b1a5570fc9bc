package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

var (
	_ Sandboxes      = (*stateSandboxes)(nil)
	_ SandboxSweeper = (*stateSandboxes)(nil)
	_ Layers         = (*stateLayers)(nil)
	_ LayerLister    = (*stateLayers)(nil)
)

// stateSandboxes is a Sandboxes fake that keeps what exists: sandboxes, endpoints (the DNS
// records) and published ports, with Publish failing on a taken host port as netns does.
type stateSandboxes struct {
	mu        sync.Mutex
	now       func() time.Time
	sandboxes map[string]time.Time
	endpoints map[string][]string      // container -> networks
	ports     map[string][]PortMapping // container -> published
	external  []PortMapping            // host ports held by something else
	next      int
	// afterPublish, when set, runs after each successful Publish (to interleave replicas).
	afterPublish func()
}

func newStateSandboxes() *stateSandboxes {
	return &stateSandboxes{now: time.Now, sandboxes: map[string]time.Time{}, endpoints: map[string][]string{}, ports: map[string][]PortMapping{}}
}

func (f *stateSandboxes) Create(ctx context.Context, id string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sandboxes[id] = f.now()
	return "/run/netns/" + id, nil
}

func (f *stateSandboxes) Attach(_ context.Context, id string, ep EndpointConfig) (Endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.sandboxes[id]; !ok {
		return Endpoint{}, fmt.Errorf("attach %s: %w", id, ErrNotFound)
	}
	f.next++
	f.endpoints[id] = append(f.endpoints[id], ep.Network)
	return Endpoint{Network: ep.Network, IP: fmt.Sprintf("10.210.0.%d", f.next+1), Gateway: "10.210.0.1", DNS: "10.210.0.1"}, nil
}

func (f *stateSandboxes) Publish(_ context.Context, id string, ports []PortMapping) ([]PortMapping, error) {
	f.mu.Lock()
	for _, p := range ports {
		taken := append([]PortMapping(nil), f.external...)
		for o, ps := range f.ports {
			if o != id {
				taken = append(taken, ps...)
			}
		}
		for _, q := range taken {
			if q.HostPort == p.HostPort && q.Protocol == p.Protocol && q.HostIP == p.HostIP {
				f.mu.Unlock()
				return nil, fmt.Errorf("port %d/%s is already published: %w", p.HostPort, p.Protocol, ErrPortInUse)
			}
		}
	}
	f.ports[id] = append([]PortMapping(nil), ports...)
	hook := f.afterPublish
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	return ports, nil
}

func (f *stateSandboxes) Remove(ctx context.Context, id string, networks []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ports, id)
	delete(f.endpoints, id)
	delete(f.sandboxes, id)
	return nil
}

func (f *stateSandboxes) List(context.Context) ([]Leftover, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Leftover
	for id, t := range f.sandboxes {
		out = append(out, Leftover{ID: id, Created: t})
	}
	return out, nil
}

// Recover drops endpoints of containers without a sandbox.
func (f *stateSandboxes) Recover(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.endpoints {
		if _, ok := f.sandboxes[id]; !ok {
			delete(f.endpoints, id)
		}
	}
	return nil
}

func (f *stateSandboxes) state() (sandboxes, endpoints int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sandboxes), len(f.endpoints)
}

// portOf returns the host ports published for a container.
func (f *stateSandboxes) portsOf(id string) []uint16 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []uint16
	for _, p := range f.ports[id] {
		out = append(out, p.HostPort)
	}
	return out
}

// stateLayers is a Layers fake that keeps the mounted writable layers.
type stateLayers struct {
	mu     sync.Mutex
	now    func() time.Time
	layers map[string]time.Time
}

func newStateLayers() *stateLayers {
	return &stateLayers{now: time.Now, layers: map[string]time.Time{}}
}

func (f *stateLayers) Mount(_ context.Context, id, image string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.layers[id] = f.now()
	return "/rootfs/" + id, nil
}

func (f *stateLayers) Unmount(ctx context.Context, id string) error { return ctx.Err() }

func (f *stateLayers) Remove(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.layers, id)
	return nil
}

func (f *stateLayers) List(context.Context) ([]Leftover, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Leftover
	for id, t := range f.layers {
		out = append(out, Leftover{ID: id, Created: t})
	}
	return out, nil
}

func (f *stateLayers) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.layers)
}

// convergeFakes are the fakes with stateful sandboxes and layers, and a run root.
type convergeFakes struct {
	*fakes
	sbs    *stateSandboxes
	layers *stateLayers
	cfg    Config
}

func newConvergeFakes(t *testing.T) *convergeFakes {
	f := &convergeFakes{fakes: newFakes(), sbs: newStateSandboxes(), layers: newStateLayers()}
	f.cfg = f.config()
	f.cfg.Sandboxes = f.sbs
	f.cfg.Layers = f.layers
	f.cfg.RunRoot = t.TempDir()
	return f
}

// webProject has one service, web, publishing ports.
func webProject(ports ...string) *spec.Project {
	p := &spec.Project{
		Name:     "proj",
		Networks: map[string]spec.Network{"default": {Name: "proj_default"}},
		Volumes:  map[string]spec.Volume{},
		Services: []spec.Service{{Name: "web", Image: "busybox", Scale: 1, Command: []string{"httpd"},
			Networks: map[string]spec.ServiceNetwork{"default": {}}}},
	}
	for _, s := range ports {
		p.Services[0].Ports = append(p.Services[0].Ports, spec.Port{HostIP: "127.0.0.1", Published: s, Target: 8080, Protocol: "tcp"})
	}
	return p
}

func scale(n int) UpOptions {
	return UpOptions{Options: planner.Options{Scale: map[string]int{"web": n}}}
}

func journalEntries(t *testing.T, runRoot string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(filepath.Join(runRoot, "creating"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, filepath.Base(path))
		}
		return nil
	})
	return out
}

// A create that fails halfway (replicas 2 and 3 cannot have the fixed host port) leaves no
// sandbox, endpoint, layer or journal entry behind, and down then succeeds.
func TestCreateFailureRollsBack(t *testing.T) {
	f := newConvergeFakes(t)
	e, _ := New(f.cfg)
	ctx := context.Background()
	p := webProject("8080")
	_, err := e.Up(ctx, p, scale(3), nil)
	if !errors.Is(err, ErrPortInUse) {
		t.Fatalf("up --scale web=3 with a fixed port: %v, want ErrPortInUse", err)
	}
	cs, _ := e.Containers(ctx, "proj")
	sbs, eps := f.sbs.state()
	if len(cs) != 1 || sbs != 1 || eps != 1 || f.layers.count() != 1 {
		t.Errorf("after failed scale: %d containers, %d sandboxes, %d endpoints, %d layers; want 1 of each", len(cs), sbs, eps, f.layers.count())
	}
	if j := journalEntries(t, f.cfg.RunRoot); len(j) != 0 {
		t.Errorf("journal entries left: %v", j)
	}
	if _, err := e.Down(ctx, p, DownOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	if sbs, eps := f.sbs.state(); sbs+eps+f.layers.count() != 0 {
		t.Errorf("after down: %d sandboxes, %d endpoints, %d layers", sbs, eps, f.layers.count())
	}
}

// The rollback runs even when the failure is the context's cancellation (Ctrl-C), under a
// context of its own.
func TestCreateRollbackSurvivesCancel(t *testing.T) {
	f := newConvergeFakes(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.sbs.afterPublish = cancel
	e, _ := New(f.cfg)
	p := webProject("8080")
	x := e.newExec(p, planner.Observed{}, NopProgress{})
	// The runtime refuses to create under a cancelled context, as the real one does.
	f.cfg.Runtime = cancelledRuntime{f.rt}
	x.e.cfg.Runtime = f.cfg.Runtime
	if _, err := x.createContainer(ctx, p.Services[0], 1, "proj-web-1", "h"); !errors.Is(err, context.Canceled) {
		t.Fatalf("create: %v, want context.Canceled", err)
	}
	if sbs, eps := f.sbs.state(); sbs+eps+f.layers.count() != 0 {
		t.Errorf("after cancelled create: %d sandboxes, %d endpoints, %d layers", sbs, eps, f.layers.count())
	}
	if j := journalEntries(t, f.cfg.RunRoot); len(j) != 0 {
		t.Errorf("journal entries left: %v", j)
	}
}

type cancelledRuntime struct{ *fakeRuntime }

func (r cancelledRuntime) Create(ctx context.Context, c ContainerConfig) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return r.fakeRuntime.Create(ctx, c)
}

// Up and down sweep what interrupted creates left: at once for this project's journalled
// creates, after a grace period for resources no journal names; never a container the
// runtime knows or another project's create in progress.
func TestSweepLeftovers(t *testing.T) {
	f := newConvergeFakes(t)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	f.cfg.Now = func() time.Time { return now }
	e, _ := New(f.cfg)
	ctx := context.Background()
	p := webProject()
	if _, err := e.Up(ctx, p, UpOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	live := f.rt.byName("proj-web-1").cfg.ID
	f.sbs.sandboxes[live] = now.Add(-time.Hour)
	f.layers.layers[live] = now.Add(-time.Hour)

	journal := func(project, id string) {
		dir := filepath.Join(f.cfg.RunRoot, "creating", project)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, id), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	leave := func(id string, age time.Duration) {
		f.sbs.sandboxes[id] = now.Add(-age)
		f.sbs.endpoints[id] = []string{"proj_default"}
		f.layers.layers[id] = now.Add(-age)
	}
	interrupted := NewID() // this project's create, killed after attach
	journal("proj", interrupted)
	leave(interrupted, time.Second)
	other := NewID() // another project's create in progress
	journal("other", other)
	leave(other, time.Second)
	oldOrphan := NewID() // no journal, old: a berth from before the journal
	leave(oldOrphan, time.Hour)
	young := NewID() // no journal, young: maybe a `container run` in progress
	leave(young, time.Second)
	f.sbs.endpoints["gone"] = []string{"proj_default"}          // endpoint whose sandbox is gone
	f.layers.layers["build-0123456789ab"] = now.Add(-time.Hour) // a long RUN step of a build

	if _, err := e.Up(ctx, p, UpOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	var kept []string
	for id := range f.sbs.sandboxes {
		kept = append(kept, id)
	}
	sort.Strings(kept)
	want := []string{live, other, young}
	sort.Strings(want)
	if diff := cmp.Diff(want, kept); diff != "" {
		t.Errorf("sandboxes kept (-want +got):\n%s", diff)
	}
	for _, id := range []string{interrupted, oldOrphan} {
		if _, ok := f.layers.layers[id]; ok {
			t.Errorf("layer of %s kept", short(id))
		}
	}
	if _, ok := f.layers.layers["build-0123456789ab"]; !ok {
		t.Errorf("a build step's layer was swept")
	}
	if _, ok := f.sbs.endpoints["gone"]; ok {
		t.Errorf("endpoint without a sandbox kept")
	}
	if j := journalEntries(t, f.cfg.RunRoot); !cmp.Equal(j, []string{other}) {
		t.Errorf("journal = %v, want only the other project's entry", j)
	}
}

// A host port range gives each replica its own port, in replica order, and a range with no
// free port left is an error naming the service and the range.
func TestPortRangeReplicas(t *testing.T) {
	f := newConvergeFakes(t)
	e, _ := New(f.cfg)
	ctx := context.Background()
	p := webProject("8080-8082")
	if _, err := e.Up(ctx, p, scale(3), nil); err != nil {
		t.Fatal(err)
	}
	got := map[string][]uint16{}
	for _, n := range []string{"proj-web-1", "proj-web-2", "proj-web-3"} {
		got[n] = f.sbs.portsOf(f.rt.byName(n).cfg.ID)
	}
	want := map[string][]uint16{"proj-web-1": {8080}, "proj-web-2": {8081}, "proj-web-3": {8082}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ports by replica (-want +got):\n%s", diff)
	}
	_, err := e.Up(ctx, p, scale(4), nil)
	if !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), "service web") || !strings.Contains(err.Error(), "8080-8082") {
		t.Errorf("fourth replica: %v, want ErrPortInUse naming web and 8080-8082", err)
	}
	if cs, _ := e.Containers(ctx, "proj"); len(cs) != 3 {
		t.Errorf("containers after the failed fourth replica: %d", len(cs))
	}
}

// Ports another process holds are skipped: replicas take the free ones.
func TestPortRangeSkipsTaken(t *testing.T) {
	f := newConvergeFakes(t)
	f.sbs.external = []PortMapping{{HostIP: "127.0.0.1", HostPort: 8080, Protocol: "tcp"}}
	e, _ := New(f.cfg)
	ctx := context.Background()
	p := webProject("8080-8082")
	if _, err := e.Up(ctx, p, scale(2), nil); err != nil {
		t.Fatal(err)
	}
	var all []uint16
	for _, n := range []string{"proj-web-1", "proj-web-2"} {
		all = append(all, f.sbs.portsOf(f.rt.byName(n).cfg.ID)...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if !cmp.Equal(all, []uint16{8081, 8082}) {
		t.Errorf("ports = %v, want 8081 and 8082", all)
	}
}

// fakeBuilder "builds" by naming the image id as ref.
type fakeBuilder struct {
	img *fakeImages
	id  string
	n   int
}

func (b *fakeBuilder) Build(_ context.Context, project string, svc spec.Service, tag string) error {
	b.img.mu.Lock()
	defer b.img.mu.Unlock()
	b.n++
	b.img.images[tag] = Image{ID: b.id, Cmd: []string{"sh"}}
	return nil
}

// up --build recreates a service's containers only when the build made a different image
// (a cache hit gives the same image ID: the containers stay).
func TestUpBuildRecreatesOnlyIfImageChanged(t *testing.T) {
	f := newConvergeFakes(t)
	b := &fakeBuilder{img: f.img, id: "sha256:one"}
	f.cfg.Builder = b
	e, _ := New(f.cfg)
	ctx := context.Background()
	p := webProject()
	p.Services[0].Image = ""
	p.Services[0].Build = &spec.Build{Context: "."}
	build := scale(3)
	build.Build = true
	if _, err := e.Up(ctx, p, build, nil); err != nil {
		t.Fatal(err)
	}
	ids := func() map[string]string {
		out := map[string]string{}
		cs, _ := e.Containers(ctx, "proj")
		for _, c := range cs {
			out[c.Name] = c.ID
		}
		return out
	}
	first := ids()
	if len(first) != 3 {
		t.Fatalf("containers: %v", first)
	}
	prog := &RecordingProgress{}
	if _, err := e.Up(ctx, p, build, prog); err != nil {
		t.Fatal(err)
	}
	for _, ev := range prog.Snapshot() {
		if ev.Kind == (planner.RecreateContainer{}).Kind() && (ev.Text == "Recreating" || ev.Text == "Recreated") {
			t.Errorf("progress says %q for %s although the image did not change", ev.Text, ev.Name)
		}
	}
	if b.n != 2 {
		t.Errorf("builds = %d, want 2", b.n)
	}
	if again := ids(); !cmp.Equal(first, again) {
		t.Errorf("cache-hit build recreated: %v -> %v", first, again)
	}
	b.id = "sha256:two"
	if _, err := e.Up(ctx, p, build, nil); err != nil {
		t.Fatal(err)
	}
	for name, id := range ids() {
		if first[name] == id {
			t.Errorf("%s kept after its image changed", name)
		}
		if c := f.rt.byName(name); c == nil || c.cfg.Labels[planner.LabelImage] != "sha256:two" {
			t.Errorf("%s does not run the new image", name)
		}
	}
}
