package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Exec runs a process in a running container with the caller's stdio and returns its exit code
// (with Stdio.Detach, it returns 0 as soon as the process runs). The process joins the
// container's namespaces, cgroup and security settings.
func (r *Runtime) Exec(ctx context.Context, id string, ps ProcessSpec, stdio Stdio) (int, error) {
	if r.shim != "/proc/self/exe" {
		return r.execViaShim(ctx, id, ps, stdio)
	}
	return r.execHere(ctx, id, ps, stdio)
}

// execSpec is what `berth-shim __exec` receives on its environment.
type execSpec struct {
	Process ProcessSpec
	Stdin   bool
	Detach  bool
}

// execViaShim runs the exec from the small shim binary, whose start (and libcontainer's setns
// re-exec of it) is much cheaper than the full berth binary's. The shim shares the caller's
// stdio; with a terminal on stdin it follows the terminal's size itself.
func (r *Runtime) execViaShim(ctx context.Context, id string, ps ProcessSpec, stdio Stdio) (int, error) {
	if _, err := r.config(id); err != nil {
		return -1, err
	}
	spec, err := json.Marshal(execSpec{Process: ps, Stdin: stdio.Stdin != nil, Detach: stdio.Detach})
	if err != nil {
		return -1, err
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return -1, err
	}
	defer pr.Close()
	cmd := osexec.Command(r.shim, execArg, r.root, r.runRoot, id)
	cmd.Args[0] = "berth-exec"
	cmd.Env = append(os.Environ(), "BERTH_EXEC_SPEC="+string(spec), "GOMAXPROCS=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	cmd.ExtraFiles = []*os.File{pw}
	cmd.WaitDelay = time.Second // do not wait for a caller's stdin that never ends
	if err := cmd.Start(); err != nil {
		pw.Close()
		return -1, fmt.Errorf("exec: start shim: %w", err)
	}
	pw.Close()
	stop := context.AfterFunc(ctx, func() { _ = cmd.Process.Signal(unix.SIGTERM) })
	defer stop()
	status, _ := io.ReadAll(pr)
	werr := cmd.Wait()
	msg := strings.TrimSpace(string(status))
	if rest, ok := strings.CutPrefix(msg, "err "); ok {
		if strings.Contains(rest, ErrNotRunning.Error()) {
			return -1, fmt.Errorf("%s: %w", rest, ErrNotRunning)
		}
		return -1, fmt.Errorf("%s: %w", rest, ErrExec)
	}
	if msg != "ok" {
		return -1, fmt.Errorf("exec: shim failed: %v: %w", werr, ErrExec)
	}
	if cmd.ProcessState == nil {
		return -1, fmt.Errorf("exec: %v: %w", werr, ErrExec)
	}
	return cmd.ProcessState.ExitCode(), nil
}

// runExecMode is `berth-shim __exec ROOT RUNROOT ID`: it reports "ok" (the process started)
// or "err <reason>" on fd 3, then exits with the process' exit code.
func runExecMode(args []string) int {
	status := os.NewFile(3, "status")
	fail := func(err error) int {
		if status != nil {
			_, _ = io.WriteString(status, "err "+err.Error()+"\n")
		}
		return 126
	}
	if len(args) != 3 {
		return fail(errors.New("usage: __exec ROOT RUNROOT ID"))
	}
	var spec execSpec
	if err := json.Unmarshal([]byte(os.Getenv("BERTH_EXEC_SPEC")), &spec); err != nil {
		return fail(fmt.Errorf("exec spec: %w", err))
	}
	os.Unsetenv("BERTH_EXEC_SPEC")
	r, err := New(Config{Root: args[0], RunRoot: args[1], Shim: "/proc/self/exe"})
	if err != nil {
		return fail(err)
	}
	stdio := Stdio{Stdout: os.Stdout, Stderr: os.Stderr, Detach: spec.Detach}
	if spec.Stdin {
		stdio.Stdin = os.Stdin
	}
	if spec.Process.Tty && term.IsTerminal(int(os.Stdin.Fd())) {
		resize := make(chan [2]uint16, 1)
		send := func() {
			if w, h, err := term.GetSize(int(os.Stdin.Fd())); err == nil {
				select {
				case resize <- [2]uint16{uint16(w), uint16(h)}:
				default:
				}
			}
		}
		send()
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, unix.SIGWINCH)
		go func() {
			for range winch {
				send()
			}
		}()
		stdio.Resize = resize
	}
	stdio.started = func() {
		if status != nil {
			_, _ = io.WriteString(status, "ok\n")
			status.Close()
			status = nil
		}
	}
	code, err := r.execHere(context.Background(), args[2], spec.Process, stdio)
	if err != nil {
		return fail(err)
	}
	return code
}

