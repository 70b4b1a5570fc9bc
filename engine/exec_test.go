package engine

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berth-dev/berth/planner"
	"github.com/berth-dev/berth/spec"
)

func testProject() *spec.Project {
	return &spec.Project{
		Name: "proj",
		Services: []spec.Service{
			{Name: "db", Image: "busybox", Scale: 1, Environment: map[string]string{"A": "svc", "B": "b"},
				Networks: map[string]spec.ServiceNetwork{"default": {Aliases: []string{"database"}}},
				Volumes:  []spec.Mount{{Type: spec.MountVolume, Source: "data", Target: "/data"}}},
			{Name: "web", Image: "busybox", Scale: 1, Command: []string{"httpd", "-f"},
				Networks:  map[string]spec.ServiceNetwork{"default": {}},
				Ports:     []spec.Port{{HostIP: "127.0.0.1", Published: "8080", Target: 80, Protocol: "tcp"}},
				DependsOn: map[string]spec.Dependency{"db": {Condition: spec.ConditionStarted, Required: true}},
				Links:     []string{"db:sql"}},
		},
		Networks: map[string]spec.Network{"default": {Name: "proj_default"}},
		Volumes:  map[string]spec.Volume{"data": {Name: "proj_data"}},
	}
}

// upPlan is the plan the planner makes for testProject on an empty machine.
func upPlan() *planner.Plan {
	return &planner.Plan{Project: "proj", Nodes: []planner.Node{
		{ID: 1, Action: planner.EnsureNetwork{Key: "default", Name: "proj_default"}},
		{ID: 2, Action: planner.EnsureVolume{Key: "data", Name: "proj_data"}},
		{ID: 3, Action: planner.EnsureImage{Service: "db", Ref: "busybox"}},
		{ID: 4, Action: planner.CreateContainer{Service: "db", Number: 1, Name: "proj-db-1", Hash: "h1"}, Deps: []int{1, 2, 3}},
		{ID: 5, Action: planner.StartContainer{Service: "db", Number: 1, Name: "proj-db-1"}, Deps: []int{4}},
		{ID: 6, Action: planner.CreateContainer{Service: "web", Number: 1, Name: "proj-web-1", Hash: "h2"}, Deps: []int{1, 3, 5}},
		{ID: 7, Action: planner.StartContainer{Service: "web", Number: 1, Name: "proj-web-1"}, Deps: []int{6}},
	}}
}

func indexOf(calls []string, prefix string) int {
	return slices.IndexFunc(calls, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func TestExecuteCreatesInDependencyOrder(t *testing.T) {
	f := newFakes()
	e, _ := New(f.config())
	p := testProject()
	prog := &RecordingProgress{}
	if err := e.Execute(context.Background(), p, planner.Observed{}, upPlan(), prog); err != nil {
		t.Fatal(err)
	}
	calls := f.w.Calls()
	for _, order := range [][2]string{
		{"netcreate proj_default", "attach proj-db-1"},
		{"volcreate proj_data", "create proj-db-1"},
		{"started proj-db-1", "create proj-web-1"},
		{"create proj-web-1", "start proj-web-1"},
	} {
		a, b := indexOf(calls, order[0]), indexOf(calls, order[1])
		if a < 0 || b < 0 || a > b {
			t.Errorf("want %q before %q; calls:\n%s", order[0], order[1], strings.Join(calls, "\n"))
		}
	}

	db := f.rt.byName("proj-db-1")
	if db == nil {
		t.Fatal("db not created")
	}
	if diff := cmp.Diff([]string{"PATH=/bin", "A=svc", "B=b"}, db.cfg.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"sh"}, db.cfg.Args); diff != "" {
		t.Errorf("args (-want +got):\n%s", diff)
	}
	wantLabels := map[string]string{
		planner.LabelProject: "proj", planner.LabelService: "db", planner.LabelNumber: "1",
		planner.LabelOneOff: "False", planner.LabelConfigHash: "h1", planner.LabelImage: "sha256:bb",
	}
	for k, v := range wantLabels {
		if db.cfg.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, db.cfg.Labels[k], v)
		}
	}
	if len(db.cfg.Mounts) != 1 || db.cfg.Mounts[0].Source != "/volumes/proj_data" || db.cfg.Mounts[0].Target != "/data" {
		t.Errorf("mounts = %+v", db.cfg.Mounts)
	}
	if !strings.Contains(db.cfg.ResolvConf, "nameserver 10.210.0.1") {
		t.Errorf("resolv.conf = %q", db.cfg.ResolvConf)
	}
	if !strings.Contains(db.cfg.Hosts, "10.210.0.2\t"+db.cfg.Hostname) {
		t.Errorf("hosts = %q", db.cfg.Hosts)
	}
	web := f.rt.byName("proj-web-1")
	if diff := cmp.Diff([]string{"httpd", "-f"}, web.cfg.Args); diff != "" {
		t.Errorf("web args (-want +got):\n%s", diff)
	}
	// The link alias "sql" is web's alone: it is not a network-wide name of db.
	wantAliases := []string{"db", "proj-db-1", "database", "web", "proj-web-1"}
	if diff := cmp.Diff(wantAliases, f.sb.aliases["proj_default"]); diff != "" {
		t.Errorf("aliases (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"sql": "db"}, f.sb.links["proj-web-1"]); diff != "" {
		t.Errorf("web's link aliases (-want +got):\n%s", diff)
	}
	if f.sb.links["proj-db-1"] != nil {
		t.Errorf("db has link aliases: %v", f.sb.links["proj-db-1"])
	}
	if indexOf(calls, "publish") < 0 {
		t.Errorf("ports not published: %v", calls)
	}
	// Every action reported working then done.
	done := 0
	for _, ev := range prog.Snapshot() {
		if ev.Status == StatusDone {
			done++
		}
	}
	if done != 7 {
		t.Errorf("done events = %d, want 7", done)
	}
}

