package monitor

// The two helpers that run inside containers, bind-mounted read-only at /dev/.berth-init:
// the reaper that is PID 1 of `init: true` containers, and the loader of precompiled seccomp
// programs. They live in this small binary rather than in berth-shim because they run once
// per container start (the loader) or for the container's whole life (the reaper): a 2 MB
// static binary starts faster and maps less memory than the 7 MB shim.

import (
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/signal"
	goruntime "runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// InitArg selects Init, SeccompArg SeccompExec (as the first argument of the binary).
	InitArg    = "__init"
	SeccompArg = "__seccomp"

	// ProgramMagic marks a stored seccomp program: a header record (seccomp(2) flags, magic)
	// and the BPF instructions, all as 8-byte little-endian records.
	ProgramMagic = 0xbe47f1a6
	// MaxFilterLen is the kernel's BPF_MAXINSNS.
	MaxFilterLen = 4096
)

// ValidProgram reports whether b is a stored seccomp program.
func ValidProgram(b []byte) bool {
	return len(b) > 8 && len(b)%8 == 0 && len(b)/8 <= MaxFilterLen+1 &&
		binary.LittleEndian.Uint32(b[4:]) == ProgramMagic
}

func stderr(msg ...string) {
	for _, m := range msg {
		_, _ = io.WriteString(os.Stderr, m)
	}
	_, _ = io.WriteString(os.Stderr, "\n")
}

// Init is PID 1 of containers with Init: it starts the command, forwards signals to it, reaps
// every orphan and exits with the command's status.
func Init(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		stderr("berth-init: no command")
		return 127
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	path, err := exec.LookPath(args[0])
	if err != nil {
		stderr("berth-init: ", err.Error())
		return 127
	}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{0, 1, 2},
		Sys:   &syscall.SysProcAttr{},
	})
	if err != nil {
		stderr("berth-init: ", err.Error())
		return 126
	}
	for sig := range sigs {
		s := sig.(syscall.Signal)
		switch s {
		case unix.SIGCHLD:
			for {
				var ws unix.WaitStatus
				wpid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if err != nil || wpid <= 0 {
					break
				}
				if wpid == pid {
					if ws.Signaled() {
						return 128 + int(ws.Signal())
					}
					return ws.ExitStatus()
				}
			}
		case unix.SIGURG, unix.SIGPIPE:
			// The Go runtime's own preemption signal, and one that concerns only us.
		default:
			_ = unix.Kill(pid, s)
		}
	}
	return 0
}

// SeccompExec loads the seccomp program it reads from fd 3 (with TSYNC, under the
// no_new_privs libcontainer set) and execs args. It refuses to run the command unconfined.
func SeccompExec(args []string) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	f := os.NewFile(3, "seccomp")
	prog, err := io.ReadAll(io.LimitReader(f, 8*MaxFilterLen+9))
	f.Close()
	if err != nil || !ValidProgram(prog) {
		stderr("berth: no seccomp program: refusing to run unconfined")
		return 126
	}
	if len(args) == 0 {
		stderr("berth: no command")
		return 127
	}
	flags := binary.LittleEndian.Uint32(prog) | unix.SECCOMP_FILTER_FLAG_TSYNC
	filter := make([]unix.SockFilter, len(prog)/8-1)
	for i := range filter {
		b := prog[8*(i+1):]
		filter[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.LittleEndian.Uint32(b[4:])}
	}
	bin, err := exec.LookPath(args[0])
	if err != nil {
		stderr("berth: exec ", args[0], ": ", err.Error())
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			return 127
		}
		return 126
	}
	goruntime.LockOSThread()
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		stderr("berth: load seccomp filter: ", errno.Error())
		return 126
	}
	goruntime.KeepAlive(filter)
	err = syscall.Exec(bin, args, os.Environ())
	stderr("berth: exec ", args[0], ": ", err.Error())
	if errors.Is(err, syscall.ENOENT) {
		return 127
	}
	return 126
}
