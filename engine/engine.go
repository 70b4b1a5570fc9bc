// Package engine runs Compose projects: it observes what exists on the machine, asks the
// planner for a plan, and executes the plan's DAG with bounded parallelism, reporting progress.
//
// The engine never touches storage, runtime or network code directly: it consumes the small
// interfaces in deps.go, which cmd/berth implements with adapters over the concrete packages.
package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

// Errors.
var (
	// ErrNotFound classes a missing image, container, network or volume.
	ErrNotFound = errors.New("not found")
	// ErrUnsupported classes a feature the configured parts cannot do.
	ErrUnsupported = errors.New("unsupported")
	// ErrActionFailed classes a failed plan action; see *ActionError.
	ErrActionFailed = errors.New("action failed")
	// ErrNoSuchService is returned when a command names a service the project does not have.
	ErrNoSuchService = errors.New("no such service")
	// ErrTimeout is returned when waiting for a condition takes too long.
	ErrTimeout = errors.New("timed out")
	// ErrPortInUse classes a host port that another container or a listener holds.
	ErrPortInUse = errors.New("port is already allocated")
)

// Labels berth adds next to Compose's.
const (
	// LabelNetworks lists the networks a container is attached to (comma-separated actual names).
	LabelNetworks = "io.berth.networks"
	// LabelImageRef is the image reference the container was created from.
	LabelImageRef = "io.berth.image.ref"
	// LabelAnonVolumes lists the container's anonymous volumes (comma-separated names).
	LabelAnonVolumes = "io.berth.anonymous-volumes"
	// LabelFieldHashes holds planner.FieldHashes of the service at creation, as JSON.
	LabelFieldHashes = "io.berth.field-hashes"
)

// Config wires the engine's parts. Any part may be nil when the command does not need it;
// Empty observers (nil Lister, Networks, Volumes) see nothing, which is what --dry-run on a
// machine without berth state wants.
type Config struct {
	Images    Images
	Builder   Builder
	Layers    Layers
	Runtime   Runtime
	Lister    Lister
	Signaler  Signaler
	Logs      Logs
	Networks  Networks
	Sandboxes Sandboxes
	Volumes   Volumes
	// RunRoot holds the project locks; "" disables locking.
	RunRoot string
	Logger  *slog.Logger
	// Parallel bounds concurrent actions; <= 0 means unlimited.
	Parallel int
	// Who describes this process in lock files, e.g. "berth up -d".
	Who string
	// LogTail is how many log lines a failure report carries (default 10).
	LogTail int
	// PollInterval is how often waits poll container state (default 100ms). When the
	// Runtime is a StateWatcher, waits wake on its notifications instead and re-check only
	// every RecheckInterval (default 1s), to notice monitors that died without a word.
	PollInterval    time.Duration
	RecheckInterval time.Duration
	// Now returns the time (default time.Now).
	Now func() time.Time
}

// Engine observes, plans and executes. It is safe for one operation at a time.
type Engine struct {
	cfg Config
	log *slog.Logger
}

