// Package monitor is the per-container monitor: the process that owns a container after the
// CLI exits. It pumps the container's output into the JSON-lines log, serves the CLI's
// requests (wait, stop, kill, attach) on a unix socket, records the exit code and OOM kills in
// state.json, applies the restart policy and runs the healthcheck schedule.
//
// Its memory is paid once per container, so it stays small: it links only the standard
// library's basics and x/sys, never libcontainer. Everything that needs libcontainer runs in
// short-lived children, modes of the runtime's shim binary:
//
//	SHIM __start ROOT RUNROOT ID MODE    create and run the container with the stdio the
//	                                     monitor passes; report "ok PID MEMCG FREEZER PIDNS" or
//	                                     "err MSG" on fd 3 and exit (MODE: tty, pipes, stdin)
//	SHIM __health ROOT RUNROOT ID NS     run one healthcheck probe with a timeout of NS
//	                                     nanoseconds; print "CODE START END" and its output
//	SHIM __destroy ROOT RUNROOT ID [remove]  tear down libcontainer's state (and with remove,
//	                                     remove the container)
//
// The monitor is a child subreaper: when __start exits, the container's init becomes the
// monitor's child, and the monitor reaps it (and every other orphan) itself.
package monitor

import (
	"bufio"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Modes of the shim that the monitor runs, and the monitor's own.
const (
	Arg        = "__monitor"
	StartArg   = "__start"
	HealthArg  = "__health"
	DestroyArg = "__destroy"
)

// ErrAlreadyMonitored is the start report of a monitor that found another one running the
// container.
const ErrAlreadyMonitored = "another monitor runs this container"

// monitor supervises one container.
type monitor struct {
	root, runRoot, id, shim string
	dir, runDir             string
	cfg                     config
	policy                  restartPolicy
	logw                    *LogWriter
	reaper                  *reaper
	tr                      func(string)

	mu       sync.Mutex
	st       State
	pid      int // the container's init, 0 when not running
	memcg    string
	freezer  string
	sharedNS bool // the container shares a PID namespace: SIGKILL goes to its whole cgroup
	runDone  chan struct{}
	exited   <-chan syscall.WaitStatus
	stdin    *os.File // stdin pipe or the pty
	pty      *os.File
	ptyFd    int
	clients  map[*client]struct{}
	stopping bool
	stopCh   chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed after the final exit was recorded
	pending  sync.WaitGroup
	attachCh chan struct{} // first attach arrived (attach mode)
	attached sync.Once
	readers  *sync.WaitGroup // output copiers of the current process
	hstop    chan struct{}   // closed to stop the current healthcheck loop
	hdone    chan struct{}   // closed when it stopped
}

type client struct {
	mu   sync.Mutex
	conn *os.File
}

func (c *client) send(typ byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return WriteFrame(c.conn, typ, p)
}

// Main is the body of `berth-monitor ROOT RUNROOT ID MODE SHIM` (also `SHIM __monitor ...`).
// MODE is "detached" or "attach"; SHIM is the binary whose modes run libcontainer. Its start
// report goes to fd 3: "ok", or "err <reason>"; in attach mode it first writes "ready" and
// waits for a client. It returns the process' exit status.
func Main(args []string) int {
	status := os.NewFile(3, "status")
	if status != nil {
		syscall.CloseOnExec(3)
	}
	report := func(msg string) {
		if status != nil {
			_, _ = io.WriteString(status, msg+"\n")
		}
	}
	closeStatus := func() {
		if status != nil {
			status.Close()
			status = nil
		}
	}
	defer closeStatus()
	if len(args) == 4 {
		exe, err := os.Executable()
		if err != nil {
			report("err " + err.Error())
			return 1
		}
		args = append(args, exe)
	}
	if len(args) != 5 {
		report("err usage: __monitor ROOT RUNROOT ID MODE SHIM")
		return 2
	}
	tr := Tracer()
	tr("monitor-init")
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
	root, runRoot, id, mode := args[0], args[1], args[2], args[3]
	m := &monitor{root: root, runRoot: runRoot, id: id, shim: args[4],
		dir: filepath.Join(root, id), runDir: filepath.Join(runRoot, "containers", id),
		clients: map[*client]struct{}{}, stopCh: make(chan struct{}), done: make(chan struct{}),
		attachCh: make(chan struct{}), tr: tr}
	m.reaper = newReaper()

	lock, err := os.OpenFile(filepath.Join(m.runDir, "monitor.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		report("err " + err.Error())
		return 1
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		report("err " + ErrAlreadyMonitored)
		return 1
	}
	if err := m.load(); err != nil {
		report("err " + err.Error())
		return 1
	}
	sock := filepath.Join(m.runDir, "monitor.sock")
	ln, err := listen(sock)
	if err != nil {
		report("err monitor socket: " + err.Error())
		return 1
	}
	go m.serve(ln)
	tr("listen")
	if mode == "attach" {
		report("ready")
		select {
		case <-m.attachCh:
		case <-time.After(time.Minute):
			report("err no client attached")
			ln.Close()
			return 1
		}
	}
	tr("attached")
	code := m.loop(func(err error) {
		tr("started")
		if err != nil {
			report("err " + err.Error())
		} else {
			report("ok")
		}
		closeStatus()
	})
	tr("exited")
	// Give waiters a moment to receive the final state, then go.
	waited := make(chan struct{})
	go func() { m.pending.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(2 * time.Second):
	}
	ln.Close()
	_ = os.Remove(sock)
	tr("closed")
	if m.cfg.AutoRemove && code >= 0 {
		lock.Close()
		if len(m.cfg.AutoRemoveCmd) > 0 {
			m.runHelper(lookPath(m.cfg.AutoRemoveCmd[0]), m.cfg.AutoRemoveCmd, time.Minute)
		} else {
			m.runHelper(m.shim, []string{"berth-destroy", DestroyArg, m.root, m.runRoot, m.id, "remove"}, time.Minute)
		}
	}
	return 0
}

// lookPath finds a command without a slash in $PATH, as a shell would.
func lookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	for _, d := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

// Tracer logs phase timings to stderr (monitor.log) when BERTH_TRACE is set.
func Tracer() func(string) {
	if os.Getenv("BERTH_TRACE") == "" {
		return func(string) {}
	}
	last := time.Now()
	return func(phase string) {
		now := time.Now()
		ms := strconv.FormatFloat(float64(now.Sub(last).Microseconds())/1000, 'f', 1, 64)
		line := "trace " + phase + strings.Repeat(" ", max(0, 12-len(phase))) + " +" +
			strings.Repeat(" ", max(0, 6-len(ms))) + ms + "ms\n"
		_, _ = os.Stderr.WriteString(line)
		last = now
	}
}

// logError writes one line to the monitor's stderr (monitor.log).
func (m *monitor) logError(msg string, err error) {
	b := time.Now().UTC().AppendFormat(nil, "time=2006-01-02T15:04:05.000Z07:00")
	b = append(b, " level=ERROR msg="...)
	b = append(b, msg...)
	b = append(b, " container="...)
	b = append(b, m.id[:min(12, len(m.id))]...)
	if err != nil {
		b = append(b, " err="...)
		b = strconv.AppendQuote(b, err.Error())
	}
	b = append(b, '\n')
	_, _ = os.Stderr.Write(b)
}

func (m *monitor) load() error {
	b, err := os.ReadFile(filepath.Join(m.dir, "config.json"))
	if err != nil {
		return err
	}
	c, err := parseConfig(b)
	if err != nil {
		return errors.New("decode config.json: " + err.Error())
	}
	m.cfg = c
	p, err := parseRestart(c.Restart)
	if err != nil {
		return err
	}
	m.policy = p
	b, err = os.ReadFile(filepath.Join(m.dir, "state.json"))
	if err != nil {
		return err
	}
	st, err := ParseState(b)
	if err != nil {
		return errors.New("decode state.json: " + err.Error())
	}
	m.st = st
	m.st.StoppedByUser = false
	m.st.Error = ""
	m.st.MonitorPid = os.Getpid()
	lw, err := OpenLogWriter(filepath.Join(m.dir, "log"), c.LogMaxSize, c.LogMaxFiles)
	if err != nil {
		return errors.New("open log: " + err.Error())
	}
	m.logw = lw
	return nil
}

// writeState persists m.st; the caller holds m.mu.
func (m *monitor) writeState() {
	if err := WriteFileAtomic(filepath.Join(m.dir, "state.json"), m.st.AppendJSON(nil), 0o600); err != nil {
		m.logError("write state", err)
	}
}

// loop starts the container, waits for it and applies the restart policy. started is called
// once with the result of the first start. It returns the final exit code (-1 when the first
// start failed).
func (m *monitor) loop(started func(error)) int {
	var n int // consecutive quick restarts
	first := true
	code := -1
	for {
		t0 := time.Now()
		err := m.startProcess()
		if err != nil {
			m.logError("start", err)
			if first {
				m.mu.Lock()
				m.st.Error = err.Error()
				if m.st.Status != statusCreated {
					m.st.Status = statusExited
					m.st.ExitCode = startErrorCode(err)
				}
				m.st.Pid = 0
				m.writeState()
				m.mu.Unlock()
				started(err)
				close(m.done)
				m.closeClients(startErrorCode(err))
				return -1
			}
			code = startErrorCode(err)
			m.mu.Lock()
			m.st.Error = err.Error()
			m.st.ExitCode = code
			m.mu.Unlock()
		} else {
			if first {
				started(nil)
			}
			code = m.waitProcess()
		}
		first = false
		m.mu.Lock()
		stopping := m.stopping
		restarts := m.st.RestartCount
		m.mu.Unlock()
		if !m.policy.shouldRestart(code, restarts, stopping) {
			break
		}
		if time.Since(t0) >= 10*time.Second {
			n = 0
		}
		d := backoff(n)
		n++
		m.mu.Lock()
		m.st.Status = statusRestarting
		m.st.RestartCount++
		m.writeState()
		m.mu.Unlock()
		select {
		case <-time.After(d):
		case <-m.stopCh:
		}
		m.mu.Lock()
		stopping = m.stopping
		m.mu.Unlock()
		if stopping {
			break
		}
	}
	m.mu.Lock()
	m.st.Status = statusExited
	m.st.Pid = 0
	m.writeState()
	m.mu.Unlock()
	m.logw.Close()
	close(m.done)
	return code
}

func startErrorCode(err error) int {
	s := err.Error()
	if strings.Contains(s, "no such file") || strings.Contains(s, "not found") {
		return 127
	}
	return 126
}

// pipe returns a pipe whose ends are close-on-exec and blocking.
func pipe() (r, w int, err error) {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		return -1, -1, err
	}
	return p[0], p[1], nil
}

// pollable wraps fd, made non-blocking, in an *os.File served by the runtime's poller.
func pollable(fd int, name string) *os.File {
	_ = syscall.SetNonblock(fd, true)
	return os.NewFile(uintptr(fd), name)
}

func closeFds(fds ...int) {
	for _, fd := range fds {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}

// startProcess runs `SHIM __start`, which creates the container and starts its init with the
// stdio made here, and takes the container over.
func (m *monitor) startProcess() (err error) {
	m.reaper.forget()
	repR, repW, err := pipe()
	if err != nil {
		return err
	}
	rep := pollable(repR, "report") // read through the poller: no thread blocks on it
	defer rep.Close()
	files := []int{0, 1, 2, repW}
	var (
		mode        string
		parentEnds  []int // kept: output read ends, stdin write end, console socket
		childEnds   = []int{repW}
		outR, errR  = -1, -1
		inW, consol = -1, -1
	)
	defer func() {
		closeFds(childEnds...)
		if err != nil {
			closeFds(parentEnds...)
		}
	}()
	if m.cfg.Tty {
		mode = "tty"
		sp, serr := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
		if serr != nil {
			return serr
		}
		consol = sp[0]
		parentEnds = append(parentEnds, sp[0])
		childEnds = append(childEnds, sp[1])
		files = append(files, sp[1])
	} else {
		mode = "pipes"
		var outW, errW int
		if outR, outW, err = pipe(); err != nil {
			return err
		}
		parentEnds, childEnds = append(parentEnds, outR), append(childEnds, outW)
		if errR, errW, err = pipe(); err != nil {
			return err
		}
		parentEnds, childEnds = append(parentEnds, errR), append(childEnds, errW)
		files = append(files, outW, errW)
		if m.cfg.OpenStdin {
			mode = "stdin"
			var inR int
			if inR, inW, err = pipe(); err != nil {
				return err
			}
			parentEnds, childEnds = append(parentEnds, inW), append(childEnds, inR)
			files = append(files, inR)
		}
	}
	m.tr("pre-start")
	helper, helperExit, err := m.reaper.spawn(m.shim, []string{"berth-start", StartArg, m.root, m.runRoot, m.id, mode}, files)
	if err != nil {
		return errors.New("run start helper: " + err.Error())
	}
	closeFds(childEnds...)
	childEnds = nil
	line := readLine(rep, 64<<10)
	m.tr("start-helper")
	rest, ok := strings.CutPrefix(line, "ok ")
	if !ok {
		if msg, ok := strings.CutPrefix(line, "err "); ok {
			return errors.New(msg)
		}
		ws := <-helperExit
		return errors.New("start helper " + strconv.Itoa(helper) + " exited with status " + strconv.Itoa(exitCode(ws)) + " without a report (see monitor.log)")
	}
	f := strings.Split(rest, " ")
	pid, perr := strconv.Atoi(f[0])
	if perr != nil || pid <= 0 || len(f) < 3 {
		return errors.New("start helper: bad report " + strconv.Quote(line))
	}
	exited := m.reaper.wait(pid)
	unpath := func(s string) string {
		if s == "-" {
			return ""
		}
		return s
	}
	memcg, freezer := unpath(f[1]), unpath(f[2])
	sharedNS := len(f) > 3 && f[3] == "shared"
	var pty *os.File
	ptyFd := -1
	if consol >= 0 {
		ptyFd, err = recvFd(consol)
		if err != nil {
			_ = m.reaper.signal(pid, syscall.SIGKILL)
			<-exited
			m.destroy()
			return errors.New("receive console: " + err.Error())
		}
		closeFds(consol)
		parentEnds = nil
		pty = pollable(ptyFd, "pty")
	}
	runDone := make(chan struct{})
	var readers sync.WaitGroup
	copyOut := func(stream int, f *os.File) {
		defer readers.Done()
		buf := make([]byte, 16<<10)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				m.output(stream, buf[:n])
			}
			if err != nil {
				if f != pty { // the pty stays open for stdin until the exit
					f.Close()
				}
				return
			}
		}
	}
	var stdout, stderr *os.File
	if pty == nil {
		stdout, stderr = pollable(outR, "stdout"), pollable(errR, "stderr")
	}
	m.mu.Lock()
	m.pid, m.exited, m.runDone = pid, exited, runDone
	m.memcg, m.freezer, m.sharedNS = memcg, freezer, sharedNS
	m.pty, m.ptyFd = pty, ptyFd
	m.stdin = nil
	if inW >= 0 {
		m.stdin = pollable(inW, "stdin")
	} else if pty != nil {
		m.stdin = pty
	}
	m.st.Status = statusRunning
	m.st.Pid = pid
	m.st.StartedAt = time.Now().UTC()
	m.st.FinishedAt = time.Time{}
	m.st.ExitCode = 0
	m.st.OOMKilled = false
	m.st.Error = ""
	if healthEnabled(m.cfg.Healthcheck) {
		m.st.Health = &Health{Status: healthStarting}
	}
	m.writeState()
	stopping := m.stopping
	m.mu.Unlock()
	if pty != nil {
		readers.Add(1)
		go copyOut(FrameStdout, pty)
	} else {
		readers.Add(2)
		go copyOut(FrameStdout, stdout)
		go copyOut(FrameStderr, stderr)
	}
	m.readers = &readers
	if stopping {
		m.kill(syscall.SIGKILL)
	}
	m.hstop, m.hdone = make(chan struct{}), make(chan struct{})
	go m.healthLoop(m.hstop, m.hdone)
	return nil
}

