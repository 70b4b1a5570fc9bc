package runtime

// Precompiled seccomp filters.
//
// libcontainer compiles the seccomp profile with libseccomp in every container's init, which
// costs 30-40 ms per start and per exec. berth compiles each distinct profile once, keeps the
// resulting BPF program (exactly the one libcontainer would load, read back from the kernel)
// in <Root>/.seccomp/, and installs it in the container with the shim: the container's
// process becomes `/dev/.berth-init __seccomp -- ARGS...`, which loads the program from fd 3
// (with TSYNC, under the no_new_privs that libcontainer set) and execs ARGS. Whenever a
// condition for that is missing (no static shim, no_new_privs off, filter flags, a command
// that cannot be found before start) the container keeps libcontainer's own seccomp setup.

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/berth-dev/berth/runtime/monitor"
	"github.com/opencontainers/runc/libcontainer/configs"
	libseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	"golang.org/x/sys/unix"
)

const (
	seccompArg       = "__seccomp"
	seccompExportArg = "__seccomp-export"
	seccompFile      = "seccomp.bpf" // in the container's directory
	// seccompProfileFile holds the container's seccomp profile (configs.Seccomp), apart from
	// libct.json; containers created before it existed keep the profile in libct.json.
	seccompProfileFile = "seccomp.json"
)

var (
	errNoFastSeccomp    = errors.New("precompiled seccomp not applicable")
	errNoSeccompProgram = fmt.Errorf("no precompiled seccomp program: %w", errNoFastSeccomp)
)

// fastSeccompOK reports whether the precompiled path can be used for a config: the profile
// sets no filter flags and no notify action, and the process runs with no_new_privs (needed
// to load a filter without CAP_SYS_ADMIN).
func fastSeccompOK(sc *configs.Seccomp, noNewPrivs bool) bool {
	if sc == nil || !noNewPrivs || sc.DefaultAction == configs.Notify || sc.ListenerPath != "" {
		return false
	}
	if _, ok := seccompFlags(sc); !ok {
		return false
	}
	for _, s := range sc.Syscalls {
		if s.Action == configs.Notify || s.Action == configs.Log {
			return false
		}
	}
	return sc.DefaultAction != configs.Log
}

// staticShim returns the static binary that runs inside containers (the reaper and the
// seccomp loader at initPath): berth-monitor, which is small, else berth-shim when it is static.
// The answer is worked out once per Runtime (it reads ELF headers).
func (r *Runtime) staticShim() (string, bool) {
	r.helperOnce.Do(r.findHelpers)
	return r.helper, r.helper != ""
}

func (r *Runtime) findHelpers() {
	if mon := findMonitor(r.shim); mon != "" && isStatic(mon) {
		r.helper = mon
	} else if r.shim != "/proc/self/exe" && isStatic(r.shim) {
		r.helper = r.shim
	}
	if l := findBeside(r.shim, "berth-seccomp"); l != "" && r.helper != "" && isStatic(l) {
		r.loader = l
	}
}

// seccompLoader returns berth-seccomp, the small C loader of precompiled programs
// (runtime/loader), when it lies beside the shim or the monitor and is static. Without it the
// Go loader in the static shim does the same job, a few milliseconds of CPU slower per start.
func (r *Runtime) seccompLoader() (string, bool) {
	r.helperOnce.Do(r.findHelpers)
	return r.loader, r.loader != ""
}

// seccompLoaderIn returns where the seccomp loader is mounted in a container made from lc: at
// seccompLoaderPath when the container has berth-seccomp, else at initPath (the Go loader;
// containers created before berth-seccomp existed have only that).
func seccompLoaderIn(lc *configs.Config) string {
	for _, m := range lc.Mounts {
		if m.Destination == seccompLoaderPath {
			return seccompLoaderPath
		}
	}
	return initPath
}

// linkSeccomp gives the container directory dir the precompiled program for sc as a hard link
// to the cache entry (no data written, nothing to fsync: a link lost in a crash only means the
// container starts through libcontainer's own seccomp setup).
func (r *Runtime) linkSeccomp(sc *configs.Seccomp, dir string) error {
	p, err := r.precompiledSeccomp(sc)
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, seccompFile)
	_ = os.Remove(dst)
	if err := os.Link(p, dst); err != nil {
		prog, rerr := os.ReadFile(p)
		if rerr != nil {
			return err
		}
		return writeFileAtomic(dst, prog, 0o600)
	}
	return nil
}

