package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/runtime/monitor"
)

var errNoMonitor = errors.New("no monitor")

// unixPath returns a socket address usable for path even when path exceeds sun_path, by going
// through an open directory descriptor; close releases it.
func unixPath(path string) (addr string, close func(), err error) {
	if len(path) < 100 {
		return path, func() {}, nil
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return "", nil, err
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", d.Fd(), filepath.Base(path)), func() { d.Close() }, nil
}

func dialMonitor(ctx context.Context, path string) (net.Conn, error) {
	addr, done, err := unixPath(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoMonitor, err)
	}
	defer done()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoMonitor, err)
	}
	return c, nil
}

// request sends one command line to the container's monitor and returns its reply.
func (r *Runtime) request(ctx context.Context, id, line string) (string, error) {
	c, err := dialMonitor(ctx, r.sockPath(id))
	if err != nil {
		return "", err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", fmt.Errorf("%w: %w", errNoMonitor, err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		// The monitor exits right after the container's final exit; a closed connection
		// after a wait or stop means the same.
		return "", fmt.Errorf("%w: %w", errNoMonitor, err)
	}
	reply = strings.TrimSuffix(reply, "\n")
	if msg, ok := strings.CutPrefix(reply, "err "); ok {
		return "", fmt.Errorf("%s: %w", msg, ErrMonitor)
	}
	return strings.TrimPrefix(strings.TrimPrefix(reply, "ok"), " "), nil
}

// Start starts a created or exited container under a new monitor process, which outlives the
// caller. It returns once the container's process runs, or with the reason it could not start.
// Starting a running container is a no-op.
func (r *Runtime) Start(ctx context.Context, id string) error {
	_, err := r.spawnMonitor(ctx, id, false)
	return err
}

func (r *Runtime) spawnMonitor(ctx context.Context, id string, attach bool) (*os.File, error) {
	c, err := r.config(id)
	if err != nil {
		return nil, err
	}
	st, err := r.Inspect(ctx, id)
	if err != nil {
		return nil, err
	}
	if st.Running() {
		if attach {
			return nil, fmt.Errorf("start %s: %w", c.Name, ErrRunning)
		}
		return nil, nil
	}
	if err := os.MkdirAll(r.runDir(id), 0o700); err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	logf, err := os.OpenFile(filepath.Join(r.runDir(id), "monitor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", c.Name, err)
	}
	mode := "detached"
	if attach {
		mode = "attach"
	}
	// The monitor runs the shim's __start, __health and __destroy modes, so it needs the
	// shim's real path.
	shim := r.shim
	if shim == "/proc/self/exe" {
		if shim, err = os.Executable(); err != nil {
			return nil, fmt.Errorf("start %s: %w", c.Name, err)
		}
	}
	var cmd *exec.Cmd
	if mon := findMonitor(r.shim); mon != "" {
		cmd = exec.Command(mon, r.root, r.runRoot, id, mode, shim)
	} else {
		cmd = exec.Command(r.shim, monitor.Arg, r.root, r.runRoot, id, mode, shim)
	}
	cmd.Args[0] = "berth-monitor"
	cmd.Stderr = logf
	cmd.Dir = "/" // do not pin the caller's working directory for the container's lifetime
	cmd.ExtraFiles = []*os.File{pw}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC=50")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("start %s: spawn monitor: %w", c.Name, err)
	}
	pw.Close()
	go cmd.Wait() // reap the monitor if it exits while we still run
	if attach {
		return pr, nil
	}
	defer pr.Close()
	return nil, readStartStatus(ctx, pr, c.Name, r.runDir(id))
}

// readStartStatus reads the monitor's start report: "ok" or an error message.
func readStartStatus(ctx context.Context, pr io.Reader, name, runDir string) error {
	type result struct {
		msg string
		err error
	}
	ch := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(pr)
		ch <- result{string(b), err}
	}()
	var res result
	select {
	case res = <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	msg := strings.TrimSpace(res.msg)
	if msg == "ok" || msg == "err "+monitor.ErrAlreadyMonitored {
		// A concurrent Start won the race; the container runs.
		return nil
	}
	if msg == "" {
		tail, _ := os.ReadFile(filepath.Join(runDir, "monitor.log"))
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		msg = "monitor exited without a report: " + strings.TrimSpace(string(tail))
	}
	return fmt.Errorf("start %s: %s: %w", name, strings.TrimPrefix(msg, "err "), ErrMonitor)
}

