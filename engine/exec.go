package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

// exec runs one plan. Its maps track the containers the plan touches.
type exec struct {
	e           *Engine
	p           *spec.Project
	prog        Progress
	grace       *time.Duration
	waitTimeout time.Duration

	mu        sync.Mutex
	byName    map[string]string   // container name -> ID
	byService map[string][]string // service -> IDs of its (non one-off) containers
	state     map[string]string   // observed state by ID
	imageOf   map[string]string   // observed image ID by container ID
	starts    map[string]bool     // resources with a StartContainer node
}

func (e *Engine) newExec(p *spec.Project, have planner.Observed, prog Progress) *exec {
	x := &exec{
		e: e, p: p, prog: prog,
		byName:    map[string]string{},
		byService: map[string][]string{},
		state:     map[string]string{},
		imageOf:   map[string]string{},
		starts:    map[string]bool{},
	}
	for _, c := range have.Containers {
		x.byName[c.Name] = c.ID
		x.state[c.ID] = c.State
		x.imageOf[c.ID] = c.ImageID
		if !c.OneOff {
			x.byService[c.Service] = append(x.byService[c.Service], c.ID)
		}
	}
	return x
}

type nodeResult struct {
	idx int
	err error
}

// run executes the plan's DAG: every node starts as soon as all its dependencies are done,
// with at most Config.Parallel nodes at once. After a failure no new node starts; the
// running ones finish, and the errors are returned joined.
func (x *exec) run(ctx context.Context, plan *planner.Plan) error {
	if plan == nil || len(plan.Nodes) == 0 {
		return nil
	}
	nodes := plan.Nodes
	pos := make(map[int]int, len(nodes))
	for i, n := range nodes {
		pos[n.ID] = i
		if s, ok := n.Action.(planner.StartContainer); ok {
			x.starts[s.Resource()] = true
		}
	}
	indeg := make([]int, len(nodes))
	dependents := make([][]int, len(nodes))
	for i, n := range nodes {
		for _, d := range n.Deps {
			j, ok := pos[d]
			if !ok {
				return fmt.Errorf("plan node %d depends on unknown node %d", n.ID, d)
			}
			indeg[i]++
			dependents[j] = append(dependents[j], i)
		}
	}

	var g errgroup.Group
	if x.e.cfg.Parallel > 0 {
		g.SetLimit(x.e.cfg.Parallel)
	}
	done := make(chan nodeResult, len(nodes))
	running, finished := 0, 0
	launch := func(i int) {
		running++
		node := nodes[i]
		g.Go(func() error {
			done <- nodeResult{idx: i, err: x.do(ctx, node.Action)}
			return nil
		})
	}
	var errs []error
	for i := range nodes {
		if indeg[i] == 0 && len(errs) == 0 {
			launch(i)
		}
	}
	for running > 0 {
		r := <-done
		running--
		finished++
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		if len(errs) > 0 || ctx.Err() != nil {
			continue
		}
		for _, j := range dependents[r.idx] {
			indeg[j]--
			if indeg[j] == 0 {
				launch(j)
			}
		}
	}
	_ = g.Wait()
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if finished < len(nodes) {
		if err := ctx.Err(); err != nil {
			return err
		}
		return fmt.Errorf("plan stalled after %d of %d actions (dependency cycle?)", finished, len(nodes))
	}
	return nil
}

func (x *exec) event(a planner.Action, status, text string, err error) {
	x.prog.Event(Event{Time: x.e.cfg.Now(), Resource: a.Resource(), Kind: a.Kind(), Name: actionName(a), Status: status, Text: text, Err: err})
}

// actionName is the name progress shows for an action.
func actionName(a planner.Action) string {
	switch a := a.(type) {
	case planner.EnsureNetwork:
		return a.Name
	case planner.RemoveNetwork:
		return a.Name
	case planner.EnsureVolume:
		return a.Name
	case planner.RemoveVolume:
		return a.Name
	case planner.EnsureImage:
		return a.Ref
	case planner.RemoveImage:
		return a.Ref
	case planner.CreateContainer:
		return a.Name
	case planner.StartContainer:
		return a.Name
	case planner.StopContainer:
		return a.Name
	case planner.RemoveContainer:
		return a.Name
	case planner.RecreateContainer:
		return a.Name
	case planner.WaitContainer:
		return a.Service
	}
	return a.Resource()
}