func TestExecuteStopsAfterFailure(t *testing.T) {
	f := newFakes()
	f.rt.failStart["proj-db-1"] = errors.New("boom")
	e, _ := New(f.config())
	p := testProject()
	err := e.Execute(context.Background(), p, planner.Observed{}, upPlan(), nil)
	if !errors.Is(err, ErrActionFailed) {
		t.Fatalf("err = %v, want ErrActionFailed", err)
	}
	var ae *ActionError
	if !errors.As(err, &ae) || ae.Service != "db" {
		t.Fatalf("err = %#v, want ActionError for db", err)
	}
	if got := f.w.Calls(); indexOf(got, "create proj-web-1") >= 0 {
		t.Errorf("web created after db failed: %v", got)
	}
}

func TestExecuteFailureCarriesLogTail(t *testing.T) {
	f := newFakes()
	f.rt.onStart = func(c *fakeContainer) {
		c.state = planner.StateExited
		c.exit = 3
		for i := range 15 {
			c.logs = append(c.logs, LogLine{Text: "line " + string(rune('a'+i))})
		}
	}
	e, _ := New(f.config())
	p := testProject()
	plan := &planner.Plan{Project: "proj", Nodes: []planner.Node{
		{ID: 1, Action: planner.EnsureNetwork{Key: "default", Name: "proj_default"}},
		{ID: 2, Action: planner.CreateContainer{Service: "web", Number: 1, Name: "proj-web-1"}, Deps: []int{1}},
		{ID: 3, Action: planner.StartContainer{Service: "web", Number: 1, Name: "proj-web-1"}, Deps: []int{2}},
		{ID: 4, Action: planner.WaitContainer{Service: "web", Condition: spec.ConditionHealthy, Required: true}, Deps: []int{3}},
	}}
	err := e.Execute(context.Background(), p, planner.Observed{}, plan, nil)
	var ae *ActionError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v", err)
	}
	if len(ae.LogTail) != 10 || ae.LogTail[9].Text != "line o" {
		t.Errorf("log tail = %+v", ae.LogTail)
	}
	if !strings.Contains(err.Error(), "exited (code 3)") {
		t.Errorf("err = %v", err)
	}
}