// readLine reads from r up to the first newline or EOF (at most max bytes).
func readLine(r io.Reader, max int) string {
	var b []byte
	buf := make([]byte, 512)
	for len(b) < max {
		n, err := r.Read(buf)
		b = append(b, buf[:n]...)
		if i := strings.IndexByte(string(b), '\n'); i >= 0 {
			return string(b[:i])
		}
		if err != nil {
			break
		}
	}
	return strings.TrimSpace(string(b))
}

// recvFd receives one file descriptor sent with SCM_RIGHTS on the unix socket fd.
func recvFd(sock int) (int, error) {
	tv := syscall.Timeval{Sec: 10}
	_ = syscall.SetsockoptTimeval(sock, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	buf := make([]byte, 4096)
	oob := make([]byte, syscall.CmsgSpace(4*4))
	for {
		_, oobn, _, _, err := syscall.Recvmsg(sock, buf, oob, syscall.MSG_CMSG_CLOEXEC)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return -1, err
		}
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return -1, err
		}
		for _, msg := range msgs {
			fds, err := syscall.ParseUnixRights(&msg)
			if err != nil || len(fds) == 0 {
				continue
			}
			closeFds(fds[1:]...)
			return fds[0], nil
		}
		return -1, errors.New("no file descriptor received")
	}
}

