package runtime

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/runtime/monitor"
	"github.com/moby/profiles/seccomp"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Config configures a Runtime.
type Config struct {
	Root    string // <berth root>/containers
	RunRoot string // <run root>; the runtime uses <RunRoot>/libct and <RunRoot>/containers
	Logger  *slog.Logger
	// Shim is the binary re-executed for monitors, container init and the --init reaper.
	// Default: $BERTH_SHIM, else "berth-shim" next to the running executable, else the running
	// executable itself. A small shim (runtime/shim) makes starts and monitors much cheaper
	// than re-executing the full berth binary.
	Shim string
}

// Runtime creates and supervises containers. It is safe for concurrent use.
type Runtime struct {
	root      string
	runRoot   string
	libctRoot string
	shim      string
	log       *slog.Logger

	mu      sync.Mutex
	seccomp map[string]*configs.Seccomp // default profile, converted once per capability set

	compileMu sync.Mutex // one seccomp precompilation at a time (seccomp_fast.go)

	helperOnce sync.Once
	helper     string // static binary bind-mounted into containers at initPath; "" when none
	loader     string // static berth-seccomp bind-mounted at seccompLoaderPath; "" when none
}

// New opens (creating if needed) the runtime's directories.
func New(cfg Config) (*Runtime, error) {
	if cfg.Root == "" || cfg.RunRoot == "" {
		return nil, fmt.Errorf("runtime: Root and RunRoot are required: %w", ErrInvalid)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Runtime{
		root:      cfg.Root,
		runRoot:   cfg.RunRoot,
		libctRoot: filepath.Join(cfg.RunRoot, "libct"),
		log:       log,
		seccomp:   map[string]*configs.Seccomp{},
		shim:      findShim(cfg.Shim),
	}
	for _, d := range []string{r.root, r.libctRoot, filepath.Join(r.runRoot, "containers")} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, fmt.Errorf("runtime: create %s: %w", d, err)
		}
	}
	quietLogrus()
	return r, nil
}

// findShim picks the re-exec target (see Config.Shim).
func findShim(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if p := os.Getenv("BERTH_SHIM"); p != "" {
		return p
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "berth-shim")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return "/proc/self/exe"
}

// quietLogrus keeps libcontainer's global logrus logger from writing to the user's terminal;
// libcontainer is the only logrus user in this process that the runtime drives.
func quietLogrus() {
	logrus.SetOutput(io.Discard)
	logrus.SetLevel(logrus.ErrorLevel)
}

func (r *Runtime) dir(id string) string      { return filepath.Join(r.root, id) }
func (r *Runtime) runDir(id string) string   { return filepath.Join(r.runRoot, "containers", id) }
func (r *Runtime) lockPath(id string) string { return filepath.Join(r.runDir(id), "monitor.lock") }
func (r *Runtime) sockPath(id string) string { return filepath.Join(r.runDir(id), "monitor.sock") }

// seccompFor returns the default seccomp profile for a capability set, converted once.
func (r *Runtime) seccompFor(caps []string) (*configs.Seccomp, error) {
	key := strings.Join(caps, ",")
	r.mu.Lock()
	defer r.mu.Unlock()
	if sc, ok := r.seccomp[key]; ok {
		return sc, nil
	}
	s := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps}}}
	ls, err := seccomp.GetDefaultProfile(s)
	if err != nil {
		return nil, fmt.Errorf("default seccomp profile: %w", err)
	}
	sc, err := specconv.SetupSeccomp(ls)
	if err != nil {
		return nil, fmt.Errorf("default seccomp profile: %w", err)
	}
	r.seccomp[key] = sc
	return sc, nil
}