func TestExecuteParallelLimit(t *testing.T) {
	for _, tc := range []struct {
		parallel, wantMax int
	}{{1, 1}, {3, 3}, {0, 8}} {
		f := newFakes()
		f.rt.startDelay = 20 * time.Millisecond
		cfg := f.config()
		cfg.Parallel = tc.parallel
		e, _ := New(cfg)
		p := &spec.Project{Name: "proj", Networks: map[string]spec.Network{}}
		plan := &planner.Plan{Project: "proj"}
		for i := 1; i <= 8; i++ {
			name := "s" + string(rune('0'+i))
			p.Services = append(p.Services, spec.Service{Name: name, Image: "busybox", NetworkMode: "host"})
			cn := "proj-" + name + "-1"
			plan.Nodes = append(plan.Nodes,
				planner.Node{ID: 2*i - 1, Action: planner.CreateContainer{Service: name, Number: 1, Name: cn}},
				planner.Node{ID: 2 * i, Action: planner.StartContainer{Service: name, Number: 1, Name: cn}, Deps: []int{2*i - 1}})
		}
		if err := e.Execute(context.Background(), p, planner.Observed{}, plan, nil); err != nil {
			t.Fatal(err)
		}
		if f.rt.maxRunning != tc.wantMax {
			t.Errorf("parallel %d: max concurrent starts = %d, want %d", tc.parallel, f.rt.maxRunning, tc.wantMax)
		}
	}
}