// waitProcess waits for the container's init, records its exit and tears the container down.
func (m *monitor) waitProcess() int {
	m.mu.Lock()
	exited, readers := m.exited, m.readers
	m.mu.Unlock()
	ws := <-exited
	m.tr("wait")
	code := exitCode(ws)
	close(m.hstop)
	<-m.hdone
	oom := m.oomKilled()
	// Every process of the PID namespace is gone with its init; the output pipes drain now.
	waitTimeout(readers, 2*time.Second)
	m.logw.Flush()
	m.tr("oom+drain")
	m.destroy()
	m.tr("destroy")
	m.mu.Lock()
	close(m.runDone)
	if m.stdin != nil && m.stdin != m.pty {
		m.stdin.Close()
	}
	if m.pty != nil {
		m.pty.Close()
	}
	m.stdin, m.pty, m.ptyFd, m.pid = nil, nil, -1, 0
	m.st.Status = statusExited
	m.st.ExitCode = code
	m.st.OOMKilled = oom
	m.st.Pid = 0
	m.st.FinishedAt = time.Now().UTC()
	m.writeState()
	m.mu.Unlock()
	_ = os.Remove(filepath.Join(m.runDir, "paused"))
	m.closeClients(code)
	return code
}

// destroy removes libcontainer's state and cgroups of the exited container. The common case
// is done here, as libcontainer's Destroy does it for a stopped container, which saves the
// start of a shim on the way of every exit (and so of every `run --rm`); anything else goes
// to `SHIM __destroy`.
func (m *monitor) destroy() {
	if m.destroyHere() {
		return
	}
	m.runHelper(m.shim, []string{"berth-destroy", DestroyArg, m.root, m.runRoot, m.id}, 30*time.Second)
}