// do runs one action, reporting its progress.
func (x *exec) do(ctx context.Context, a planner.Action) error {
	working, doneText := actionTexts(a)
	x.event(a, StatusWorking, working, nil)
	skipped, err := x.act(ctx, a)
	if err != nil {
		ae := &ActionError{Resource: a.Resource(), Kind: a.Kind(), Service: actionService(a), Err: err}
		if id := x.failedContainer(a); id != "" && x.e.cfg.Logs != nil {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			ae.LogTail, _ = x.e.cfg.Logs.Tail(lctx, id, x.e.cfg.LogTail)
			cancel()
		}
		x.event(a, StatusError, err.Error(), err)
		return ae
	}
	if skipped != "" {
		x.event(a, StatusDone, skipped, nil)
		return nil
	}
	x.event(a, StatusDone, doneText, nil)
	return nil
}

func actionTexts(a planner.Action) (string, string) {
	switch a.(type) {
	case planner.EnsureNetwork:
		return "Creating", "Created"
	case planner.EnsureVolume:
		return "Creating", "Created"
	case planner.EnsureImage:
		return "Checking", "Ready"
	case planner.CreateContainer:
		return "Creating", "Created"
	case planner.StartContainer:
		return "Starting", "Started"
	case planner.WaitContainer:
		return "Waiting", "Ready"
	case planner.StopContainer:
		return "Stopping", "Stopped"
	case planner.RemoveContainer, planner.RemoveNetwork, planner.RemoveVolume, planner.RemoveImage:
		return "Removing", "Removed"
	case planner.RecreateContainer:
		if a.(planner.RecreateContainer).OnlyIfImageChanged {
			// Most often the build or pull gives the same image: say so, not "Recreating".
			return "Checking image", "Recreated"
		}
		return "Recreating", "Recreated"
	}
	return "Working", "Done"
}

func actionService(a planner.Action) string {
	switch a := a.(type) {
	case planner.EnsureImage:
		return a.Service
	case planner.CreateContainer:
		return a.Service
	case planner.StartContainer:
		return a.Service
	case planner.WaitContainer:
		return a.Service
	case planner.StopContainer:
		return a.Service
	case planner.RemoveContainer:
		return a.Service
	case planner.RecreateContainer:
		return a.Service
	}
	return ""
}

// failedContainer names the container whose logs explain a failure of a.
func (x *exec) failedContainer(a planner.Action) string {
	x.mu.Lock()
	defer x.mu.Unlock()
	switch a := a.(type) {
	case planner.StartContainer:
		return x.byName[a.Name]
	case planner.WaitContainer:
		if ids := x.byService[a.Service]; len(ids) > 0 {
			return ids[0]
		}
	case planner.RecreateContainer:
		return x.byName[a.Name]
	}
	return ""
}

func (x *exec) lookup(name string) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	id, ok := x.byName[name]
	return id, ok
}

func (x *exec) record(service, name, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.byName[name] = id
	x.byService[service] = append(x.byService[service], id)
}

func (x *exec) forget(service, id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for n, v := range x.byName {
		if v == id {
			delete(x.byName, n)
		}
	}
	ids := x.byService[service]
	out := ids[:0]
	for _, v := range ids {
		if v != id {
			out = append(out, v)
		}
	}
	x.byService[service] = out
}

func (x *exec) service(name string) (spec.Service, error) {
	if s, ok := x.p.Service(name); ok {
		return s, nil
	}
	for _, s := range x.p.DisabledServices {
		if s.Name == name {
			return s, nil
		}
	}
	return spec.Service{}, fmt.Errorf("service %q: %w", name, ErrNoSuchService)
}

// graceFor is the stop grace of a service's containers.
func (x *exec) graceFor(service string) time.Duration {
	if x.grace != nil {
		return *x.grace
	}
	if s, ok := x.p.Service(service); ok && s.StopGracePeriod != nil {
		return *s.StopGracePeriod
	}
	return 10 * time.Second
}