func TestWaitConditions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cond    string
		state   string
		exit    int
		health  string
		wantErr string
	}{
		{"started", spec.ConditionStarted, planner.StateRunning, 0, "", ""},
		{"healthy", spec.ConditionHealthy, planner.StateRunning, 0, "healthy", ""},
		{"unhealthy", spec.ConditionHealthy, planner.StateRunning, 0, "unhealthy", "is unhealthy"},
		{"completed", spec.ConditionCompleted, planner.StateExited, 0, "", ""},
		{"completed failed", spec.ConditionCompleted, planner.StateExited, 2, "", "exited with code 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakes()
			f.rt.cs["c1"] = &fakeContainer{cfg: ContainerConfig{ID: "c1", Name: "proj-db-1",
				Labels: map[string]string{planner.LabelProject: "proj", planner.LabelService: "db", planner.LabelNumber: "1", "test.health": tc.health}},
				state: tc.state, exit: tc.exit}
			e, _ := New(f.config())
			have, err := e.Observe(context.Background(), testProject())
			if err != nil {
				t.Fatal(err)
			}
			plan := &planner.Plan{Nodes: []planner.Node{{ID: 1, Action: planner.WaitContainer{Service: "db", Condition: tc.cond, Required: true}}}}
			err = e.Execute(context.Background(), testProject(), have, plan, nil)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("err = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	f := newFakes()
	f.rt.cs["c1"] = &fakeContainer{cfg: ContainerConfig{ID: "c1", Name: "proj-db-1",
		Labels: map[string]string{planner.LabelProject: "proj", planner.LabelService: "db", planner.LabelNumber: "1",
			planner.LabelConfigHash: "h", planner.LabelImage: "sha256:bb", planner.LabelOneOff: "False"}}, state: planner.StateRunning}
	f.rt.cs["c2"] = &fakeContainer{cfg: ContainerConfig{ID: "c2", Name: "other-db-1",
		Labels: map[string]string{planner.LabelProject: "other", planner.LabelService: "db"}}, state: planner.StateRunning}
	f.net.nets["proj_default"] = NetworkInfo{Name: "proj_default"}
	f.net.nets["other_default"] = NetworkInfo{Name: "other_default"}
	f.vol.vols["proj_data"] = VolumeInfo{Name: "proj_data"}
	e, _ := New(f.config())
	got, err := e.Observe(context.Background(), testProject())
	if err != nil {
		t.Fatal(err)
	}
	want := planner.Observed{
		Containers: []planner.Container{{ID: "c1", Name: "proj-db-1", Service: "db", Number: 1, ConfigHash: "h", ImageID: "sha256:bb", State: planner.StateRunning}},
		Networks:   []planner.Network{{Name: "proj_default"}},
		Volumes:    []planner.Volume{{Name: "proj_data"}},
		Images:     map[string]string{"busybox": "sha256:bb"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
}

func TestObserveEmptyWithoutParts(t *testing.T) {
	e, _ := New(Config{})
	got, err := e.Observe(context.Background(), testProject())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Containers)+len(got.Networks)+len(got.Volumes)+len(got.Images) != 0 {
		t.Errorf("observed = %+v, want empty", got)
	}
}

func TestRemoveAndRecreate(t *testing.T) {
	f := newFakes()
	e, _ := New(f.config())
	p := testProject()
	if err := e.Execute(context.Background(), p, planner.Observed{}, upPlan(), nil); err != nil {
		t.Fatal(err)
	}
	have, _ := e.Observe(context.Background(), p)
	var dbID string
	for _, c := range have.Containers {
		if c.Name == "proj-db-1" {
			dbID = c.ID
		}
	}
	plan := &planner.Plan{Nodes: []planner.Node{
		{ID: 1, Action: planner.RecreateContainer{ID: dbID, Service: "db", Number: 1, Name: "proj-db-1", Hash: "h9"}},
	}}
	if err := e.Execute(context.Background(), p, have, plan, nil); err != nil {
		t.Fatal(err)
	}
	db := f.rt.byName("proj-db-1")
	if db == nil || db.cfg.ID == dbID || db.cfg.Labels[planner.LabelConfigHash] != "h9" || db.state != planner.StateRunning {
		t.Fatalf("recreated db = %+v", db)
	}
	calls := f.w.Calls()
	if indexOf(calls, "unsandbox "+short(dbID)+" [proj_default]") < 0 || indexOf(calls, "rmlayer "+short(dbID)) < 0 {
		t.Errorf("old container not cleaned up: %v", calls)
	}
}

func TestLockWaitsAndNamesHolder(t *testing.T) {
	dir := t.TempDir()
	e1, _ := New(Config{RunRoot: dir, Who: "berth up -d"})
	e2, _ := New(Config{RunRoot: dir, Who: "berth down"})
	ctx := context.Background()
	unlock, err := e1.Lock(ctx, "proj", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another project is not blocked.
	u2, err := e2.Lock(ctx, "other", func(string) { t.Error("other project waited") })
	if err != nil {
		t.Fatal(err)
	}
	u2()

	holder := make(chan string, 1)
	got := make(chan error, 1)
	go func() {
		u, err := e2.Lock(ctx, "proj", func(h string) { holder <- h })
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case h := <-holder:
		if !strings.Contains(h, "berth up -d") {
			t.Errorf("holder = %q", h)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second locker never reported waiting")
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second locker never got the lock")
	}

	// A cancelled wait returns the context's error.
	unlock, _ = e1.Lock(ctx, "proj", nil)
	defer unlock()
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := e2.Lock(cctx, "proj", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want deadline exceeded", err)
	}
}

func TestStopReverseDependencyOrder(t *testing.T) {
	f := newFakes()
	e, _ := New(f.config())
	p := testProject()
	if err := e.Execute(context.Background(), p, planner.Observed{}, upPlan(), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(context.Background(), p, nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	calls := f.w.Calls()
	if a, b := indexOf(calls, "stop proj-web-1"), indexOf(calls, "stop proj-db-1"); a < 0 || b < 0 || a > b {
		t.Errorf("want web stopped before db: %v", calls)
	}
	if err := e.Start(context.Background(), p, nil, nil); err != nil {
		t.Fatal(err)
	}
	calls = f.w.Calls()
	n := len(calls)
	if a, b := indexOf(calls[n-4:], "started proj-db-1"), indexOf(calls[n-4:], "start proj-web-1"); a < 0 || b < 0 || a > b {
		t.Errorf("want db started before web: %v", calls[n-4:])
	}
	if _, err := e.Select(context.Background(), p, []string{"nope"}, false); !errors.Is(err, ErrNoSuchService) {
		t.Errorf("err = %v", err)
	}
}

func TestRunAttachedInterruptStopsInOrder(t *testing.T) {
	f := newFakes()
	e, _ := New(f.config())
	p := testProject()
	ctx, cancel := context.WithCancel(context.Background())
	if err := e.Execute(ctx, p, planner.Observed{}, upPlan(), nil); err != nil {
		t.Fatal(err)
	}
	cs, err := e.Select(ctx, p, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	cancel() // Ctrl-C
	prog := &RecordingProgress{}
	kill := make(chan os.Signal, 1)
	stopped, err := e.RunAttached(ctx, p, nil, cs, AttachOptions{Tail: -1, Kill: kill, Progress: prog},
		func(ContainerInfo, LogLine) {}, nil)
	if err != nil || !stopped {
		t.Fatalf("stopped = %v, err = %v", stopped, err)
	}
	calls := f.w.Calls()
	if a, b := indexOf(calls, "stop proj-web-1"), indexOf(calls, "stop proj-db-1"); a < 0 || b < 0 || a > b {
		t.Errorf("want web stopped before db: %v", calls)
	}
	if evs := prog.Snapshot(); len(evs) == 0 || !strings.Contains(evs[0].Text, "Gracefully stopping") {
		t.Errorf("events = %+v", evs)
	}
}

func TestRunAttachedAbortOnExit(t *testing.T) {
	f := newFakes()
	e, _ := New(f.config())
	p := testProject()
	ctx := context.Background()
	if err := e.Execute(ctx, p, planner.Observed{}, upPlan(), nil); err != nil {
		t.Fatal(err)
	}
	cs, _ := e.Select(ctx, p, nil, false)
	var exited []string
	stopped, err := e.RunAttached(ctx, p, nil, cs, AttachOptions{Tail: -1},
		func(ContainerInfo, LogLine) {}, func(c ContainerInfo) bool {
			exited = append(exited, c.Name)
			return true
		})
	if err != nil || !stopped || len(exited) == 0 {
		t.Fatalf("stopped = %v, err = %v, exited = %v", stopped, err, exited)
	}
	for _, c := range []string{"proj-db-1", "proj-web-1"} {
		if st := f.rt.byName(c).state; st != planner.StateExited {
			t.Errorf("%s is %s after abort", c, st)
		}
	}
}

func TestWaitTimeout(t *testing.T) {
	f := newFakes()
	f.rt.cs["c1"] = &fakeContainer{cfg: ContainerConfig{ID: "c1", Name: "proj-db-1",
		Labels: map[string]string{planner.LabelProject: "proj", planner.LabelService: "db", planner.LabelNumber: "1", "test.health": "starting"}},
		state: planner.StateRunning}
	e, _ := New(f.config())
	p := testProject()
	have, _ := e.Observe(context.Background(), p)
	x := e.newExec(p, have, NopProgress{})
	x.waitTimeout = 50 * time.Millisecond
	plan := &planner.Plan{Nodes: []planner.Node{{ID: 1, Action: planner.WaitContainer{Service: "db", Condition: spec.ConditionHealthy, Required: true}}}}
	err := x.run(context.Background(), plan)
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "did not become healthy") {
		t.Errorf("err = %v, want ErrTimeout", err)
	}
	// An optional dependency only warns.
	plan.Nodes[0].Action = planner.WaitContainer{Service: "db", Condition: spec.ConditionHealthy, Required: false}
	if err := x.run(context.Background(), plan); err != nil {
		t.Errorf("optional dependency: %v", err)
	}
}

func TestStartStopRmTakeTheProjectLock(t *testing.T) {
	f := newFakes()
	cfg := f.config()
	cfg.RunRoot = t.TempDir()
	e, _ := New(cfg)
	holder, _ := New(Config{RunRoot: cfg.RunRoot, Who: "berth up -d"})
	p := testProject()
	ctx := context.Background()
	unlock, err := holder.Lock(ctx, p.Name, nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func(context.Context, *RecordingProgress) error{
		"stop":  func(ctx context.Context, pr *RecordingProgress) error { return e.Stop(ctx, p, nil, nil, pr) },
		"start": func(ctx context.Context, pr *RecordingProgress) error { return e.Start(ctx, p, nil, pr) },
		"rm": func(ctx context.Context, pr *RecordingProgress) error {
			_, err := e.RemoveStopped(ctx, p, nil, false, pr)
			return err
		},
	} {
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		pr := &RecordingProgress{}
		err := op(cctx, pr)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s while another berth holds the lock: err %v, want it to wait", name, err)
		}
		waited := false
		for _, ev := range pr.Snapshot() {
			waited = waited || strings.Contains(ev.Text, "waiting for the project lock held by") && strings.Contains(ev.Text, "(berth up -d)")
		}
		if !waited {
			t.Errorf("%s did not say whom it waits for: %+v", name, pr.Snapshot())
		}
	}
	unlock()
	if err := e.Stop(ctx, p, nil, nil, nil); err != nil {
		t.Fatalf("stop once the lock is free: %v", err)
	}
}
