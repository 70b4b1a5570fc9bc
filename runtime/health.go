package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

const maxHealthOutput = 4096

// healthArgs turns Docker's test form into a command line.
func healthArgs(test []string) []string {
	switch test[0] {
	case "CMD":
		return test[1:]
	case "CMD-SHELL":
		if len(test) < 2 {
			return nil
		}
		return []string{"/bin/sh", "-c", test[1]}
	}
	// A bare command string is run by the shell, as in Compose's string form.
	if len(test) == 1 {
		return []string{"/bin/sh", "-c", test[0]}
	}
	return test
}

// limitedBuffer keeps the first maxHealthOutput bytes written to it.
type limitedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxHealthOutput - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// runHealth is `__health ROOT RUNROOT ID TIMEOUT_NS`, run by the monitor for each probe of the
// container's healthcheck: it prints "CODE START END" (Unix nanoseconds) and the probe's output
// on stdout. CODE is -1 when the probe could not run or timed out.
func runHealth(args []string) int {
	res := healthResult{start: time.Now(), code: -1}
	if len(args) != 4 {
		res.output = "usage: __health ROOT RUNROOT ID TIMEOUT_NS"
	} else if timeout, err := strconv.ParseInt(args[3], 10, 64); err != nil || timeout <= 0 {
		res.output = "bad timeout " + strconv.Quote(args[3])
	} else if r, err := New(Config{Root: args[0], RunRoot: args[1]}); err != nil {
		res.output = err.Error()
	} else {
		res = r.probe(args[2], time.Duration(timeout))
	}
	if res.end.IsZero() {
		res.end = time.Now()
	}
	b := fmt.Appendf(nil, "%d %d %d\n", res.code, res.start.UnixNano(), res.end.UnixNano())
	b = append(b, res.output...)
	_, _ = os.Stdout.Write(b)
	return 0
}

type healthResult struct {
	start, end time.Time
	code       int
	output     string
}

// probe runs the container's healthcheck command once.
func (r *Runtime) probe(id string, timeout time.Duration) healthResult {
	res := healthResult{start: time.Now(), code: -1}
	fail := func(err error) healthResult {
		res.end, res.output = time.Now(), err.Error()
		return res
	}
	c, err := r.config(id)
	if err != nil {
		return fail(err)
	}
	if c.Healthcheck == nil || len(c.Healthcheck.Test) == 0 {
		return fail(errors.New("no healthcheck"))
	}
	args := healthArgs(c.Healthcheck.Test)
	if len(args) == 0 {
		return fail(errors.New("empty healthcheck command"))
	}
	ct, err := libcontainer.Load(r.libctRoot, id)
	if err != nil {
		return fail(err)
	}
	u, err := resolveUser(c.Rootfs, c.User, c.GroupAdd)
	if err != nil {
		return fail(err)
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	env := processEnv(c.Env, u, c.Hostname, false)
	var seccompProg *os.File
	if lc := ct.Config(); lc.Seccomp == nil && wantsSeccomp(&c) {
		// The container was started with the precompiled filter (seccomp_fast.go): the
		// probe must load it too, or it would run unconfined.
		fsys, err := r.FS(context.Background(), id)
		if err != nil {
			return fail(err)
		}
		fargs, f, err := r.fastSeccompArgs(id, seccompLoaderIn(&lc), args, args[0], cwd, env, fsys)
		switch {
		case errors.Is(err, errNoSeccompProgram):
			return fail(errors.New("the container's seccomp program is missing; restart the container"))
		case errors.Is(err, errNoFastSeccomp):
			return fail(fmt.Errorf("exec: %q: executable file not found in $PATH", args[0]))
		case err != nil:
			return fail(err)
		}
		args, seccompProg = fargs, f
		defer seccompProg.Close()
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	p := &libcontainer.Process{
		Args: args, Env: env, Cwd: cwd,
		UID: u.UID, GID: u.GID, AdditionalGroups: u.Groups,
		Stdout: pw, Stderr: pw,
	}
	if seccompProg != nil {
		p.ExtraFiles = []*os.File{seccompProg}
	}
	res.start = time.Now()
	if err := ct.Run(p); err != nil {
		pw.Close()
		pr.Close()
		return fail(err)
	}
	pw.Close()
	var out limitedBuffer
	copied := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pr.Read(buf)
			out.Write(buf[:n])
			if err != nil {
				break
			}
		}
		pr.Close()
		close(copied)
	}()
	exited := make(chan *os.ProcessState, 1)
	go func() { ps, _ := p.Wait(); exited <- ps }()
	var ps *os.ProcessState
	timedOut := false
	select {
	case ps = <-exited:
	case <-time.After(timeout):
		timedOut = true
		_ = p.Signal(unix.SIGKILL)
		ps = <-exited
	}
	select {
	case <-copied:
	case <-time.After(time.Second):
	}
	res.end = time.Now()
	out.mu.Lock()
	res.output = out.buf.String()
	out.mu.Unlock()
	if timedOut {
		res.output = "Health check exceeded timeout (" + timeout.String() + ")"
		return res
	}
	if ps != nil {
		if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
			if ws.Exited() {
				res.code = ws.ExitStatus()
			} else if ws.Signaled() {
				res.code = 128 + int(ws.Signal())
			}
		}
	}
	return res
}