// act does the work of one action. A non-empty skipped text reports that nothing was needed.
func (x *exec) act(ctx context.Context, a planner.Action) (skipped string, err error) {
	c := &x.e.cfg
	switch a := a.(type) {
	case planner.EnsureNetwork:
		n, ok := x.p.Networks[a.Key]
		if c.Networks == nil {
			return "", fmt.Errorf("networks: %w", ErrUnsupported)
		}
		if a.External || ok && n.External {
			return x.checkExternalNetwork(ctx, a.Name)
		}
		nc := NetworkConfig{Name: a.Name, Labels: map[string]string{}}
		for k, v := range n.Labels {
			nc.Labels[k] = v
		}
		nc.Labels[planner.LabelProject] = x.p.Name
		nc.Labels[planner.LabelNetwork] = a.Key
		nc.Labels[labelNetworkHash] = planner.NetworkHash(n)
		nc.Internal = n.Internal
		if len(n.IPAM) > 0 {
			nc.Subnet, nc.Gateway, nc.IPRange = n.IPAM[0].Subnet, n.IPAM[0].Gateway, n.IPAM[0].IPRange
		}
		return "", c.Networks.Ensure(ctx, nc)

	case planner.EnsureVolume:
		v, ok := x.p.Volumes[a.Key]
		if c.Volumes == nil {
			return "", fmt.Errorf("volumes: %w", ErrUnsupported)
		}
		if a.External || ok && v.External {
			return x.checkExternalVolume(ctx, a.Name)
		}
		labels := map[string]string{}
		for k, val := range v.Labels {
			labels[k] = val
		}
		labels[planner.LabelProject] = x.p.Name
		labels[planner.LabelVolume] = a.Key
		_, err := c.Volumes.Ensure(ctx, a.Name, labels)
		return "", err

	case planner.EnsureImage:
		return x.ensureImage(ctx, a)

	case planner.CreateContainer:
		svc, err := x.service(a.Service)
		if err != nil {
			return "", err
		}
		id, err := x.createContainer(ctx, svc, a.Number, a.Name, a.Hash)
		if err != nil {
			return "", err
		}
		x.record(a.Service, a.Name, id)
		return "", nil

	case planner.StartContainer:
		id, ok := x.lookup(a.Name)
		if !ok {
			return "", fmt.Errorf("container %s: %w", a.Name, ErrNotFound)
		}
		if info, err := c.Runtime.Inspect(ctx, id); err == nil && running(info.State) {
			return "Running", nil
		}
		return "", c.Runtime.Start(ctx, id)

	case planner.WaitContainer:
		return x.wait(ctx, a)

	case planner.StopContainer:
		return "", c.Runtime.Stop(ctx, a.ID, x.graceFor(a.Service))

	case planner.RemoveContainer:
		if err := x.removeContainerVolumes(ctx, a.ID, a.Volumes); err != nil {
			return "", err
		}
		x.forget(a.Service, a.ID)
		return "", nil

	case planner.RecreateContainer:
		if a.OnlyIfImageChanged {
			svc, err := x.service(a.Service)
			if err != nil {
				return "", err
			}
			img, err := c.Images.Resolve(ctx, svc.ImageName(x.p.Name))
			x.mu.Lock()
			old := x.imageOf[a.ID]
			x.mu.Unlock()
			if err == nil && img.ID == old {
				return "Up to date", nil
			}
		}
		return "", x.recreate(ctx, a)

	case planner.RemoveNetwork:
		if n, ok := x.p.Networks[a.Key]; ok && n.External {
			return "External", nil
		}
		if c.Networks == nil {
			return "", fmt.Errorf("networks: %w", ErrUnsupported)
		}
		return "", c.Networks.Remove(ctx, a.Name)

	case planner.RemoveVolume:
		if v, ok := x.p.Volumes[a.Key]; ok && v.External {
			return "External", nil
		}
		if c.Volumes == nil {
			return "", fmt.Errorf("volumes: %w", ErrUnsupported)
		}
		return "", c.Volumes.Remove(ctx, a.Name)

	case planner.RemoveImage:
		if c.Images == nil {
			return "", fmt.Errorf("images: %w", ErrUnsupported)
		}
		err := c.Images.Remove(ctx, a.Ref)
		if errors.Is(err, ErrNotFound) {
			return "Not found", nil
		}
		return "", err
	}
	return "", fmt.Errorf("action %s: %w", a.Kind(), ErrUnsupported)
}

