package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/opencontainers/runc/libcontainer/utils"
	"golang.org/x/sys/unix"
)

// Exec runs a process in a running container with the caller's stdio and returns its exit code
// (with Stdio.Detach, it returns 0 as soon as the process runs). The process joins the
// container's namespaces, cgroup and security settings.
func (r *Runtime) Exec(ctx context.Context, id string, ps ProcessSpec, stdio Stdio) (int, error) {
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
	env := append(append([]string(nil), c.Env...), ps.Env...)
	p := &libcontainer.Process{
		Args: ps.Args, Env: processEnv(env, u, c.Hostname, ps.Tty), Cwd: cwd,
		UID: u.UID, GID: u.GID, AdditionalGroups: u.Groups,
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
		return -1, fmt.Errorf("exec %s: %w", c.Name, err)
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
