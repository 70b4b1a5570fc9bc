package monitor

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper collects every child of the monitor, which is a child subreaper: its own helpers
// (__start, __health, __destroy) and, once __start has exited, the container's init. Exits are
// delivered to whoever waits for the pid; an exit nobody waits for yet is kept until asked for.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
	exited  map[int]syscall.WaitStatus
}

func newReaper() *reaper {
	r := &reaper{waiting: map[int]chan syscall.WaitStatus{}, exited: map[int]syscall.WaitStatus{}}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGCHLD)
	go func() {
		for range sigs {
			r.reap()
		}
	}()
	return r
}

// reap collects every exited child without blocking. It reaps under r.mu, so that a pid
// found in r.waiting under r.mu names a process that was not reaped (see signal).
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG|syscall.WALL, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		if ch, ok := r.waiting[pid]; ok {
			delete(r.waiting, pid)
			ch <- ws
		} else {
			if len(r.exited) >= 256 {
				clear(r.exited)
			}
			r.exited[pid] = ws
		}
	}
}

// signal sends sig to pid unless it was reaped already (then its pid may name another
// process): ESRCH.
func (r *reaper) signal(pid int, sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.waiting[pid]; !ok || pid <= 0 {
		return syscall.ESRCH
	}
	return syscall.Kill(pid, sig)
}

// forget drops exits nobody claimed (stray processes of a previous run).
func (r *reaper) forget() {
	r.mu.Lock()
	clear(r.exited)
	r.mu.Unlock()
}

// wait returns a channel that receives pid's exit status.
func (r *reaper) wait(pid int) <-chan syscall.WaitStatus {
	ch := make(chan syscall.WaitStatus, 1)
	r.mu.Lock()
	if ws, ok := r.exited[pid]; ok {
		delete(r.exited, pid)
		ch <- ws
	} else {
		r.waiting[pid] = ch
	}
	r.mu.Unlock()
	return ch
}

// spawn starts path with argv and files as its fds 0, 1, 2, 3... (-1 closes that fd) and
// returns its pid and a channel for its exit status. The child runs in the monitor's session,
// in /.
func (r *reaper) spawn(path string, argv []string, files []int) (int, <-chan syscall.WaitStatus, error) {
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = uintptr(f)
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{Dir: "/", Env: os.Environ(), Files: fds})
	if err != nil {
		return 0, nil, err
	}
	r.waiting[pid] = ch
	return pid, ch, nil
}

// exitCode converts a wait status to a shell-style exit code.
func exitCode(ws syscall.WaitStatus) int {
	switch {
	case ws.Exited():
		return ws.ExitStatus()
	case ws.Signaled():
		return 128 + int(ws.Signal())
	}
	return 255
}