func (x *exec) ensureImage(ctx context.Context, a planner.EnsureImage) (string, error) {
	c := &x.e.cfg
	if c.Images == nil {
		return "", fmt.Errorf("images: %w", ErrUnsupported)
	}
	if a.Build {
		if c.Builder == nil {
			return "", fmt.Errorf("build %s: %w (build the image with `berth image build` first)", a.Ref, ErrUnsupported)
		}
		svc, err := x.service(a.Service)
		if err != nil {
			return "", err
		}
		x.prog.Event(Event{Time: c.Now(), Resource: a.Resource(), Kind: a.Kind(), Name: actionName(a), Status: StatusWorking, Text: "Building"})
		return "", c.Builder.Build(ctx, x.p.Name, svc, a.Ref)
	}
	if !a.Pull {
		_, err := c.Images.Resolve(ctx, a.Ref)
		if err == nil {
			return "Present", nil
		}
		if !errors.Is(err, ErrNotFound) {
			return "", err
		}
		if s, ok := x.p.Service(a.Service); ok && s.PullPolicy == "never" {
			return "", fmt.Errorf("image %s is not present and pull_policy is never: %w", a.Ref, ErrNotFound)
		}
	}
	x.prog.Event(Event{Time: c.Now(), Resource: a.Resource(), Kind: a.Kind(), Name: actionName(a), Status: StatusWorking, Text: "Pulling"})
	if err := c.Images.Pull(ctx, a.Ref); err != nil {
		return "", err
	}
	return "Pulled", nil
}

func (x *exec) checkExternalNetwork(ctx context.Context, name string) (string, error) {
	nets, err := x.e.cfg.Networks.List(ctx)
	if err != nil {
		return "", err
	}
	for _, n := range nets {
		if n.Name == name {
			return "External", nil
		}
	}
	return "", fmt.Errorf("external network %s: %w (create it with `berth network create %s`)", name, ErrNotFound, name)
}

func (x *exec) checkExternalVolume(ctx context.Context, name string) (string, error) {
	vols, err := x.e.cfg.Volumes.List(ctx)
	if err != nil {
		return "", err
	}
	for _, v := range vols {
		if v.Name == name {
			return "External", nil
		}
	}
	return "", fmt.Errorf("external volume %s: %w (create it with `berth volume create %s`)", name, ErrNotFound, name)
}

func (x *exec) recreate(ctx context.Context, a planner.RecreateContainer) error {
	c := &x.e.cfg
	svc, err := x.service(a.Service)
	if err != nil {
		return err
	}
	x.mu.Lock()
	wasRunning := x.state[a.ID] == planner.StateRunning || x.state[a.ID] == planner.StateRestarting
	x.mu.Unlock()
	if err := c.Runtime.Stop(ctx, a.ID, x.graceFor(a.Service)); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("stop old container: %w", err)
	}
	if err := x.removeContainer(ctx, a.ID); err != nil {
		return fmt.Errorf("remove old container: %w", err)
	}
	x.forget(a.Service, a.ID)
	id, err := x.createContainer(ctx, svc, a.Number, a.Name, a.Hash)
	if err != nil {
		return err
	}
	x.record(a.Service, a.Name, id)
	if wasRunning && !x.starts[a.Resource()] {
		return c.Runtime.Start(ctx, id)
	}
	return nil
}

