package runtime

// The libcontainer side of the per-container monitor. The monitor itself (package
// runtime/monitor, binary berth-monitor) links no libcontainer; it runs these modes of the shim
// as short-lived children:
//
//	__start ROOT RUNROOT ID MODE       create the container and run its init (runStart)
//	__health ROOT RUNROOT ID TIMEOUT   one healthcheck probe (runHealth, health.go)
//	__destroy ROOT RUNROOT ID [remove] tear the container down after its exit (runDestroy)

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/runtime/monitor"
)

// Descriptors a __start child receives from the monitor (besides 0-2 and the report on 3).
const (
	startFdConsole = 4 // MODE tty: the console socket (libcontainer's ConsoleSocket)
	startFdStdout  = 4 // MODE pipes/stdin: the container's stdout
	startFdStderr  = 5
	startFdStdin   = 6 // MODE stdin
)

// runStart is `__start ROOT RUNROOT ID MODE`: it creates the libcontainer container and runs
// its init with the stdio the monitor passed (MODE tty, pipes or stdin), reports
// "ok PID MEMCG FREEZER shared|private" (cgroup directories, "-" when unknown; whether the PID
// namespace is shared) or "err <reason>" on fd 3, and exits. The init then becomes the
// monitor's child: the monitor is a child subreaper.
func runStart(args []string) int {
	status := os.NewFile(3, "status")
	report := func(msg string) {
		if status != nil {
			_, _ = io.WriteString(status, msg+"\n")
			status.Close()
			status = nil
		}
	}
	// Nothing the container runs may inherit the report pipe or the stdio descriptors.
	for fd := 3; fd <= startFdStdin; fd++ {
		syscall.CloseOnExec(fd)
	}
	if len(args) != 4 {
		report("err usage: __start ROOT RUNROOT ID MODE")
		return 2
	}
	r, err := New(Config{Root: args[0], RunRoot: args[1]})
	if err != nil {
		report("err " + err.Error())
		return 1
	}
	logrus.SetOutput(os.Stderr)
	logrus.SetLevel(logrus.WarnLevel)
	res, err := r.startContainer(args[2], args[3])
	if err != nil {
		report("err " + err.Error())
		return 1
	}
	orDash := func(s string) string {
		if s == "" || strings.ContainsAny(s, " \n") {
			return "-"
		}
		return s
	}
	pidns := "private"
	if res.sharedPidNS {
		pidns = "shared"
	}
	report("ok " + strconv.Itoa(res.pid) + " " + orDash(res.memcg) + " " + orDash(res.freezer) + " " + pidns)
	return 0
}

type started struct {
	pid            int
	memcg, freezer string
	sharedPidNS    bool
}