// destroyHere removes the container's cgroups and libcontainer state directory, and reports
// whether that was all there was to do: false for hooks, Intel RDT, the systemd cgroup driver
// or a cgroup that would not go.
func (m *monitor) destroyHere() bool {
	stateDir := filepath.Join(m.runRoot, "libct", m.id)
	b, err := os.ReadFile(filepath.Join(stateDir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	v, err := parseJSON(b)
	st, _ := v.(map[string]any)
	if err != nil || st == nil {
		return false
	}
	o := object(st)
	cfg := o.obj("config")
	if cfg == nil || o.str("intel_rdt_path") != "" || cfg.obj("cgroups").bool("systemd") {
		return false
	}
	for _, h := range cfg.obj("hooks") {
		if a, _ := h.([]any); len(a) > 0 {
			return false
		}
	}
	m.mu.Lock()
	shared, freezer := m.sharedNS, m.freezer
	m.mu.Unlock()
	if shared && freezer != "" {
		// The init's exit did not end the other processes of a shared PID namespace.
		if b, err := os.ReadFile(filepath.Join(freezer, "cgroup.procs")); err == nil {
			for _, s := range strings.Fields(string(b)) {
				if p, err := strconv.Atoi(s); err == nil && p > 0 {
					_ = syscall.Kill(p, syscall.SIGKILL)
				}
			}
		}
	}
	ok := true
	for _, p := range o.obj("cgroup_paths") {
		dir, _ := p.(string)
		if dir == "" || !strings.HasPrefix(dir, "/sys/fs/cgroup/") {
			continue
		}
		if err := removeCgroup(dir, 0); err != nil {
			m.logError("remove cgroup", err)
			ok = false
		}
	}
	if !ok {
		return false
	}
	return os.RemoveAll(stateDir) == nil
}

// removeCgroup removes a cgroup directory and its sub-cgroups (rmdir only: a cgroup's files go
// with it), retrying while the kernel still counts exiting tasks in it.
func removeCgroup(dir string, depth int) error {
	if err := syscall.Rmdir(dir); err == nil || err == syscall.ENOENT {
		return nil
	}
	if depth < 16 {
		if ents, err := os.ReadDir(dir); err == nil {
			for _, e := range ents {
				if e.IsDir() {
					_ = removeCgroup(filepath.Join(dir, e.Name()), depth+1)
				}
			}
		}
	}
	delay := time.Millisecond
	for tries := 0; ; tries++ {
		err := syscall.Rmdir(dir)
		switch {
		case err == nil || err == syscall.ENOENT:
			return nil
		case err == syscall.EINTR:
			continue
		case err == syscall.EBUSY && tries < 10:
			time.Sleep(delay)
			delay *= 2
			continue
		}
		return &os.PathError{Op: "rmdir", Path: dir, Err: err}
	}
}

// runHelper runs a command with the monitor's stderr and waits for it (at most timeout).
func (m *monitor) runHelper(path string, argv []string, timeout time.Duration) {
	pid, ch, err := m.reaper.spawn(path, argv, []int{0, 2, 2})
	if err != nil {
		m.logError(argv[0], err)
		return
	}
	select {
	case ws := <-ch:
		if c := exitCode(ws); c != 0 {
			m.logError(argv[0]+" exited with status "+strconv.Itoa(c), nil)
		}
	case <-time.After(timeout):
		_ = m.reaper.signal(pid, syscall.SIGKILL)
		m.logError(argv[0]+" timed out", nil)
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	if wg == nil {
		return
	}
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(d):
	}
}

// oomKilled reports whether the kernel's OOM killer fired in the container's memory cgroup
// (v1: memory.oom_control, v2: memory.events).
func (m *monitor) oomKilled() bool {
	if m.memcg == "" {
		return false
	}
	if n := cgroupCounter(filepath.Join(m.memcg, "memory.oom_control"), "oom_kill"); n >= 0 {
		return n > 0
	}
	return cgroupCounter(filepath.Join(m.memcg, "memory.events"), "oom_kill") > 0
}

// cgroupCounter returns the value of key in a flat-keyed cgroup file, -1 when the file is
// missing.
func cgroupCounter(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// thaw resumes a frozen (paused) container.
func (m *monitor) thaw() {
	m.mu.Lock()
	dir := m.freezer
	m.mu.Unlock()
	if dir == "" {
		return
	}
	if b, err := os.ReadFile(filepath.Join(dir, "freezer.state")); err == nil {
		if strings.TrimSpace(string(b)) != "THAWED" {
			_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
		}
	} else if b, err := os.ReadFile(filepath.Join(dir, "cgroup.freeze")); err == nil {
		if strings.TrimSpace(string(b)) != "0" {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
		}
	} else {
		return
	}
	_ = os.Remove(filepath.Join(m.runDir, "paused"))
}

// kill sends sig to the container's init; SIGKILL also thaws a paused container and, when the
// container shares a PID namespace, goes to every process of its cgroup.
func (m *monitor) kill(sig syscall.Signal) error {
	m.mu.Lock()
	pid, shared, dir := m.pid, m.sharedNS, m.freezer
	m.mu.Unlock()
	if pid == 0 {
		return errNotRunning
	}
	if err := m.reaper.signal(pid, sig); err != nil {
		if err == syscall.ESRCH {
			return errNotRunning
		}
		return err
	}
	if sig == syscall.SIGKILL {
		if shared && dir != "" {
			if b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
				for _, s := range strings.Fields(string(b)) {
					if p, err := strconv.Atoi(s); err == nil && p > 0 {
						_ = syscall.Kill(p, sig)
					}
				}
			}
		}
		m.thaw()
	}
	return nil
}

var errNotRunning = errors.New("container is not running")

const prSetChildSubreaper = 36 // PR_SET_CHILD_SUBREAPER

// output records container output and copies it to attached clients.
func (m *monitor) output(stream int, p []byte) {
	m.logw.Write(stream, p)
	m.mu.Lock()
	if len(m.clients) == 0 {
		m.mu.Unlock()
		return
	}
	clients := make([]*client, 0, len(m.clients))
	for c := range m.clients {
		clients = append(clients, c)
	}
	m.mu.Unlock()
	for _, c := range clients {
		if c.send(byte(stream), p) != nil {
			m.dropClient(c)
		}
	}
}

func (m *monitor) dropClient(c *client) {
	m.mu.Lock()
	delete(m.clients, c)
	m.mu.Unlock()
	c.conn.Close()
}

func (m *monitor) closeClients(code int) {
	m.mu.Lock()
	clients := m.clients
	m.clients = map[*client]struct{}{}
	m.mu.Unlock()
	for c := range clients {
		_ = c.send(FrameExit, ExitPayload(code))
		c.conn.Close()
	}
}

// listen makes the monitor's unix socket at path (through /proc/self/fd when path is too long
// for sun_path).
func listen(path string) (*os.File, error) {
	_ = os.Remove(path)
	addr := path
	if len(path) >= 100 {
		d, err := os.Open(filepath.Dir(path))
		if err != nil {
			return nil, err
		}
		defer d.Close()
		addr = "/proc/self/fd/" + strconv.Itoa(int(d.Fd())) + "/" + filepath.Base(path)
	}
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: addr}); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	if err := syscall.Listen(fd, 128); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "monitor.sock"), nil
}