// NewID returns a random 64-hex container ID.
func NewID() string {
	var b [32]byte
	if _, err := io.ReadFull(randReader(), b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 64 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// Create records a new container. It converts the configuration to libcontainer's once, so
// starts are cheap, and fills empty named volumes from the image's content.
func (r *Runtime) Create(ctx context.Context, c ContainerConfig) error {
	if !validID(c.ID) {
		return fmt.Errorf("create: ID %q is not 64 hex digits: %w", c.ID, ErrInvalid)
	}
	if len(c.Args) == 0 {
		return fmt.Errorf("create %s: no command: %w", c.Name, ErrInvalid)
	}
	if c.Rootfs == "" {
		return fmt.Errorf("create %s: no rootfs: %w", c.Name, ErrInvalid)
	}
	if err := monitor.CheckRestart(c.Restart); err != nil {
		return fmt.Errorf("%w: %w", err, ErrInvalid)
	}
	if c.Name == "" {
		c.Name = c.ID[:12]
	}
	if c.Hostname == "" && c.NetNSPath != "host" {
		c.Hostname = c.ID[:12]
	}
	if c.Created.IsZero() {
		c.Created = time.Now().UTC()
	}
	if err := checkName(c.Name); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	dir := r.dir(c.ID)
	created, err := r.reserve(c.Name, c.ID)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			r.unreserve(c.Name, c.ID)
		}
		created()
	}()
	warn := func(msg string) { r.log.Warn(msg, "container", c.Name) }
	lc, err := r.libctConfig(&c, dir, warn)
	if err != nil {
		return fmt.Errorf("create %s: %w", c.Name, err)
	}
	if err := fillVolumes(c.Rootfs, c.Mounts); err != nil {
		return fmt.Errorf("create %s: %w", c.Name, err)
	}
	if lc.Seccomp != nil {
		// The seccomp profile is nearly all of the config (28 of 29 KB for the default one)
		// and a start needs it only when the precompiled program cannot be used: it is kept
		// apart, so that a start does not decode it for nothing.
		if err := writeJSON(filepath.Join(dir, seccompProfileFile), lc.Seccomp); err != nil {
			return err
		}
		lc2 := *lc
		lc2.Seccomp = nil
		lc = &lc2
	}
	if err := writeJSON(filepath.Join(dir, "libct.json"), lc); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "state.json"), State{Status: StatusCreated}); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(dir, "config.json"), c); err != nil {
		return err
	}
	ok = true
	return nil
}

// lockNames serializes name allocation across processes.
func (r *Runtime) lockNames() (func(), error) {
	f, err := os.OpenFile(filepath.Join(r.root, ".names.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock names: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock names: %w", err)
	}
	return func() { f.Close() }, nil
}

// configs reads every container's config.
func (r *Runtime) configs() ([]ContainerConfig, error) {
	dirs, err := r.containerDirs()
	if err != nil {
		return nil, err
	}
	var out []ContainerConfig
	for _, id := range dirs {
		c, err := r.config(id)
		if err != nil {
			continue // being created or removed
		}
		out = append(out, c)
	}
	return out, nil
}

// IDs returns the IDs of every container the runtime knows (those with a config), without
// reading their configs or states: the cheap listing for callers that need only identities.
func (r *Runtime) IDs(ctx context.Context) ([]string, error) {
	dirs, err := r.containerDirs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range dirs {
		if _, err := os.Stat(filepath.Join(r.dir(id), "config.json")); err == nil {
			out = append(out, id)
		}
	}
	return out, nil
}

// containerDirs returns the names of the container directories under the root.
func (r *Runtime) containerDirs() ([]string, error) {
	ents, err := os.ReadDir(r.root)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && validID(e.Name()) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

func (r *Runtime) config(id string) (ContainerConfig, error) {
	var c ContainerConfig
	if err := readJSON(filepath.Join(r.dir(id), "config.json"), &c); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return c, fmt.Errorf("container %s: %w", id, ErrNotFound)
		}
		return c, err
	}
	return c, nil
}

func (r *Runtime) readState(id string) (State, error) {
	var s State
	if err := readJSON(filepath.Join(r.dir(id), "state.json"), &s); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return s, fmt.Errorf("container %s: %w", id, ErrNotFound)
		}
		return s, err
	}
	return s, nil
}

