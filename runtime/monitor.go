package runtime

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/utils"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

const (
	monitorArg          = "__monitor"
	errAlreadyMonitored = "another monitor runs this container"
)

// monitor supervises one container. It runs in its own process (see runMonitor).
type monitor struct {
	r      *Runtime
	id     string
	cfg    ContainerConfig
	lcfg   *configs.Config
	log    *slog.Logger
	logw   *logWriter
	policy restartPolicy

	mu       sync.Mutex
	st       State
	ct       *libcontainer.Container
	proc     *libcontainer.Process
	runDone  chan struct{} // closed when the current process exits
	stdin    io.WriteCloser
	pty      *os.File
	clients  map[*attachClient]struct{}
	stopping bool
	stopCh   chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed after the final exit was recorded
	pending  sync.WaitGroup
	attachCh chan struct{} // first attach arrived (attach mode)
	attached sync.Once
	tr       func(string)
	readers  *sync.WaitGroup    // output copiers of the current process
	hcancel  context.CancelFunc // stops the current healthcheck loop
}

type attachClient struct {
	mu   sync.Mutex
	conn net.Conn
}

func (a *attachClient) send(typ byte, p []byte) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return writeFrame(a.conn, typ, p)
}

// runMonitor is the body of `berth __monitor ROOT RUNROOT ID MODE`. Its start report goes to
// fd 3: "ok", or "err <reason>"; in attach mode it first writes "ready" and waits for a client.
func runMonitor(args []string) int {
	status := os.NewFile(3, "status")
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
	if len(args) != 4 {
		report("err usage: __monitor ROOT RUNROOT ID MODE")
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r, err := New(Config{Root: args[0], RunRoot: args[1], Logger: log})
	if err != nil {
		report("err " + err.Error())
		return 1
	}
	logrus.SetOutput(os.Stderr)
	logrus.SetLevel(logrus.WarnLevel)
	id, mode := args[2], args[3]
	tr := monitorTracer()
	tr("monitor-init")
	m := &monitor{r: r, id: id, log: log.With("container", id[:min(12, len(id))]),
		clients: map[*attachClient]struct{}{}, stopCh: make(chan struct{}), done: make(chan struct{}),
		attachCh: make(chan struct{})}

	lock, err := os.OpenFile(r.lockPath(id), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		report("err " + err.Error())
		return 1
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		report("err " + errAlreadyMonitored)
		return 1
	}
	if err := m.load(); err != nil {
		report("err " + err.Error())
		return 1
	}
	ln, err := m.listen()
	if err != nil {
		report("err " + err.Error())
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
	m.tr = tr
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
	_ = os.Remove(r.sockPath(id))
	tr("closed")
	if m.cfg.AutoRemove && code >= 0 {
		lock.Close()
		if len(m.cfg.AutoRemoveCmd) > 0 {
			cmd := exec.Command(m.cfg.AutoRemoveCmd[0], m.cfg.AutoRemoveCmd[1:]...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil {
				m.log.Error("auto-remove", "err", err)
			}
		} else if err := r.Remove(context.Background(), id, true); err != nil {
			m.log.Error("auto-remove", "err", err)
		}
	}
	return 0
}

func (m *monitor) load() error {
	c, err := m.r.config(m.id)
	if err != nil {
		return err
	}
	m.cfg = c
	var lc configs.Config
	if err := readJSON(filepath.Join(m.r.dir(m.id), "libct.json"), &lc); err != nil {
		return fmt.Errorf("load container config: %w", err)
	}
	m.lcfg = &lc
	p, err := parseRestart(c.Restart)
	if err != nil {
		return err
	}
	m.policy = p
	st, err := m.r.readState(m.id)
	if err != nil {
		return err
	}
	m.st = st
	m.st.StoppedByUser = false
	m.st.Error = ""
	m.st.MonitorPid = os.Getpid()
	lw, err := openLogWriter(filepath.Join(m.r.dir(m.id), "log"), c.LogMaxSize, c.LogMaxFiles)
	if err != nil {
		return err
	}
	m.logw = lw
	return nil
}

func (m *monitor) listen() (net.Listener, error) {
	path := m.r.sockPath(m.id)
	_ = os.Remove(path)
	addr, done, err := unixPath(path)
	if err != nil {
		return nil, err
	}
	defer done()
	ln, err := net.Listen("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("monitor socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return ln, nil
}

// writeState persists m.st; the caller holds m.mu.
func (m *monitor) writeState() {
	if err := writeJSON(filepath.Join(m.r.dir(m.id), "state.json"), m.st); err != nil {
		m.log.Error("write state", "err", err)
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
		runDone, err := m.startProcess()
		if err != nil {
			m.log.Error("start", "err", err)
			if first {
				m.mu.Lock()
				m.st.Error = err.Error()
				if m.st.Status != StatusCreated {
					m.st.Status = StatusExited
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
			code = m.waitProcess(runDone)
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
		m.st.Status = StatusRestarting
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
	m.st.Status = StatusExited
	m.st.Pid = 0
	m.writeState()
	m.mu.Unlock()
	m.logw.close()
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

// startProcess creates the libcontainer container and runs its init process.
func (m *monitor) startProcess() (chan struct{}, error) {
	r := m.r
	if old, err := libcontainer.Load(r.libctRoot, m.id); err == nil {
		_ = old.Signal(unix.SIGKILL)
		_ = old.Destroy()
	}
	u, err := resolveUser(m.cfg.Rootfs, m.cfg.User, m.cfg.GroupAdd)
	if err != nil {
		return nil, err
	}
	cwd := m.cfg.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if cwd != "/" {
		if p, err := securejoin.SecureJoin(m.cfg.Rootfs, cwd); err == nil {
			if _, err := os.Stat(p); os.IsNotExist(err) {
				_ = os.MkdirAll(p, 0o755)
			}
		}
	}
	args := m.cfg.Args
	if m.cfg.Init {
		args = append([]string{initPath, initArg, "--"}, args...)
	}
	env := processEnv(m.cfg.Env, u, m.cfg.Hostname, m.cfg.Tty)
	lcfg := m.lcfg
	var seccompProg *os.File
	if lcfg.Seccomp != nil && len(m.cfg.Args) > 0 {
		fsys, _ := r.FS(context.Background(), m.id)
		if fargs, f, err := r.fastSeccompArgs(m.id, args, m.cfg.Args[0], cwd, env, fsys); err == nil {
			c := *lcfg
			c.Seccomp = nil // loaded precompiled by the shim before the command runs
			lcfg, args, seccompProg = &c, fargs, f
		}
	}
	m.tr("pre-create")
	ct, err := libcontainer.Create(r.libctRoot, m.id, lcfg)
	m.tr("libct-create")
	if err != nil {
		if seccompProg != nil {
			seccompProg.Close()
		}
		return nil, fmt.Errorf("create container: %w", err)
	}
	p := &libcontainer.Process{
		Args:             args,
		Env:              env,
		Cwd:              cwd,
		UID:              u.UID,
		GID:              u.GID,
		AdditionalGroups: u.Groups,
		Init:             true,
	}
	var (
		closeAfter         []*os.File
		outR, errR, inW    *os.File
		consoleP, consoleC *os.File
	)
	if seccompProg != nil {
		p.ExtraFiles = []*os.File{seccompProg}
		closeAfter = append(closeAfter, seccompProg)
	}
	cleanup := func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}
	if m.cfg.Tty {
		consoleP, consoleC, err = utils.NewSockPair("console")
		if err != nil {
			_ = ct.Destroy()
			return nil, err
		}
		p.ConsoleSocket = consoleC
		closeAfter = append(closeAfter, consoleC, consoleP)
	} else {
		var outW, errW, inR *os.File
		if outR, outW, err = os.Pipe(); err != nil {
			_ = ct.Destroy()
			return nil, err
		}
		if errR, errW, err = os.Pipe(); err != nil {
			_ = ct.Destroy()
			return nil, err
		}
		p.Stdout, p.Stderr = outW, errW
		closeAfter = append(closeAfter, outW, errW)
		if m.cfg.OpenStdin {
			if inR, inW, err = os.Pipe(); err != nil {
				_ = ct.Destroy()
				return nil, err
			}
			p.Stdin = inR
			closeAfter = append(closeAfter, inR)
		}
	}
	if err := ct.Run(p); err != nil {
		m.tr("libct-run")
		cleanup()
		for _, f := range []*os.File{outR, errR, inW} {
			if f != nil {
				f.Close()
			}
		}
		_ = ct.Destroy()
		return nil, fmt.Errorf("run %v: %w", m.cfg.Args, err)
	}
	var pty *os.File
	if m.cfg.Tty {
		pty, err = utils.RecvFile(consoleP)
		if err != nil {
			cleanup()
			_ = ct.Signal(unix.SIGKILL)
			_, _ = p.Wait()
			_ = ct.Destroy()
			return nil, fmt.Errorf("receive console: %w", err)
		}
	}
	m.tr("libct-run")
	cleanup()
	pid, _ := p.Pid()
	waitExeced(pid, m.cfg.Init)
	m.tr("execed")
	runDone := make(chan struct{})
	var readers sync.WaitGroup
	copyOut := func(stream int, f *os.File) {
		defer readers.Done()
		buf := make([]byte, 32*1024)
		for {
			n, err := f.Read(buf)
			if n > 0 {
				m.output(stream, buf[:n])
			}
			if err != nil {
				f.Close()
				return
			}
		}
	}
	m.mu.Lock()
	m.ct, m.proc, m.runDone = ct, p, runDone
	m.pty = pty
	m.stdin = nil
	if inW != nil {
		m.stdin = inW
	} else if pty != nil {
		m.stdin = pty
	}
	m.st.Status = StatusRunning
	m.st.Pid = pid
	m.st.StartedAt = time.Now().UTC()
	m.st.FinishedAt = time.Time{}
	m.st.ExitCode = 0
	m.st.OOMKilled = false
	m.st.Error = ""
	if m.cfg.Healthcheck != nil && healthEnabled(m.cfg.Healthcheck) {
		m.st.Health = &Health{Status: HealthStarting}
	}
	m.writeState()
	stopping := m.stopping
	m.mu.Unlock()
	if pty != nil {
		readers.Add(1)
		go copyOut(frameStdout, pty)
	} else {
		readers.Add(2)
		go copyOut(frameStdout, outR)
		go copyOut(frameStderr, errR)
	}
	m.readers = &readers
	if stopping {
		_ = ct.Signal(unix.SIGKILL)
	}
	hctx, hcancel := context.WithCancel(context.Background())
	m.hcancel = hcancel
	go m.healthLoop(hctx, ct)
	return runDone, nil
}

// monitorTracer logs phase timings to stderr (monitor.log) when BERTH_TRACE is set.
func monitorTracer() func(string) {
	if os.Getenv("BERTH_TRACE") == "" {
		return func(string) {}
	}
	last := time.Now()
	return func(phase string) {
		now := time.Now()
		fmt.Fprintf(os.Stderr, "trace %-12s +%6.1fms\n", phase, float64(now.Sub(last).Microseconds())/1000)
		last = now
	}
}

// waitExeced waits (briefly) until the container's init has exec'd the user's command. Until
// then PID 1 is libcontainer's Go init, which handles every signal and would exit with status
// 2 on a SIGTERM sent by an early Stop. With withInit it also waits until berth's reaper has
// started the command (it subscribes to signals before that; a signal arriving earlier would
// be dropped, as PID 1 of a namespace ignores signals it has no handler for).
func waitExeced(pid int, withInit bool) {
	p := "/proc/" + strconv.Itoa(pid)
	self := os.Args[0] + "\x00init\x00"
	deadline := time.Now().Add(200 * time.Millisecond)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(p + "/cmdline")
		if err != nil {
			return
		}
		if string(b) != self {
			if !withInit {
				return
			}
			c, err := os.ReadFile(p + "/task/" + strconv.Itoa(pid) + "/children")
			if err != nil || len(c) > 0 {
				return
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// waitProcess waits for the init process, records its exit and tears the container down.
func (m *monitor) waitProcess(runDone chan struct{}) int {
	m.mu.Lock()
	p, ct, readers := m.proc, m.ct, m.readers
	m.mu.Unlock()
	ps, err := p.Wait()
	m.tr("wait")
	code := 255
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Exited():
				code = ws.ExitStatus()
			case ws.Signaled():
				code = 128 + int(ws.Signal())
			}
		}
	} else if err != nil {
		m.log.Error("wait", "err", err)
	}
	m.hcancel()
	oom := oomKilled(ct)
	// Every process of the PID namespace is gone with its init; the output pipes drain now.
	waitTimeout(readers, 2*time.Second)
	m.logw.flush()
	m.tr("oom+drain")
	_ = ct.Destroy()
	m.tr("destroy")
	m.mu.Lock()
	close(runDone)
	if m.stdin != nil && m.stdin != m.pty {
		m.stdin.Close()
	}
	if m.pty != nil {
		m.pty.Close()
	}
	m.stdin, m.pty, m.ct, m.proc = nil, nil, nil, nil
	m.st.Status = StatusExited
	m.st.ExitCode = code
	m.st.OOMKilled = oom
	m.st.Pid = 0
	m.st.FinishedAt = time.Now().UTC()
	m.writeState()
	m.mu.Unlock()
	m.closeClients(code)
	return code
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

// oomKilled reports whether the kernel's OOM killer fired in the container's memory cgroup.
func oomKilled(ct *libcontainer.Container) bool {
	st, err := ct.State()
	if err != nil {
		return false
	}
	if p, ok := st.CgroupPaths["memory"]; ok {
		return cgroupCounter(filepath.Join(p, "memory.oom_control"), "oom_kill") > 0
	}
	if p, ok := st.CgroupPaths[""]; ok {
		return cgroupCounter(filepath.Join(p, "memory.events"), "oom_kill") > 0
	}
	return false
}

func cgroupCounter(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
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

// output records container output and copies it to attached clients.
func (m *monitor) output(stream int, p []byte) {
	m.logw.write(stream, p)
	m.mu.Lock()
	clients := make([]*attachClient, 0, len(m.clients))
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

func (m *monitor) dropClient(c *attachClient) {
	m.mu.Lock()
	delete(m.clients, c)
	m.mu.Unlock()
	c.conn.Close()
}

func (m *monitor) closeClients(code int) {
	m.mu.Lock()
	clients := m.clients
	m.clients = map[*attachClient]struct{}{}
	m.mu.Unlock()
	var p [4]byte
	binary.BigEndian.PutUint32(p[:], uint32(int32(code)))
	for c := range clients {
		_ = c.send(frameExit, p[:])
		c.conn.Close()
	}
}

func (m *monitor) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go m.handle(c)
	}
}

// handle serves one request: wait, stop SIG MS, kill SIG, attach.
func (m *monitor) handle(c net.Conn) {
	br := bufio.NewReader(c)
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
		_, _ = io.WriteString(c, s+"\n")
		c.Close()
	}
	switch f[0] {
	case "wait":
		m.pending.Add(1)
		defer m.pending.Done()
		select {
		case <-m.done:
		}
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
		if err := m.signal(syscall.Signal(sig)); err != nil {
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
	ct, runDone := m.ct, m.runDone
	m.mu.Unlock()
	m.stopOnce.Do(func() { close(m.stopCh) })
	if ct == nil {
		return
	}
	_ = ct.Signal(sig)
	if s, err := ct.Status(); err == nil && s == libcontainer.Paused {
		_ = ct.Resume()
	}
	go func() {
		select {
		case <-runDone:
		case <-time.After(timeout):
			_ = ct.Signal(unix.SIGKILL)
		}
	}()
}

func (m *monitor) signal(sig syscall.Signal) error {
	m.mu.Lock()
	ct := m.ct
	m.mu.Unlock()
	if ct == nil {
		return ErrNotRunning
	}
	if err := ct.Signal(sig); err != nil {
		return err
	}
	if sig == unix.SIGKILL {
		if s, err := ct.Status(); err == nil && s == libcontainer.Paused {
			_ = ct.Resume()
		}
	}
	return nil
}

// attach makes c an attached client: container output goes to it as frames, and its stdin
// frames go to the container.
func (m *monitor) attach(c net.Conn, br *bufio.Reader) {
	ac := &attachClient{conn: c}
	m.mu.Lock()
	m.clients[ac] = struct{}{}
	m.mu.Unlock()
	m.attached.Do(func() { close(m.attachCh) })
	buf := make([]byte, 32*1024)
	for {
		typ, p, err := readFrame(br, buf)
		if err != nil {
			m.dropClient(ac)
			return
		}
		m.mu.Lock()
		in, pty := m.stdin, m.pty
		m.mu.Unlock()
		switch typ {
		case frameStdin:
			if in != nil {
				_, _ = in.Write(p)
			}
		case frameStdinClose:
			if in != nil && pty == nil {
				in.Close()
			}
		case frameResize:
			if pty != nil && len(p) == 4 {
				ws := &unix.Winsize{Col: binary.BigEndian.Uint16(p[0:]), Row: binary.BigEndian.Uint16(p[2:])}
				_ = unix.IoctlSetWinsize(int(pty.Fd()), unix.TIOCSWINSZ, ws)
			}
		}
	}
}