// Run starts a container with the caller attached to its stdio (a real pty when the container
// has Tty) and returns its exit code when it stops. Output produced before the caller is
// attached is not lost: the monitor waits for the attach before starting the process. When ctx
// ends, the container is stopped.
func (r *Runtime) Run(ctx context.Context, id string, stdio Stdio) (int, error) {
	c, err := r.config(id)
	if err != nil {
		return -1, err
	}
	pr, err := r.spawnMonitor(ctx, id, true)
	if err != nil {
		return -1, err
	}
	defer pr.Close()
	// The monitor writes "ready" once it listens.
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		rest, _ := io.ReadAll(br)
		return -1, readStartStatus(ctx, strings.NewReader(line+string(rest)), c.Name, r.runDir(id))
	}
	conn, err := dialMonitor(ctx, r.sockPath(id))
	if err != nil {
		return -1, fmt.Errorf("attach %s: %w", c.Name, err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "attach\n"); err != nil {
		return -1, fmt.Errorf("attach %s: %w", c.Name, err)
	}
	rest, _ := io.ReadAll(br)
	if msg := strings.TrimSpace(string(rest)); msg != "ok" {
		return -1, readStartStatus(ctx, strings.NewReader(msg), c.Name, r.runDir(id))
	}
	return r.pump(ctx, id, conn, stdio, c.Tty)
}

// Attach connects to a running container's stdio until it exits.
func (r *Runtime) Attach(ctx context.Context, id string, stdio Stdio) (int, error) {
	c, err := r.config(id)
	if err != nil {
		return -1, err
	}
	conn, err := dialMonitor(ctx, r.sockPath(id))
	if err != nil {
		return -1, fmt.Errorf("attach %s: %w", c.Name, ErrNotRunning)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "attach\n"); err != nil {
		return -1, fmt.Errorf("attach %s: %w", c.Name, err)
	}
	return r.pump(ctx, id, conn, stdio, c.Tty)
}

// pump copies between the caller's stdio and an attach connection until the exit frame.
func (r *Runtime) pump(ctx context.Context, id string, conn net.Conn, stdio Stdio, tty bool) (int, error) {
	var wmu sync.Mutex
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return monitor.WriteFrame(conn, typ, p)
	}
	if stdio.Stdin != nil {
		go func() {
			buf := make([]byte, 32*1024)
			for {
				n, err := stdio.Stdin.Read(buf)
				if n > 0 {
					if send(monitor.FrameStdin, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					_ = send(monitor.FrameStdinClose, nil)
					return
				}
			}
		}()
	}
	if stdio.Resize != nil {
		go func() {
			for sz := range stdio.Resize {
				if send(monitor.FrameResize, monitor.ResizePayload(sz[0], sz[1])) != nil {
					return
				}
			}
		}()
	}
	stopOnce := sync.Once{}
	cancelStop := context.AfterFunc(ctx, func() {
		stopOnce.Do(func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_ = r.Stop(sctx, id, -1)
		})
	})
	defer cancelStop()
	buf := make([]byte, 32*1024)
	for {
		typ, p, err := monitor.ReadFrame(conn, buf)
		if err != nil {
			// The monitor went away: report what the state says.
			code, werr := r.Wait(context.WithoutCancel(ctx), id)
			return code, werr
		}
		switch typ {
		case monitor.FrameStdout:
			if stdio.Stdout != nil {
				stdio.Stdout.Write(p)
			}
		case monitor.FrameStderr:
			w := stdio.Stderr
			if tty || w == nil {
				w = stdio.Stdout
			}
			if w != nil {
				w.Write(p)
			}
		case monitor.FrameExit:
			if code, ok := monitor.ExitCode(p); ok {
				return code, nil
			}
			return -1, fmt.Errorf("attach: bad exit frame: %w", ErrMonitor)
		}
	}
}