// Resolve finds a container by full ID, unique ID prefix or name.
func (r *Runtime) Resolve(ctx context.Context, ref string) (string, error) {
	if validID(ref) {
		if _, err := os.Stat(r.dir(ref)); err == nil {
			return ref, nil
		}
	}
	if owner, ok := r.nameOwner(trimName(ref)); ok && owner != "" {
		return owner, nil
	}
	all, err := r.configs()
	if err != nil {
		return "", err
	}
	for _, c := range all {
		if c.Name == ref || c.Name == trimName(ref) {
			return c.ID, nil
		}
	}
	var match []string
	for _, c := range all {
		if ref != "" && strings.HasPrefix(c.ID, ref) {
			match = append(match, c.ID)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("no such container: %s: %w", ref, ErrNotFound)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("%s matches %d containers: %w", ref, len(match), ErrAmbiguous)
}

// NameTaken reports whether a container has the name.
func (r *Runtime) NameTaken(ctx context.Context, name string) (bool, error) {
	if owner, ok := r.nameOwner(name); ok {
		return owner != "", nil
	}
	all, err := r.configs()
	if err != nil {
		return false, err
	}
	for _, c := range all {
		if c.Name == name {
			return true, nil
		}
	}
	return false, nil
}

// Rename changes a container's name.
func (r *Runtime) Rename(ctx context.Context, id, name string) error {
	unlock, err := r.lockNames()
	if err != nil {
		return err
	}
	defer unlock()
	if err := checkName(name); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	c, err := r.config(id)
	if err != nil {
		return err
	}
	if c.Name == name {
		return nil
	}
	if err := r.claimName(name, id); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	old := c.Name
	c.Name = name
	if err := writeJSON(filepath.Join(r.dir(id), "config.json"), c); err != nil {
		r.releaseName(name, id)
		return err
	}
	r.releaseName(old, id)
	return nil
}

// monitorAlive reports whether the container's monitor holds its lock.
func (r *Runtime) monitorAlive(id string) bool {
	f, err := os.Open(r.lockPath(id))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	return false
}

// Inspect returns the container's true state. When the state file says the container runs but
// its monitor is gone, the state is repaired: a container whose process survived is reported
// running (its output is no longer collected), otherwise exited, both with an Error.
func (r *Runtime) Inspect(ctx context.Context, id string) (State, error) {
	st, err := r.readState(id)
	if err != nil {
		return st, err
	}
	if !st.Running() {
		return st, nil
	}
	if r.monitorAlive(id) {
		// Only Pause leaves the marker, so the (costly) freezer check is skipped for the
		// common case of a running container that nobody paused.
		if st.Status == StatusRunning && r.pausedMarked(id) {
			if ct, err := libcontainer.Load(r.libctRoot, id); err == nil {
				if s, err := ct.Status(); err == nil && s == libcontainer.Paused {
					st.Status = StatusPaused
				}
			}
		}
		return st, nil
	}
	// The monitor may have just finished: re-read before repairing.
	if st2, err := r.readState(id); err == nil && !st2.Running() {
		return st2, nil
	}
	ct, err := libcontainer.Load(r.libctRoot, id)
	if err == nil {
		if s, err := ct.Status(); err == nil && (s == libcontainer.Running || s == libcontainer.Paused) {
			st.Status = StatusRunning
			if s == libcontainer.Paused {
				st.Status = StatusPaused
			}
			st.Error = "monitor exited; output is not collected and the restart policy is not applied"
			return st, nil
		}
		_ = ct.Destroy()
	}
	st.Status = StatusExited
	st.Pid = 0
	if st.ExitCode == 0 {
		st.ExitCode = 255
	}
	st.Error = "monitor exited unexpectedly"
	st.FinishedAt = time.Now().UTC()
	st.Health = healthStopped(st.Health)
	if err := writeJSON(filepath.Join(r.dir(id), "state.json"), st); err != nil {
		return st, err
	}
	return st, nil
}

func healthStopped(h *Health) *Health {
	if h == nil {
		return nil
	}
	h2 := *h
	h2.Status = HealthUnhealthy
	return &h2
}

// Get returns one container's config and state.
func (r *Runtime) Get(ctx context.Context, id string) (Container, error) {
	c, err := r.config(id)
	if err != nil {
		return Container{}, err
	}
	st, err := r.Inspect(ctx, id)
	if err != nil {
		return Container{}, err
	}
	return Container{Config: c, State: st}, nil
}

// List returns every container, oldest first.
func (r *Runtime) List(ctx context.Context) ([]Container, error) {
	dirs, err := r.containerDirs()
	if err != nil {
		return nil, err
	}
	// Reading a container is a handful of small reads and a lock probe: cheap each, but with
	// many containers the syscalls dominate, so a few readers share the directories.
	found := make([]*Container, len(dirs))
	var g errgroup.Group
	g.SetLimit(listReaders)
	for i, id := range dirs {
		g.Go(func() error {
			c, err := r.config(id)
			if err != nil {
				return nil // being created or removed
			}
			if st, err := r.Inspect(ctx, c.ID); err == nil {
				found[i] = &Container{Config: c, State: st}
			}
			return nil
		})
	}
	g.Wait()
	out := make([]Container, 0, len(dirs))
	for _, c := range found {
		if c != nil {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Config.Created.Before(out[j].Config.Created) })
	return out, nil
}

// listReaders bounds the goroutines List reads containers with.
const listReaders = 8

// Stop sends the stop signal and, after timeout (the container's StopTimeout, or 10s, when
// timeout < 0), SIGKILL; it returns once the container has exited. Stopping a stopped
// container is not an error.
func (r *Runtime) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := r.config(id)
	if err != nil {
		return err
	}
	if timeout < 0 {
		timeout = c.StopTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
	}
	sig, err := ParseSignal(c.StopSignal)
	if err != nil {
		sig = syscall.SIGTERM
	}
	if r.monitorAlive(id) {
		_, err := r.request(ctx, id, fmt.Sprintf("stop %d %d", int(sig), timeout.Milliseconds()))
		if err == nil || !errors.Is(err, errNoMonitor) {
			return err
		}
	}
	// No monitor: signal the orphan directly, then repair the state.
	st, err := r.Inspect(ctx, id)
	if err != nil {
		return err
	}
	if !st.Running() {
		return nil
	}
	if ct, err := libcontainer.Load(r.libctRoot, id); err == nil {
		_ = ct.Signal(sig)
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if s, err := ct.Status(); err != nil || s == libcontainer.Stopped {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		_ = ct.Signal(unix.SIGKILL)
		_ = ct.Destroy()
	}
	st.Status = StatusExited
	st.Pid = 0
	st.StoppedByUser = true
	st.FinishedAt = time.Now().UTC()
	return writeJSON(filepath.Join(r.dir(id), "state.json"), st)
}

// Kill sends sig to the container's main process.
func (r *Runtime) Kill(ctx context.Context, id string, sig syscall.Signal) error {
	if _, err := r.config(id); err != nil {
		return err
	}
	if r.monitorAlive(id) {
		_, err := r.request(ctx, id, fmt.Sprintf("kill %d", int(sig)))
		if err == nil || !errors.Is(err, errNoMonitor) {
			return err
		}
	}
	ct, err := libcontainer.Load(r.libctRoot, id)
	if err != nil {
		return fmt.Errorf("kill %s: %w", id, ErrNotRunning)
	}
	if err := ct.Signal(sig); err != nil {
		return fmt.Errorf("kill %s: %w: %w", id, err, ErrNotRunning)
	}
	return nil
}

// Pause freezes every process of the container.
func (r *Runtime) Pause(ctx context.Context, id string) error {
	ct, err := libcontainer.Load(r.libctRoot, id)
	if err != nil {
		return fmt.Errorf("pause %s: %w", id, ErrNotRunning)
	}
	// The marker goes first: a container frozen without it would be reported running.
	if err := os.WriteFile(r.pausedPath(id), nil, 0o600); err != nil {
		return fmt.Errorf("pause %s: %w", id, err)
	}
	if err := ct.Pause(); err != nil {
		_ = os.Remove(r.pausedPath(id))
		return fmt.Errorf("pause %s: %w", id, err)
	}
	return nil
}

// pausedPath marks a container that Pause froze; Inspect asks the freezer only when it exists.
func (r *Runtime) pausedPath(id string) string { return filepath.Join(r.runDir(id), "paused") }

func (r *Runtime) pausedMarked(id string) bool {
	_, err := os.Stat(r.pausedPath(id))
	return err == nil
}

// Unpause thaws a paused container.
func (r *Runtime) Unpause(ctx context.Context, id string) error {
	ct, err := libcontainer.Load(r.libctRoot, id)
	if err != nil {
		return fmt.Errorf("unpause %s: %w", id, ErrNotRunning)
	}
	if err := ct.Resume(); err != nil {
		return fmt.Errorf("unpause %s: %w", id, err)
	}
	if err := os.Remove(r.pausedPath(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("unpause %s: %w", id, err)
	}
	return nil
}

// Wait blocks until the container is stopped (not restarting) and returns its exit code. It
// blocks on the monitor's socket, so it costs nothing while waiting.
func (r *Runtime) Wait(ctx context.Context, id string) (int, error) {
	for {
		st, err := r.Inspect(ctx, id)
		if err != nil {
			return -1, err
		}
		if !st.Running() {
			return st.ExitCode, nil
		}
		if !r.monitorAlive(id) {
			// An orphan without monitor: poll its process.
			select {
			case <-ctx.Done():
				return -1, ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		_, err = r.request(ctx, id, "wait")
		if err != nil && !errors.Is(err, errNoMonitor) {
			return -1, err
		}
		if err != nil {
			// The monitor vanished between the check and the request.
			select {
			case <-ctx.Done():
				return -1, ctx.Err()
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

// Remove deletes a stopped container (with force, stops it first with SIGKILL). A missing
// container is not an error. When the rootfs is still mounted under the container's
// directory it is unmounted first.
func (r *Runtime) Remove(ctx context.Context, id string, force bool) error {
	c, err := r.config(id)
	if errors.Is(err, ErrNotFound) {
		if _, err := os.Stat(r.dir(id)); err != nil {
			return nil
		}
	}
	st, serr := r.Inspect(ctx, id)
	if serr == nil && st.Running() {
		if !force {
			return fmt.Errorf("remove %s: stop it first or force: %w", c.Name, ErrRunning)
		}
		if err := r.Stop(ctx, id, 0); err != nil && !errors.Is(err, ErrNotRunning) {
			return fmt.Errorf("remove %s: %w", c.Name, err)
		}
	}
	// Wait (up to 5s) for the monitor to let go: it exits right after the container stops,
	// usually within a millisecond or two, so poll fast first.
	for d, waited := 500*time.Microsecond, time.Duration(0); waited < 5*time.Second && r.monitorAlive(id); waited += d {
		time.Sleep(d)
		d = min(2*d, 20*time.Millisecond)
	}
	if ct, err := libcontainer.Load(r.libctRoot, id); err == nil {
		_ = ct.Signal(unix.SIGKILL)
		_ = ct.Destroy()
	}
	dir := r.dir(id)
	if c.Rootfs != "" && strings.HasPrefix(c.Rootfs, dir+string(os.PathSeparator)) {
		_ = unix.Unmount(c.Rootfs, unix.MNT_DETACH)
	}
	r.releaseShm(id)
	if err := os.RemoveAll(r.runDir(id)); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	if c.Name != "" {
		if unlock, err := r.lockNames(); err == nil {
			r.releaseName(c.Name, id)
			unlock()
		}
	}
	return nil
}

// Processes returns the host PIDs of the container's processes.
func (r *Runtime) Processes(ctx context.Context, id string) ([]int, error) {
	ct, err := libcontainer.Load(r.libctRoot, id)
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", id, ErrNotRunning)
	}
	pids, err := ct.Processes()
	if err != nil {
		return nil, fmt.Errorf("top %s: %w", id, err)
	}
	slices.Sort(pids)
	return pids, nil
}

// Stats is a snapshot of a container's resource usage.
type Stats struct {
	CPUUsage    uint64 // total CPU time, ns
	MemoryUsage uint64 // bytes
	MemoryLimit uint64 // bytes
	Pids        uint64
}

// Stats reads the container's cgroup counters.
func (r *Runtime) Stats(ctx context.Context, id string) (Stats, error) {
	ct, err := libcontainer.Load(r.libctRoot, id)
	if err != nil {
		return Stats{}, fmt.Errorf("stats %s: %w", id, ErrNotRunning)
	}
	s, err := ct.Stats()
	if err != nil || s.CgroupStats == nil {
		return Stats{}, fmt.Errorf("stats %s: %w", id, err)
	}
	cs := s.CgroupStats
	return Stats{
		CPUUsage:    cs.CpuStats.CpuUsage.TotalUsage,
		MemoryUsage: cs.MemoryStats.Usage.Usage,
		MemoryLimit: cs.MemoryStats.Usage.Limit,
		Pids:        cs.PidsStats.Current,
	}, nil
}

// writeJSON writes v crash-safely: temp file, fsync, rename.
func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	return writeFileAtomic(path, b, 0o600)
}

func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	if err := monitor.WriteFileAtomic(path, b, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decode %s: %w", path, err)
	}
	return nil
}

// SetAutoRemove makes a created container remove itself when it exits: with cmd, the monitor
// runs cmd; without, it removes the runtime state only.
func (r *Runtime) SetAutoRemove(ctx context.Context, id string, cmd []string) error {
	c, err := r.config(id)
	if err != nil {
		return err
	}
	c.AutoRemove = true
	c.AutoRemoveCmd = cmd
	return writeJSON(filepath.Join(r.dir(id), "config.json"), c)
}