// startContainer creates the libcontainer container and runs its init process with the stdio
// of mode (see the startFd constants).
func (r *Runtime) startContainer(id, mode string) (started, error) {
	tr := monitor.Tracer()
	c, err := r.config(id)
	if err != nil {
		return started{}, err
	}
	var lc configs.Config
	if err := readJSON(filepath.Join(r.dir(id), "libct.json"), &lc); err != nil {
		return started{}, fmt.Errorf("load container config: %w", err)
	}
	if old, err := libcontainer.Load(r.libctRoot, id); err == nil {
		_ = old.Signal(unix.SIGKILL)
		_ = old.Destroy()
	}
	// A new process is not frozen: a marker left by a Pause of the old one would only make
	// Inspect ask the freezer for nothing.
	_ = os.Remove(r.pausedPath(id))
	u, err := resolveUser(c.Rootfs, c.User, c.GroupAdd)
	if err != nil {
		return started{}, err
	}
	cwd := c.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if cwd != "/" {
		if p, err := securejoin.SecureJoin(c.Rootfs, cwd); err == nil {
			if _, err := os.Stat(p); os.IsNotExist(err) {
				_ = os.MkdirAll(p, 0o755)
			}
		}
	}
	args := c.Args
	if c.Init {
		args = append([]string{initPath, initArg, "--"}, args...)
	}
	env := processEnv(c.Env, u, c.Hostname, c.Tty)
	// Namespaces joined from other containers are found again (they may have restarted), and
	// mounts made outside the container are made again after a reboot.
	lcfg, err := r.prepareStart(&c, &lc)
	if err != nil {
		return started{}, err
	}
	var seccompProg *os.File
	profile := filepath.Join(r.dir(id), seccompProfileFile)
	_, perr := os.Stat(profile)
	if hasProfile := perr == nil; (lcfg.Seccomp != nil || hasProfile) && len(c.Args) > 0 {
		fsys, _ := r.FS(context.Background(), id)
		fargs, f, err := r.fastSeccompArgs(id, seccompLoaderIn(lcfg), args, c.Args[0], cwd, env, fsys)
		switch {
		case err == nil:
			c2 := *lcfg
			c2.Seccomp = nil // loaded precompiled by the loader before the command runs
			lcfg, args, seccompProg = &c2, fargs, f
		case hasProfile:
			// libcontainer compiles and loads the profile itself.
			var sc configs.Seccomp
			if err := readJSON(profile, &sc); err != nil {
				return started{}, fmt.Errorf("load seccomp profile: %w", err)
			}
			c2 := *lcfg
			c2.Seccomp = &sc
			lcfg = &c2
		}
	}
	if seccompProg != nil {
		defer seccompProg.Close()
	}
	tr("pre-create")
	ct, err := libcontainer.Create(r.libctRoot, id, lcfg)
	tr("libct-create")
	if err != nil {
		return started{}, fmt.Errorf("create container: %w", err)
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
	if seccompProg != nil {
		p.ExtraFiles = []*os.File{seccompProg}
	}
	switch mode {
	case "tty":
		p.ConsoleSocket = os.NewFile(startFdConsole, "console")
	case "pipes", "stdin":
		p.Stdout = os.NewFile(startFdStdout, "stdout")
		p.Stderr = os.NewFile(startFdStderr, "stderr")
		if mode == "stdin" {
			p.Stdin = os.NewFile(startFdStdin, "stdin")
		}
	default:
		_ = ct.Destroy()
		return started{}, fmt.Errorf("start mode %q: %w", mode, ErrInvalid)
	}
	if err := ct.Run(p); err != nil {
		tr("libct-run")
		_ = ct.Destroy()
		return started{}, fmt.Errorf("run %v: %w", c.Args, err)
	}
	tr("libct-run")
	pid, err := p.Pid()
	if err != nil {
		_ = ct.Signal(unix.SIGKILL)
		_ = ct.Destroy()
		return started{}, fmt.Errorf("run %v: %w", c.Args, err)
	}
	waitExeced(pid, c.Init)
	tr("execed")
	res := started{pid: pid, sharedPidNS: !lcfg.Namespaces.Contains(configs.NEWPID) || lcfg.Namespaces.PathOf(configs.NEWPID) != ""}
	if st, err := ct.State(); err == nil {
		paths := st.CgroupPaths
		res.memcg, res.freezer = paths["memory"], paths["freezer"]
		if res.memcg == "" {
			res.memcg = paths[""]
		}
		if res.freezer == "" {
			res.freezer = paths[""]
		}
	}
	return res, nil
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

// runDestroy is `__destroy ROOT RUNROOT ID [remove]`: it removes libcontainer's state and
// cgroups of an exited container; with remove, it removes the container (auto-remove).
func runDestroy(args []string) int {
	if len(args) != 3 && !(len(args) == 4 && args[3] == "remove") {
		fmt.Fprintln(os.Stderr, "usage: __destroy ROOT RUNROOT ID [remove]")
		return 2
	}
	r, err := New(Config{Root: args[0], RunRoot: args[1]})
	if err != nil {
		fmt.Fprintln(os.Stderr, "destroy:", err)
		return 1
	}
	id := args[2]
	if len(args) == 4 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.Remove(ctx, id, true); err != nil {
			fmt.Fprintln(os.Stderr, "auto-remove:", err)
			return 1
		}
		return 0
	}
	ct, err := libcontainer.Load(r.libctRoot, id)
	if err != nil {
		if errors.Is(err, libcontainer.ErrNotExist) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "destroy:", err)
		return 1
	}
	if err := ct.Destroy(); err != nil {
		fmt.Fprintln(os.Stderr, "destroy:", err)
		return 1
	}
	return 0
}

// findMonitor returns the berth-monitor binary: $BERTH_MONITOR, else berth-monitor next to the
// shim (or next to the running executable); "" when there is none, and the monitor then runs
// as `SHIM __monitor`.
func findMonitor(shim string) string {
	if p := os.Getenv("BERTH_MONITOR"); p != "" {
		return p
	}
	return findBeside(shim, "berth-monitor")
}

// findBeside returns the executable called name next to the shim or the running executable,
// or "".
func findBeside(shim, name string) string {
	dirs := make([]string, 0, 2)
	if shim != "" && shim != "/proc/self/exe" {
		dirs = append(dirs, filepath.Dir(shim))
	}
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}