// precompiledSeccomp returns the path of the cached BPF program for sc, compiling it first
// when missing.
func (r *Runtime) precompiledSeccomp(sc *configs.Seccomp) (string, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return "", err
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	maj, minor, micro := libseccomp.Version()
	h := sha256.New()
	fmt.Fprintf(h, "v1\x00%s\x00%d.%d.%d\x00", unix.ByteSliceToString(uts.Release[:]), maj, minor, micro)
	// The shim compiles the program with the libseccomp linked into it: a new shim, a new entry.
	if st, err := os.Stat(r.shim); err == nil {
		fmt.Fprintf(h, "%s\x00%d\x00%d\x00", r.shim, st.Size(), st.ModTime().UnixNano())
	}
	h.Write(b)
	dir := filepath.Join(r.root, ".seccomp")
	p := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))+".bpf")
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		return p, nil // written whole (temp, fsync, rename); checked again when loaded
	}
	// The first containers of a fresh root are created in parallel: compile once, not once each.
	r.compileMu.Lock()
	defer r.compileMu.Unlock()
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		return p, nil
	}
	t0 := time.Now()
	defer func() { r.log.Debug("seccomp profile precompiled", "took", time.Since(t0)) }()
	flags, _ := seccompFlags(sc)
	prog, err := exportSeccomp(r.shim, b, flags)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := writeFileAtomic(p, prog, 0o600); err != nil {
		return "", err
	}
	return p, nil
}

// seccompFlags converts the profile's filter flags to seccomp(2) flags; ok is false for flags
// the shim does not handle.
func seccompFlags(sc *configs.Seccomp) (uint32, bool) {
	var f uint32
	for _, fl := range sc.Flags {
		switch fl {
		case "SECCOMP_FILTER_FLAG_SPEC_ALLOW":
			f |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case "SECCOMP_FILTER_FLAG_LOG":
			f |= unix.SECCOMP_FILTER_FLAG_LOG
		case "SECCOMP_FILTER_FLAG_TSYNC":
		default:
			return 0, false
		}
	}
	return f, true
}

// A stored program is a header record (seccomp(2) flags, monitor.ProgramMagic) and the BPF
// instructions, all as 8-byte little-endian records; monitor.ValidProgram checks one.