// New returns an engine over cfg.
func New(cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(discard{}, nil))
	}
	if cfg.LogTail == 0 {
		cfg.LogTail = 10
	}
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.RecheckInterval == 0 {
		cfg.RecheckInterval = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Who == "" {
		cfg.Who = "berth"
	}
	return &Engine{cfg: cfg, log: cfg.Logger}, nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Lock takes the project lock. waiting is called with the holder's description when another
// process holds it; Lock then blocks until it is free or ctx ends.
func (e *Engine) Lock(ctx context.Context, project string, waiting func(holder string)) (unlock func(), err error) {
	if e.cfg.RunRoot == "" {
		return func() {}, nil
	}
	return lockProject(ctx, e.cfg.RunRoot, project, e.cfg.Who, waiting)
}

// Containers lists the project's containers (one-off ones included), sorted by service and
// number.
func (e *Engine) Containers(ctx context.Context, project string) ([]ContainerInfo, error) {
	if e.cfg.Lister == nil {
		return nil, nil
	}
	all, err := e.cfg.Lister.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []ContainerInfo
	for _, c := range all {
		if c.Labels[planner.LabelProject] == project {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		si, sj := out[i].Labels[planner.LabelService], out[j].Labels[planner.LabelService]
		if si != sj {
			return si < sj
		}
		ni, nj := containerNumber(out[i]), containerNumber(out[j])
		if ni != nj {
			return ni < nj
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func containerNumber(c ContainerInfo) int {
	n, _ := strconv.Atoi(c.Labels[planner.LabelNumber])
	return n
}

// Observe collects what exists for project p: its containers, networks, volumes and the
// images its services name.
func (e *Engine) Observe(ctx context.Context, p *spec.Project) (planner.Observed, error) {
	start := time.Now()
	obs := planner.Observed{Images: map[string]string{}}
	cs, err := e.Containers(ctx, p.Name)
	if err != nil {
		return obs, err
	}
	for _, c := range cs {
		obs.Containers = append(obs.Containers, toObserved(c))
	}
	if e.cfg.Networks != nil {
		nets, err := e.cfg.Networks.List(ctx)
		if err != nil {
			return obs, fmt.Errorf("list networks: %w", err)
		}
		want := map[string]bool{}
		for _, n := range p.Networks {
			want[n.Name] = true
		}
		for _, n := range nets {
			if want[n.Name] || n.Labels[planner.LabelProject] == p.Name {
				obs.Networks = append(obs.Networks, planner.Network{Name: n.Name, Hash: n.Labels[labelNetworkHash]})
			}
		}
	}
	if e.cfg.Volumes != nil {
		vols, err := e.cfg.Volumes.List(ctx)
		if err != nil {
			return obs, fmt.Errorf("list volumes: %w", err)
		}
		want := map[string]bool{}
		for _, v := range p.Volumes {
			want[v.Name] = true
		}
		for _, v := range vols {
			if want[v.Name] || v.Labels[planner.LabelProject] == p.Name {
				obs.Volumes = append(obs.Volumes, planner.Volume{Name: v.Name})
			}
		}
	}
	e.log.Debug("observe: containers, networks, volumes", "took", time.Since(start))
	if e.cfg.Images != nil {
		seen := map[string]bool{}
		for _, s := range p.Services {
			ref := s.ImageName(p.Name)
			if seen[ref] {
				continue
			}
			seen[ref] = true
			img, err := e.cfg.Images.Resolve(ctx, ref)
			if err != nil {
				if errors.Is(err, ErrNotFound) {
					continue
				}
				return obs, fmt.Errorf("resolve image %s: %w", ref, err)
			}
			obs.Images[ref] = img.ID
		}
	}
	e.log.Debug("observe: done", "took", time.Since(start), "containers", len(obs.Containers))
	return obs, nil
}

const labelNetworkHash = "io.berth.network.hash"

func toObserved(c ContainerInfo) planner.Container {
	var fh map[string]string
	if s := c.Labels[LabelFieldHashes]; s != "" {
		_ = json.Unmarshal([]byte(s), &fh)
	}
	return planner.Container{
		FieldHashes: fh,
		ID:          c.ID,
		Name:        c.Name,
		Service:     c.Labels[planner.LabelService],
		Number:      containerNumber(c),
		OneOff:      c.Labels[planner.LabelOneOff] == "True",
		ConfigHash:  c.Labels[planner.LabelConfigHash],
		ImageID:     c.Labels[planner.LabelImage],
		State:       c.State,
		ExitCode:    c.ExitCode,
		Health:      c.Health,
	}
}

// UpOptions are `berth up`'s options for the engine.
type UpOptions struct {
	planner.Options
	// Timeout is the stop grace for recreated containers (-t); nil uses the service's.
	Timeout *time.Duration
	// WaitTimeout bounds WaitContainer actions (0: no bound beyond ctx).
	WaitTimeout time.Duration
}

// Plan observes and plans `up` without doing anything.
func (e *Engine) Plan(ctx context.Context, p *spec.Project, opt UpOptions) (*planner.Plan, error) {
	have, err := e.Observe(ctx, p)
	if err != nil {
		return nil, err
	}
	plan, err := reconcile(p, have, opt.Options)
	if err != nil {
		return nil, err
	}
	return plan, nil
}

// Up converges the project: observe, plan, execute. It takes the project lock.
func (e *Engine) Up(ctx context.Context, p *spec.Project, opt UpOptions, prog Progress) (*planner.Plan, error) {
	if prog == nil {
		prog = NopProgress{}
	}
	prog.Start("up")
	plan, err := e.up(ctx, p, opt, prog)
	prog.Done(err)
	return plan, err
}

func (e *Engine) up(ctx context.Context, p *spec.Project, opt UpOptions, prog Progress) (*planner.Plan, error) {
	unlock, err := e.lockProject(ctx, p.Name, prog)
	if err != nil {
		return nil, err
	}
	defer unlock()
	t0 := time.Now()
	e.sweep(ctx, p, prog)
	have, err := e.Observe(ctx, p)
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	plan, err := reconcile(p, have, opt.Options)
	if err != nil {
		return nil, err
	}
	e.log.Debug("up: observed and planned", "observe", t1.Sub(t0), "plan", time.Since(t1), "actions", len(plan.Nodes))
	e.notes(p, plan, prog)
	if err := e.checkPorts(ctx, p, plan); err != nil {
		return plan, err
	}
	x := e.newExec(p, have, prog)
	x.grace = opt.Timeout
	x.waitTimeout = opt.WaitTimeout
	err = x.run(ctx, plan)
	e.log.Debug("up: executed", "took", time.Since(t1))
	return plan, err
}

// DownOptions are `berth down`'s options for the engine.
type DownOptions struct {
	planner.DownOptions
	Timeout *time.Duration
	// WithoutProject: no compose file is at hand (`down -p NAME`); everything labelled with
	// the project's name is removed.
	WithoutProject bool
}

func (o DownOptions) want(p *spec.Project) *spec.Project {
	if o.WithoutProject {
		return nil
	}
	return p
}

// PlanDown observes and plans `down` without doing anything.
func (e *Engine) PlanDown(ctx context.Context, p *spec.Project, opt DownOptions) (*planner.Plan, error) {
	have, err := e.Observe(ctx, p)
	if err != nil {
		return nil, err
	}
	return planDown(opt.want(p), have, opt.DownOptions)
}

// lockProject takes the project lock, telling the user through prog whom it waits for.
func (e *Engine) lockProject(ctx context.Context, project string, prog Progress) (unlock func(), err error) {
	return e.Lock(ctx, project, func(holder string) {
		prog.Event(Event{Time: e.cfg.Now(), Resource: "project:" + project, Name: project, Status: StatusWarning,
			Text: "waiting for the project lock held by " + holder})
	})
}

// Down stops and removes the project's containers and networks (and volumes, images).
func (e *Engine) Down(ctx context.Context, p *spec.Project, opt DownOptions, prog Progress) (*planner.Plan, error) {
	if prog == nil {
		prog = NopProgress{}
	}
	prog.Start("down")
	plan, err := e.down(ctx, p, opt, prog)
	prog.Done(err)
	return plan, err
}

func (e *Engine) down(ctx context.Context, p *spec.Project, opt DownOptions, prog Progress) (*planner.Plan, error) {
	unlock, err := e.lockProject(ctx, p.Name, prog)
	if err != nil {
		return nil, err
	}
	defer unlock()
	e.sweep(ctx, p, prog)
	have, err := e.Observe(ctx, p)
	if err != nil {
		return nil, err
	}
	plan, err := planDown(opt.want(p), have, opt.DownOptions)
	if err != nil {
		return nil, err
	}
	e.notes(p, plan, prog)
	x := e.newExec(p, have, prog)
	x.grace = opt.Timeout
	if err := x.run(ctx, plan); err != nil {
		return plan, err
	}
	// What the removals could not reach (endpoints of sandboxes gone meanwhile...).
	e.sweep(ctx, p, prog)
	return plan, nil
}

// sweep runs Sweep, reporting a failure as a warning: what it could not remove is retried by
// the next up or down, and must not keep this one from running.
func (e *Engine) sweep(ctx context.Context, p *spec.Project, prog Progress) {
	if err := e.Sweep(ctx, p.Name); err != nil {
		e.log.Warn("sweep", "project", p.Name, "err", err)
		prog.Event(Event{Time: e.cfg.Now(), Resource: "project:" + p.Name, Name: p.Name, Status: StatusWarning, Text: err.Error()})
	}
}

// checkPorts fails before anything starts when a new container would publish a fixed host
// port that is taken (recreated containers are not checked: their old self holds the port).
func (e *Engine) checkPorts(ctx context.Context, p *spec.Project, plan *planner.Plan) error {
	pc, ok := e.cfg.Sandboxes.(PortChecker)
	if !ok {
		return nil
	}
	var ports []PortMapping
	for _, n := range plan.Nodes {
		cc, ok := n.Action.(planner.CreateContainer)
		if !ok {
			continue
		}
		if s, ok := p.Service(cc.Service); ok && s.NetworkMode != "host" {
			ports = append(ports, fixedPorts(s.Ports)...)
		}
	}
	if len(ports) == 0 {
		return nil
	}
	if err := pc.CheckPorts(ctx, ports); err != nil {
		return fmt.Errorf("published ports: %w", err)
	}
	return nil
}

// notes reports the plan's notes (orphans left in place, changed networks) as warnings.
func (e *Engine) notes(p *spec.Project, plan *planner.Plan, prog Progress) {
	for _, n := range plan.Notes {
		prog.Event(Event{Time: e.cfg.Now(), Resource: "project:" + p.Name, Name: p.Name, Status: StatusWarning, Text: n})
	}
}

// Execute runs an existing plan for p against observed state have.
func (e *Engine) Execute(ctx context.Context, p *spec.Project, have planner.Observed, plan *planner.Plan, prog Progress) error {
	if prog == nil {
		prog = NopProgress{}
	}
	return e.newExec(p, have, prog).run(ctx, plan)
}

// ActionError reports a failed action, with the failing service's last log lines.
type ActionError struct {
	Resource string
	Kind     string
	Service  string
	Err      error
	LogTail  []LogLine
}

func (e *ActionError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %v", e.Kind, e.Resource, e.Err)
	if len(e.LogTail) > 0 {
		fmt.Fprintf(&b, "\nlast log lines of %s:", e.Service)
		for _, l := range e.LogTail {
			b.WriteString("\n  ")
			b.WriteString(l.Text)
		}
	}
	return b.String()
}

func (e *ActionError) Unwrap() []error { return []error{ErrActionFailed, e.Err} }
