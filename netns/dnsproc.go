package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func (m *Manager) dnsPidPath(network string) string {
	return filepath.Join(m.cfg.RunRoot, "dns", network+".pid")
}

// dnsPID returns the PID of the network's live DNS server, or 0.
func (m *Manager) dnsPID(network string) int {
	data, err := os.ReadFile(m.dnsPidPath(network))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	if !m.isDNSProcess(pid, m.ipamPath(network)) {
		return 0
	}
	return pid
}

// isDNSProcess reports whether pid is a live (not zombie) DNS server for the records file.
func (m *Manager) isDNSProcess(pid int, records string) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte("\x00--records\x00"+records+"\x00"))
}

// findDNSProcesses scans /proc for DNS servers of the records file (pid files can be lost
// when a berth process is killed between start and write).
func (m *Manager) findDNSProcesses(records string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if m.isDNSProcess(pid, records) {
			out = append(out, pid)
		}
	}
	return out
}

// ensureDNS starts the network's DNS server unless it runs. The sockets are bound here, so a
// taken port 53 is reported to the caller and the server answers as soon as it is started.
func (m *Manager) ensureDNS(ctx context.Context, n *Network) error {
	if m.dnsPID(n.Name) != 0 {
		return nil
	}
	records := m.ipamPath(n.Name)
	addr := net.JoinHostPort(n.Gateway, "53")
	pc, ln, err := listenDNS(addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		// Most likely a server of this network that lost its PID file (its berth was killed
		// before the server wrote it, or the run root was cleaned): find it by its command line,
		// which costs a scan of /proc, and take its place.
		for _, pid := range m.findDNSProcesses(records) {
			killWait(pid)
		}
		// The kernel frees a killed process's sockets a moment after it has exited.
		pc, ln, err = listenDNS(addr)
		for i := 0; i < 500 && errors.Is(err, syscall.EADDRINUSE); i++ {
			time.Sleep(time.Millisecond)
			pc, ln, err = listenDNS(addr)
		}
	}
	if err != nil {
		return fmt.Errorf("DNS server for %q: %w", n.Name, err)
	}
	defer pc.Close()
	defer ln.Close()
	uf, err := pc.(*net.UDPConn).File()
	if err != nil {
		return fmt.Errorf("DNS server socket: %w", err)
	}
	defer uf.Close()
	tf, err := ln.(*net.TCPListener).File()
	if err != nil {
		return fmt.Errorf("DNS server socket: %w", err)
	}
	defer tf.Close()

	logf, err := os.OpenFile(filepath.Join(m.cfg.RunRoot, "dns", n.Name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("DNS server log: %w", err)
	}
	defer logf.Close()
	pidPath := m.dnsPidPath(n.Name)
	os.Remove(pidPath)
	args := append(append([]string{}, m.cfg.DNSBinary[1:]...),
		"--network", n.Name, "--records", records, "--self", n.Gateway, "--pid-file", pidPath, "--fds")
	cmd := exec.Command(m.cfg.DNSBinary[0], args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{uf, tf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start DNS server for %q: %w", n.Name, err)
	}
	// Reap it if it dies while this process lives; after this process exits init does.
	go cmd.Wait()
	// The server writes its PID file once it runs (its command line, by which dnsPID checks
	// it, is set by then). Wait for that, so that a quick RemoveNetwork finds it.
	for i := 0; i < 1000 && m.dnsPID(n.Name) != cmd.Process.Pid; i++ {
		time.Sleep(time.Millisecond)
	}
	if m.dnsPID(n.Name) != cmd.Process.Pid {
		killWait(cmd.Process.Pid)
		return fmt.Errorf("DNS server for %q did not start (see %s)", n.Name, logf.Name())
	}
	return nil
}

// listenDNS binds the DNS server's UDP socket and TCP listener on addr.
func listenDNS(addr string) (net.PacketConn, net.Listener, error) {
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%s/udp: %w", addr, err)
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return nil, nil, fmt.Errorf("%s/tcp: %w", addr, err)
	}
	return pc, ln, nil
}

// stopDNS stops the network's DNS server(s); none is not an error.
func (m *Manager) stopDNS(network string) error {
	// A server writes its own PID file before it serves, so one is missing only for a server
	// that never got that far or a run root that was cleaned: then scan /proc.
	if pid := m.dnsPID(network); pid != 0 {
		killWait(pid)
	} else {
		for _, pid := range m.findDNSProcesses(m.ipamPath(network)) {
			killWait(pid)
		}
	}
	if err := os.Remove(m.dnsPidPath(network)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove DNS pid file: %w", err)
	}
	os.Remove(filepath.Join(m.cfg.RunRoot, "dns", network+".log"))
	return nil
}

// killWait ends a DNS server and waits (up to 1s) until it is gone and its sockets are free.
// The server keeps no state of its own (the records are berth's files), so SIGKILL is safe,
// and it does not make the caller wait for a graceful shutdown (~50 ms per network).
func killWait(pid int) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	gone := func() bool {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		i := bytes.LastIndexByte(stat, ')')
		return i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X'
	}
	p.Signal(syscall.SIGKILL)
	for i := 0; i < 1000 && !gone(); i++ {
		time.Sleep(time.Millisecond)
	}
}
