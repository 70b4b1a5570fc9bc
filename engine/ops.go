package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

// selectContainers returns the project's service containers (not one-off) of the named
// services (all when services is empty), checking that each name is a service.
func (e *Engine) selectContainers(ctx context.Context, p *spec.Project, services []string, oneOff bool) ([]ContainerInfo, error) {
	want := map[string]bool{}
	for _, s := range services {
		if _, ok := p.Service(s); !ok {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchService, s)
		}
		want[s] = true
	}
	cs, err := e.Containers(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	var out []ContainerInfo
	for _, c := range cs {
		if !oneOff && c.Labels[planner.LabelOneOff] == "True" {
			continue
		}
		if len(want) > 0 && !want[c.Labels[planner.LabelService]] {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// dependents maps each service to the services that depend on it.
func dependents(p *spec.Project) map[string][]string {
	out := map[string][]string{}
	for _, s := range p.Services {
		for d := range s.DependsOn {
			out[d] = append(out[d], s.Name)
		}
		for _, l := range s.Links {
			t, _, _ := strings.Cut(l, ":")
			out[t] = append(out[t], s.Name)
		}
	}
	return out
}

// running reports whether a container state needs stopping.
func running(state string) bool {
	return state == planner.StateRunning || state == planner.StateRestarting || state == planner.StatePaused
}

// StopPlan is the plan that stops the given containers, dependents before their dependencies.
func StopPlan(p *spec.Project, cs []ContainerInfo) *planner.Plan {
	plan := &planner.Plan{Project: p.Name}
	byService := map[string][]int{}
	for _, c := range cs {
		if !running(c.State) {
			continue
		}
		svc := c.Labels[planner.LabelService]
		id := len(plan.Nodes) + 1
		plan.Nodes = append(plan.Nodes, planner.Node{ID: id, Action: planner.StopContainer{
			ID: c.ID, Service: svc, Number: containerNumber(c), Name: c.Name}})
		byService[svc] = append(byService[svc], id)
	}
	deps := dependents(p)
	for i := range plan.Nodes {
		svc := plan.Nodes[i].Action.(planner.StopContainer).Service
		for _, d := range deps[svc] {
			plan.Nodes[i].Deps = append(plan.Nodes[i].Deps, byService[d]...)
		}
	}
	return plan
}

// Stop stops the services' running containers in reverse dependency order.
func (e *Engine) Stop(ctx context.Context, p *spec.Project, services []string, grace *time.Duration, prog Progress) error {
	if prog == nil {
		prog = NopProgress{}
	}
	prog.Start("stop")
	err := e.stop(ctx, p, services, grace, prog)
	prog.Done(err)
	return err
}

func (e *Engine) stop(ctx context.Context, p *spec.Project, services []string, grace *time.Duration, prog Progress) error {
	unlock, err := e.lockProject(ctx, p.Name, prog)
	if err != nil {
		return err
	}
	defer unlock()
	cs, err := e.selectContainers(ctx, p, services, false)
	if err != nil {
		return err
	}
	x := e.newExec(p, planner.Observed{}, prog)
	x.grace = grace
	return x.run(ctx, StopPlan(p, cs))
}

// Start starts the services' stopped containers in dependency order.
func (e *Engine) Start(ctx context.Context, p *spec.Project, services []string, prog Progress) error {
	if prog == nil {
		prog = NopProgress{}
	}
	prog.Start("start")
	err := e.start(ctx, p, services, prog)
	prog.Done(err)
	return err
}

func (e *Engine) start(ctx context.Context, p *spec.Project, services []string, prog Progress) error {
	unlock, err := e.lockProject(ctx, p.Name, prog)
	if err != nil {
		return err
	}
	defer unlock()
	cs, err := e.selectContainers(ctx, p, services, false)
	if err != nil {
		return err
	}
	have := planner.Observed{}
	plan := &planner.Plan{Project: p.Name}
	byService := map[string][]int{}
	for _, c := range cs {
		have.Containers = append(have.Containers, toObserved(c))
		if running(c.State) {
			continue
		}
		svc := c.Labels[planner.LabelService]
		id := len(plan.Nodes) + 1
		plan.Nodes = append(plan.Nodes, planner.Node{ID: id, Action: planner.StartContainer{
			Service: svc, Number: containerNumber(c), Name: c.Name, Reason: "start"}})
		byService[svc] = append(byService[svc], id)
	}
	for i := range plan.Nodes {
		s, _ := p.Service(plan.Nodes[i].Action.(planner.StartContainer).Service)
		for d := range s.DependsOn {
			plan.Nodes[i].Deps = append(plan.Nodes[i].Deps, byService[d]...)
		}
	}
	return e.newExec(p, have, prog).run(ctx, plan)
}

// RemoveStopped removes the services' stopped containers (all of them with force, after
// stopping). It returns the removed containers.
func (e *Engine) RemoveStopped(ctx context.Context, p *spec.Project, services []string, force bool, prog Progress) ([]ContainerInfo, error) {
	if prog == nil {
		prog = NopProgress{}
	}
	unlock, err := e.lockProject(ctx, p.Name, prog)
	if err != nil {
		return nil, err
	}
	defer unlock()
	cs, err := e.selectContainers(ctx, p, services, true)
	if err != nil {
		return nil, err
	}
	plan := &planner.Plan{Project: p.Name}
	var removed []ContainerInfo
	for _, c := range cs {
		if running(c.State) && !force {
			continue
		}
		var deps []int
		if running(c.State) {
			plan.Nodes = append(plan.Nodes, planner.Node{ID: len(plan.Nodes) + 1, Action: planner.StopContainer{
				ID: c.ID, Service: c.Labels[planner.LabelService], Number: containerNumber(c), Name: c.Name}})
			deps = []int{len(plan.Nodes)}
		}
		plan.Nodes = append(plan.Nodes, planner.Node{ID: len(plan.Nodes) + 1, Deps: deps, Action: planner.RemoveContainer{
			ID: c.ID, Service: c.Labels[planner.LabelService], Number: containerNumber(c), Name: c.Name}})
		removed = append(removed, c)
	}
	return removed, e.newExec(p, planner.Observed{}, prog).run(ctx, plan)
}

// Signal sends sig to the services' running containers.
func (e *Engine) Signal(ctx context.Context, p *spec.Project, services []string, sig string) error {
	if e.cfg.Signaler == nil {
		return fmt.Errorf("kill: %w", ErrUnsupported)
	}
	cs, err := e.selectContainers(ctx, p, services, false)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if !running(c.State) {
			continue
		}
		if err := e.cfg.Signaler.Kill(ctx, c.ID, sig); err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("kill %s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Pause freezes (or, with unpause, thaws) the services' running containers.
func (e *Engine) Pause(ctx context.Context, p *spec.Project, services []string, unpause bool) ([]ContainerInfo, error) {
	if e.cfg.Signaler == nil {
		return nil, fmt.Errorf("pause: %w", ErrUnsupported)
	}
	cs, err := e.selectContainers(ctx, p, services, false)
	if err != nil {
		return nil, err
	}
	var done []ContainerInfo
	var errs []error
	for _, c := range cs {
		switch {
		case unpause && c.State == planner.StatePaused:
			err = e.cfg.Signaler.Unpause(ctx, c.ID)
		case !unpause && c.State == planner.StateRunning:
			err = e.cfg.Signaler.Pause(ctx, c.ID)
		default:
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
			continue
		}
		done = append(done, c)
	}
	return done, errors.Join(errs...)
}

// LogOptions select what FollowLogs shows.
type LogOptions struct {
	Tail   int  // last n lines per container; < 0 all
	Follow bool // keep following
	// UntilExit stops following a container when it stops (attached up).
	UntilExit bool
}

// FollowLogs streams the containers' logs to fn, one container per goroutine; fn is never
// called concurrently. onExit, when set, is called with a container's final state after its
// stream ends (with Follow and UntilExit).
func (e *Engine) FollowLogs(ctx context.Context, cs []ContainerInfo, opt LogOptions, fn func(ContainerInfo, LogLine), onExit func(ContainerInfo)) error {
	if e.cfg.Logs == nil {
		return fmt.Errorf("logs: %w", ErrUnsupported)
	}
	var mu sync.Mutex
	emit := func(c ContainerInfo) func(LogLine) {
		return func(l LogLine) {
			mu.Lock()
			fn(c, l)
			mu.Unlock()
		}
	}
	if !opt.Follow {
		for _, c := range cs {
			lines, err := e.cfg.Logs.Tail(ctx, c.ID, opt.Tail)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("logs of %s: %w", c.Name, err)
			}
			for _, l := range lines {
				fn(c, l)
			}
		}
		return nil
	}
	var g errgroup.Group
	for _, c := range cs {
		g.Go(func() error {
			err := e.cfg.Logs.Follow(ctx, c.ID, opt.Tail, opt.UntilExit, emit(c))
			if err != nil && ctx.Err() == nil && !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("logs of %s: %w", c.Name, err)
			}
			if onExit != nil && ctx.Err() == nil && e.cfg.Runtime != nil {
				info, ierr := e.cfg.Runtime.Inspect(context.WithoutCancel(ctx), c.ID)
				if ierr == nil {
					mu.Lock()
					onExit(info)
					mu.Unlock()
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// Each runs fn for every container with bounded parallelism (Config.Parallel), collecting
// errors. It is for per-container commands that are not plan actions (wait, top...).
func (e *Engine) Each(ctx context.Context, cs []ContainerInfo, fn func(ctx context.Context, c ContainerInfo) error) error {
	var g errgroup.Group
	if e.cfg.Parallel > 0 {
		g.SetLimit(e.cfg.Parallel)
	}
	var mu sync.Mutex
	var errs []error
	for _, c := range cs {
		g.Go(func() error {
			if err := fn(ctx, c); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}

// Select returns the project's containers of the named services (all when empty); oneOff
// includes `run` containers.
func (e *Engine) Select(ctx context.Context, p *spec.Project, services []string, oneOff bool) ([]ContainerInfo, error) {
	return e.selectContainers(ctx, p, services, oneOff)
}

// StopOrKill is Stop, except that once kill delivers (a second Ctrl-C), the containers still
// running get SIGKILL.
func (e *Engine) StopOrKill(ctx context.Context, p *spec.Project, services []string, grace *time.Duration, prog Progress, kill <-chan os.Signal) error {
	var g errgroup.Group
	done := make(chan struct{})
	var stopErr error
	g.Go(func() error {
		defer close(done)
		stopErr = e.Stop(ctx, p, services, grace, prog)
		return nil
	})
	g.Go(func() error {
		select {
		case <-kill:
			_ = e.Signal(ctx, p, services, "KILL")
		case <-done:
		}
		return nil
	})
	_ = g.Wait()
	return stopErr
}

// AttachOptions configure RunAttached.
type AttachOptions struct {
	Tail  int            // log lines to show first per container; < 0 all
	Grace *time.Duration // stop grace; nil uses each service's
	// Kill delivers the second interrupt: containers still stopping are killed.
	Kill <-chan os.Signal
	// Progress receives the stop's progress.
	Progress Progress
}

// RunAttached follows the containers' logs until they all exit, ctx ends (Ctrl-C) or onExit
// asks to abort. On Ctrl-C or abort it stops the project's services in reverse dependency
// order while still showing their last output, and reports stopped = true. fn and onExit
// are never called concurrently.
func (e *Engine) RunAttached(ctx context.Context, p *spec.Project, services []string, cs []ContainerInfo, opt AttachOptions,
	fn func(ContainerInfo, LogLine), onExit func(ContainerInfo) (abort bool)) (stopped bool, err error) {
	bg := context.WithoutCancel(ctx)
	logCtx, cancelLogs := context.WithCancel(bg)
	defer cancelLogs()
	abort := make(chan struct{})
	var abortOnce sync.Once
	logsDone := make(chan struct{})
	var g errgroup.Group
	var logErr, stopErr error
	g.Go(func() error {
		defer close(logsDone)
		logErr = e.FollowLogs(logCtx, cs, LogOptions{Tail: opt.Tail, Follow: true, UntilExit: true}, fn, func(c ContainerInfo) {
			if onExit != nil && onExit(c) {
				abortOnce.Do(func() { close(abort) })
			}
		})
		return nil
	})
	g.Go(func() error {
		select {
		case <-logsDone:
		case <-ctx.Done():
		case <-abort:
		}
		// Several may be ready at once (the logs end because the containers were stopped by
		// the same Ctrl-C): an interrupt or an abort always wins over the logs ending.
		aborted := false
		select {
		case <-abort:
			aborted = true
		default:
		}
		switch {
		case ctx.Err() != nil:
			// The interrupt that ended ctx may also be queued on Kill: only a later one kills.
			select {
			case <-opt.Kill:
			case <-time.After(100 * time.Millisecond):
			}
		case !aborted:
			return nil
		}
		stopped = true
		if opt.Progress == nil {
			opt.Progress = NopProgress{}
		}
		opt.Progress.Event(Event{Time: e.cfg.Now(), Resource: "project:" + p.Name, Name: p.Name, Status: StatusWarning,
			Text: "Gracefully stopping... (press Ctrl+C again to force)"})
		stopErr = e.StopOrKill(bg, p, services, opt.Grace, opt.Progress, opt.Kill)
		// Let the followers print the last lines of the stopped containers, then end them.
		select {
		case <-logsDone:
		case <-time.After(2 * time.Second):
			cancelLogs()
		}
		return nil
	})
	_ = g.Wait()
	if stopErr != nil {
		return stopped, stopErr
	}
	if logErr != nil && !stopped {
		return stopped, logErr
	}
	return stopped, nil
}