// exportSeccomp compiles the profile (JSON of configs.Seccomp) in a helper process exactly as
// libcontainer does, installing it on one of the helper's threads, and reads the installed
// program back with PTRACE_SECCOMP_GET_FILTER.
func exportSeccomp(shim string, profile []byte, flags uint32) ([]byte, error) {
	cmd := exec.Command(shim, seccompExportArg)
	cmd.Args[0] = "berth-seccomp-export"
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("seccomp export: %w", err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	if _, err := stdin.Write(append(profile, '\n')); err != nil {
		return nil, fmt.Errorf("seccomp export: %w", err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("seccomp export: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	tid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || tid <= 0 {
		return nil, fmt.Errorf("seccomp export: bad thread id %q", line)
	}
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	ptrace := func(req, addr, data uintptr) (uintptr, error) {
		n, _, errno := unix.Syscall6(unix.SYS_PTRACE, req, uintptr(tid), addr, data, 0, 0)
		if errno != 0 {
			return 0, errno
		}
		return n, nil
	}
	if _, err := ptrace(unix.PTRACE_SEIZE, 0, 0); err != nil {
		return nil, fmt.Errorf("seccomp export: ptrace seize: %w", err)
	}
	// Detach before the helper is killed: a thread still traced by us could only be reaped by
	// this thread, and waiting for the helper would hang.
	defer func() { _, _ = ptrace(unix.PTRACE_DETACH, 0, 0) }()
	if _, err := ptrace(unix.PTRACE_INTERRUPT, 0, 0); err != nil {
		return nil, fmt.Errorf("seccomp export: ptrace interrupt: %w", err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(tid, &ws, unix.WALL, nil); err != nil {
		return nil, fmt.Errorf("seccomp export: wait: %w", err)
	}
	n, err := ptrace(unix.PTRACE_SECCOMP_GET_FILTER, 0, 0)
	if err != nil {
		return nil, fmt.Errorf("seccomp export: get filter: %w", err)
	}
	if n == 0 || n > monitor.MaxFilterLen {
		return nil, fmt.Errorf("seccomp export: filter of %d instructions", n)
	}
	filter := make([]unix.SockFilter, n)
	got, err := ptrace(unix.PTRACE_SECCOMP_GET_FILTER, 0, uintptr(unsafe.Pointer(&filter[0])))
	goruntime.KeepAlive(filter)
	if err != nil || got != n {
		return nil, fmt.Errorf("seccomp export: get filter: %d of %d instructions: %v", got, n, err)
	}
	out := make([]byte, 0, 8*n+8)
	out = binary.LittleEndian.AppendUint32(out, flags)
	out = binary.LittleEndian.AppendUint32(out, monitor.ProgramMagic)
	for _, f := range filter {
		out = binary.LittleEndian.AppendUint16(out, f.Code)
		out = append(out, f.Jt, f.Jf)
		out = binary.LittleEndian.AppendUint32(out, f.K)
	}
	// The exported program must also be one the kernel would load again.
	if !monitor.ValidProgram(out) {
		return nil, fmt.Errorf("seccomp export: invalid program")
	}
	return out, nil
}

// runSeccompExport is the helper side of exportSeccomp: it compiles and installs the profile
// read from stdin on one locked thread, prints that thread's id and waits for stdin to close.
func runSeccompExport() int {
	var sc configs.Seccomp
	line, err := bufio.NewReader(os.Stdin).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &sc)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "seccomp export:", err)
		return 1
	}
	done := make(chan int)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread dies with its filter
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "seccomp export:", err)
			done <- 1
			return
		}
		if _, err := libseccomp.InitSeccomp(&sc); err != nil {
			fmt.Fprintln(os.Stderr, "seccomp export:", err)
			done <- 1
			return
		}
		fmt.Fprintln(os.Stdout, unix.Gettid())
		// Park until the parent has read the filter and kills us.
		for {
			time.Sleep(time.Hour)
		}
	}()
	return <-done
}

// fastSeccompArgs returns the process arguments and the program pipe for a process of
// container c when its precompiled filter applies, or errNoFastSeccomp. The caller adds the
// returned file to the process' ExtraFiles (fd 3) and closes it after the start.
//
// cmd is the command the container's process ends up running (args may start with the
// reaper), cwd its working directory; both decide whether the command can be found.
func (r *Runtime) fastSeccompArgs(id, loader string, args []string, cmd, cwd string, env []string, fsys *ContainerFS) ([]string, *os.File, error) {
	prog, err := os.ReadFile(filepath.Join(r.dir(id), seccompFile))
	if err != nil || !monitor.ValidProgram(prog) || len(prog) > 60000 {
		return nil, nil, errNoSeccompProgram
	}
	if strings.Contains(cmd, "/") && !path.IsAbs(cmd) {
		cmd = path.Join("/", cwd, cmd)
	}
	if len(args) == 0 || !findExecutable(fsys, cmd, env) {
		return nil, nil, errNoFastSeccomp
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	_, err = pw.Write(prog) // fits the pipe buffer
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, nil, err
	}
	return append([]string{loader, seccompArg, "--"}, args...), pr, nil
}

// findExecutable reports whether name resolves to an executable file in the container, as
// the init's PATH lookup would find it.
func findExecutable(fsys *ContainerFS, name string, env []string) bool {
	if fsys == nil {
		return false
	}
	isExec := func(p string) bool {
		r, err := fsys.Resolve(p, true)
		if err != nil {
			return false
		}
		st, err := fsys.lstat(r)
		return err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0
	}
	if strings.Contains(name, "/") {
		return path.IsAbs(name) && isExec(name)
	}
	pathEnv := strings.TrimPrefix(defaultPath, "PATH=")
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if path.IsAbs(d) && isExec(path.Join(d, name)) {
			return true
		}
	}
	return false
}

// wantsSeccomp reports whether the container's processes run under the default profile.
func wantsSeccomp(c *ContainerConfig) bool {
	so, err := parseSecurityOpt(c.SecurityOpt)
	return libseccomp.Enabled && !c.Privileged && (err != nil || !so.seccompUnconfined)
}