// wait re-checks the service's containers until they meet the condition: on each change of
// their recorded state when the runtime can notify (a StateWatcher), else every PollInterval.
func (x *exec) wait(ctx context.Context, a planner.WaitContainer) (string, error) {
	c := &x.e.cfg
	if x.waitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, x.waitTimeout)
		defer cancel()
	}
	svc, _ := x.p.Service(a.Service)
	cond := a.Condition
	if cond == "" {
		cond = spec.ConditionStarted
		if svc.Healthcheck != nil && !svc.Healthcheck.Disable {
			cond = spec.ConditionHealthy
		}
	}
	fail := func(err error) (string, error) {
		if !a.Required && a.Condition != "" {
			x.prog.Event(Event{Time: c.Now(), Resource: a.Resource(), Kind: a.Kind(), Name: actionName(a), Status: StatusWarning,
				Text: "optional dependency failed: " + err.Error()})
			return "Skipped", nil
		}
		return "", err
	}
	w := newStateWaiter(c)
	defer w.close()
	for {
		x.mu.Lock()
		ids := append([]string(nil), x.byService[a.Service]...)
		x.mu.Unlock()
		w.watch(ctx, ids)
		ok := len(ids) > 0
		for _, id := range ids {
			info, err := c.Runtime.Inspect(ctx, id)
			if err != nil {
				return fail(err)
			}
			met, err := conditionMet(cond, info)
			if err != nil {
				return fail(fmt.Errorf("container %s %w", info.Name, err))
			}
			if !met {
				ok = false
			}
		}
		if ok {
			switch cond {
			case spec.ConditionHealthy:
				return "Healthy", nil
			case spec.ConditionCompleted:
				return "Exited", nil
			}
			return "Running", nil
		}
		if err := w.pause(ctx); err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				return fail(fmt.Errorf("service %s did not become %s: %w", a.Service, conditionWord(cond), ErrTimeout))
			}
			return "", err
		}
	}
}

// stateWaiter paces a wait loop: it wakes on the runtime's state notifications when the runtime
// offers them (re-checking every RecheckInterval regardless), else every PollInterval.
type stateWaiter struct {
	cfg     *Config
	sw      StateWatcher
	ids     []string
	changes <-chan struct{}
	stop    func()
}

func newStateWaiter(c *Config) *stateWaiter {
	w := &stateWaiter{cfg: c}
	w.sw, _ = c.Runtime.(StateWatcher)
	return w
}

// watch (re)starts the watch when the set of containers changed.
func (w *stateWaiter) watch(ctx context.Context, ids []string) {
	if w.sw == nil || slices.Equal(ids, w.ids) && w.changes != nil {
		return
	}
	w.close()
	w.ids = ids
	if len(ids) == 0 {
		return
	}
	changes, stop, err := w.sw.WatchState(ctx, ids)
	if err != nil {
		// A container removed meanwhile, or no inotify: poll this round.
		return
	}
	w.changes, w.stop = changes, stop
}

// pause returns when it is time to look again, or with ctx's error.
func (w *stateWaiter) pause(ctx context.Context) error {
	d := w.cfg.PollInterval
	var changes <-chan struct{}
	if w.changes != nil {
		d, changes = w.cfg.RecheckInterval, w.changes
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case _, ok := <-changes:
		if !ok {
			w.changes = nil // the watch ended: poll from now on
		}
	case <-t.C:
	}
	return nil
}

func (w *stateWaiter) close() {
	if w.stop != nil {
		w.stop()
	}
	w.changes, w.stop, w.ids = nil, nil, nil
}

func conditionWord(cond string) string {
	switch cond {
	case spec.ConditionHealthy:
		return "healthy"
	case spec.ConditionCompleted:
		return "completed"
	}
	return "running"
}

func conditionMet(cond string, info ContainerInfo) (bool, error) {
	exited := info.State == planner.StateExited || info.State == planner.StateDead
	switch cond {
	case spec.ConditionCompleted:
		if exited {
			if info.ExitCode != 0 {
				return false, fmt.Errorf("exited with code %d", info.ExitCode)
			}
			return true, nil
		}
		return false, nil
	case spec.ConditionHealthy:
		if exited {
			return false, fmt.Errorf("exited (code %d) before becoming healthy", info.ExitCode)
		}
		switch info.Health {
		case "healthy":
			return true, nil
		case "unhealthy":
			return false, errors.New("is unhealthy")
		case "":
			if info.State == planner.StateRunning {
				return false, errors.New("has no healthcheck")
			}
		}
		return false, nil
	default:
		if info.State == planner.StateRunning {
			return true, nil
		}
		if exited {
			if info.ExitCode != 0 {
				return false, fmt.Errorf("exited with code %d", info.ExitCode)
			}
			return true, nil
		}
		return false, nil
	}
}