func (m *monitor) serve(ln *os.File) {
	rc, err := ln.SyscallConn()
	if err != nil {
		return
	}
	for {
		var nfd int
		var aerr error
		err := rc.Read(func(fd uintptr) bool {
			nfd, _, aerr = syscall.Accept4(int(fd), syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
			return aerr != syscall.EAGAIN
		})
		if err != nil {
			return
		}
		if aerr != nil {
			if aerr == syscall.EINTR || aerr == syscall.ECONNABORTED || aerr == syscall.EMFILE {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		go m.handle(os.NewFile(uintptr(nfd), "client"))
	}
}

// handle serves one request: wait, stop SIG MS, kill SIG, attach.
func (m *monitor) handle(c *os.File) {
	br := bufio.NewReaderSize(c, 4096)
	line, err := br.ReadString('\n')
	if err != nil {
		c.Close()
		return
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		c.Close()
		return
	}
	reply := func(s string) {
		_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.WriteString(s + "\n")
		c.Close()
	}
	switch f[0] {
	case "wait":
		m.pending.Add(1)
		defer m.pending.Done()
		<-m.done
		m.mu.Lock()
		code := m.st.ExitCode
		m.mu.Unlock()
		reply("ok " + strconv.Itoa(code))
	case "stop":
		if len(f) != 3 {
			reply("err bad stop request")
			return
		}
		sig, _ := strconv.Atoi(f[1])
		ms, _ := strconv.Atoi(f[2])
		m.pending.Add(1)
		defer m.pending.Done()
		m.stop(syscall.Signal(sig), time.Duration(ms)*time.Millisecond)
		<-m.done
		reply("ok")
	case "kill":
		if len(f) != 2 {
			reply("err bad kill request")
			return
		}
		sig, _ := strconv.Atoi(f[1])
		if err := m.kill(syscall.Signal(sig)); err != nil {
			reply("err " + err.Error())
			return
		}
		reply("ok")
	case "attach":
		m.attach(c, br)
	default:
		reply("err unknown request")
	}
}

// stop marks the container stopped by the user, sends sig and SIGKILL after timeout.
func (m *monitor) stop(sig syscall.Signal, timeout time.Duration) {
	m.mu.Lock()
	m.stopping = true
	m.st.StoppedByUser = true
	pid, runDone := m.pid, m.runDone
	m.mu.Unlock()
	m.stopOnce.Do(func() { close(m.stopCh) })
	if pid == 0 {
		return
	}
	_ = m.kill(sig)
	m.thaw()
	go func() {
		select {
		case <-runDone:
		case <-time.After(timeout):
			_ = m.kill(syscall.SIGKILL)
		}
	}()
}

// attach makes c an attached client: container output goes to it as frames, and its stdin
// frames go to the container.
func (m *monitor) attach(c *os.File, br *bufio.Reader) {
	ac := &client{conn: c}
	m.mu.Lock()
	m.clients[ac] = struct{}{}
	m.mu.Unlock()
	m.attached.Do(func() { close(m.attachCh) })
	buf := make([]byte, 4096)
	for {
		typ, p, err := ReadFrame(br, buf)
		if err != nil {
			m.dropClient(ac)
			return
		}
		m.mu.Lock()
		in, pty := m.stdin, m.pty
		m.mu.Unlock()
		switch typ {
		case FrameStdin:
			if in != nil {
				_, _ = in.Write(p)
			}
		case FrameStdinClose:
			if in != nil && pty == nil {
				in.Close()
			}
		case FrameResize:
			if len(p) == 4 {
				// struct winsize: rows, columns, x and y pixels.
				ws := [4]uint16{uint16(p[2])<<8 | uint16(p[3]), uint16(p[0])<<8 | uint16(p[1])}
				m.mu.Lock() // the pty's fd stays valid while m.mu is held
				if m.pty != nil && m.ptyFd >= 0 {
					_, _, _ = syscall.Syscall(syscall.SYS_IOCTL, uintptr(m.ptyFd), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
				}
				m.mu.Unlock()
			}
		}
	}
}