func (r *Runtime) execHere(ctx context.Context, id string, ps ProcessSpec, stdio Stdio) (int, error) {
	c, err := r.config(id)
	if err != nil {
		return -1, err
	}
	if len(ps.Args) == 0 {
		return -1, fmt.Errorf("exec %s: no command: %w", c.Name, ErrInvalid)
	}
	st, err := r.Inspect(ctx, id)
	if err != nil {
		return -1, err
	}
	if st.Status != StatusRunning {
		return -1, fmt.Errorf("exec %s: container is %s: %w", c.Name, st.Status, ErrNotRunning)
	}
	ct, err := libcontainer.Load(r.libctRoot, id)
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w: %w", c.Name, err, ErrNotRunning)
	}
	userSpec := c.User
	if ps.User != "" {
		userSpec = ps.User
	}
	u, err := resolveUser(c.Rootfs, userSpec, c.GroupAdd)
	if err != nil {
		return -1, fmt.Errorf("exec %s: %w", c.Name, err)
	}
	cwd := ps.WorkingDir
	if cwd == "" {
		cwd = c.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	env := processEnv(append(append([]string(nil), c.Env...), ps.Env...), u, c.Hostname, ps.Tty)
	args := ps.Args
	var seccompProg *os.File
	if lc := ct.Config(); lc.Seccomp == nil && wantsSeccomp(&c) {
		// The container was started with the precompiled filter (seccomp_fast.go): its
		// exec'd processes must load it too, or they would run unconfined.
		fsys, err := r.FS(ctx, id)
		if err != nil {
			return -1, fmt.Errorf("exec %s: %w", c.Name, err)
		}
		fargs, f, err := r.fastSeccompArgs(id, seccompLoaderIn(&lc), args, args[0], cwd, env, fsys)
		switch {
		case errors.Is(err, errNoSeccompProgram):
			return -1, fmt.Errorf("exec %s: its seccomp program is missing; restart the container: %w", c.Name, ErrExec)
		case errors.Is(err, errNoFastSeccomp):
			return -1, fmt.Errorf("exec %s: exec: %q: executable file not found in $PATH: %w", c.Name, args[0], ErrExec)
		case err != nil:
			return -1, fmt.Errorf("exec %s: %w", c.Name, err)
		}
		args, seccompProg = fargs, f
	}
	p := &libcontainer.Process{
		Args: args, Env: env, Cwd: cwd,
		UID: u.UID, GID: u.GID, AdditionalGroups: u.Groups,
	}
	if seccompProg != nil {
		p.ExtraFiles = []*os.File{seccompProg}
		defer seccompProg.Close()
	}
	if ps.Privileged {
		all := allCaps()
		p.Capabilities = &configs.Capabilities{Bounding: all, Effective: all, Permitted: all}
	}
	var closeAfter []*os.File
	defer func() {
		for _, f := range closeAfter {
			f.Close()
		}
	}()
	var consoleP *os.File
	if ps.Tty && !stdio.Detach {
		var consoleC *os.File
		consoleP, consoleC, err = utils.NewSockPair("console")
		if err != nil {
			return -1, err
		}
		p.ConsoleSocket = consoleC
		closeAfter = append(closeAfter, consoleP, consoleC)
	} else if !stdio.Detach {
		if err := connectStdio(p, stdio, &closeAfter); err != nil {
			return -1, err
		}
	}
	if err := ct.Run(p); err != nil {
		return -1, fmt.Errorf("exec %s: %w: %w", c.Name, err, ErrExec)
	}
	if stdio.started != nil {
		stdio.started()
	}
	if stdio.Detach {
		return 0, nil
	}
	if consoleP != nil {
		pty, err := utils.RecvFile(consoleP)
		if err != nil {
			_ = p.Signal(unix.SIGKILL)
			_, _ = p.Wait()
			return -1, fmt.Errorf("exec %s: receive console: %w", c.Name, err)
		}
		defer pty.Close()
		if stdio.Stdin != nil {
			go func() { _, _ = io.Copy(pty, stdio.Stdin) }()
		}
		if stdio.Resize != nil {
			go func() {
				for sz := range stdio.Resize {
					_ = unix.IoctlSetWinsize(int(pty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: sz[0], Row: sz[1]})
				}
			}()
		}
		copied := make(chan struct{})
		go func() {
			if stdio.Stdout != nil {
				_, _ = io.Copy(stdio.Stdout, pty)
			} else {
				_, _ = io.Copy(io.Discard, pty)
			}
			close(copied)
		}()
		code := waitCode(p)
		<-copied
		return code, nil
	}
	// Close our copies of the child's ends so the copiers see EOF.
	for _, f := range closeAfter {
		f.Close()
	}
	closeAfter = nil
	return waitCode(p), nil
}

// connectStdio gives the process real pipes (so exec.Cmd starts no copiers it would wait for)
// and copies between them and the caller in goroutines that do not block Wait.
func connectStdio(p *libcontainer.Process, stdio Stdio, closeAfter *[]*os.File) error {
	if f, ok := stdio.Stdin.(*os.File); ok {
		p.Stdin = f
	} else if stdio.Stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		p.Stdin = r
		*closeAfter = append(*closeAfter, r)
		go func() { _, _ = io.Copy(w, stdio.Stdin); w.Close() }()
	}
	out := func(wr io.Writer) (io.Writer, error) {
		if wr == nil {
			return nil, nil
		}
		if f, ok := wr.(*os.File); ok {
			return f, nil
		}
		return wr, nil
	}
	var err error
	if p.Stdout, err = out(stdio.Stdout); err != nil {
		return err
	}
	if p.Stderr, err = out(stdio.Stderr); err != nil {
		return err
	}
	return nil
}

func waitCode(p *libcontainer.Process) int {
	ps, _ := p.Wait()
	if ps == nil {
		return 255
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		if ws.Exited() {
			return ws.ExitStatus()
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
	}
	return ps.ExitCode()
}
