//go:build linux && integration

package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	vns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// TestMain doubles as the DNS server binary: the manager starts `<test binary> __dns ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "__dns" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := RunDNS(ctx, os.Args[2:])
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, "dns:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
}

// newTestManager returns a manager on temporary roots with the 10.211/16 test pool and
// registers a cleanup that removes everything it made, even when the test fails.
func newTestManager(t testing.TB) *Manager {
	t.Helper()
	requireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(Config{Root: t.TempDir(), RunRoot: t.TempDir(), Pool: "10.211.0.0/16", DNSBinary: []string{exe, "__dns"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cleanupManager(t, m) })
	return m
}

func cleanupManager(t testing.TB, m *Manager) {
	ctx := context.Background()
	if ids, err := m.ListSandboxes(ctx); err == nil {
		for _, id := range ids {
			if err := m.RemoveSandbox(ctx, id); err != nil {
				t.Errorf("cleanup sandbox %s: %v", id, err)
			}
		}
	}
	if nets, err := m.ListNetworks(ctx); err == nil {
		for _, n := range nets {
			if err := m.RemoveNetworkForce(ctx, n.Name); err != nil {
				t.Errorf("cleanup network %s: %v", n.Name, err)
			}
		}
	}
	if err := m.Recover(ctx); err != nil {
		t.Errorf("cleanup recover: %v", err)
	}
	dir := filepath.Join(m.cfg.RunRoot, "netns")
	for isMountPoint(dir) {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
			break
		}
	}
}

// inNS runs fn on a thread inside the namespace at path. Sockets made in fn stay in it.
func inNS(t testing.TB, path string, fn func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ns, err := vns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := vns.Set(ns); err != nil {
			errc <- err
			return
		}
		err = fn()
		if vns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// echoServers starts, inside the sandbox, a TCP server that first writes the client's
// address and then echoes, and a UDP server that answers every datagram with
// "<client ip>:<datagram>".
func echoServers(t testing.TB, path string, tcpPort, udpPort int) {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := inNS(t, path, func() error {
		var err error
		if ln, err = net.Listen("tcp4", ":"+strconv.Itoa(tcpPort)); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp4", ":"+strconv.Itoa(udpPort))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				fmt.Fprintf(c, "%s\n", host)
				io.Copy(c, c)
			}()
		}
	}()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(addr.String())
			pc.WriteTo([]byte(host+":"+string(buf[:n])), addr)
		}
	}()
}

// tcpRoundTrip connects to addr (from the namespace at path, or the host when path is ""),
// and returns the peer address the server saw, after checking the echo.
func tcpRoundTrip(t *testing.T, path, addr string, timeout time.Duration) (string, error) {
	t.Helper()
	var c net.Conn
	dial := func() error {
		var err error
		c, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	}
	var err error
	if path == "" {
		err = dial()
	} else {
		err = inNS(t, path, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	seen, err := r.ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read greeting: %w", err)
	}
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	echo, err := r.ReadString('\n')
	if err != nil || echo != "ping\n" {
		return "", fmt.Errorf("echo %q: %v", echo, err)
	}
	return strings.TrimSpace(seen), nil
}

func udpRoundTrip(t *testing.T, path, addr string) (string, error) {
	t.Helper()
	var c net.Conn
	dial := func() error {
		var err error
		c, err = net.Dial("udp4", addr)
		return err
	}
	var err error
	if path == "" {
		err = dial()
	} else {
		err = inNS(t, path, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for i := 0; i < 5; i++ {
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Read(buf)
		if err == nil {
			return string(buf[:n]), nil
		}
	}
	return "", fmt.Errorf("no UDP answer from %s", addr)
}

// lookup asks the DNS server at server (from the namespace at path, or the host) for name.
func lookup(t testing.TB, path, server, name string) ([]string, int) {
	t.Helper()
	var r *dns.Msg
	q := func() error {
		c := &dns.Client{Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), dns.TypeA)
		var err error
		r, _, err = c.Exchange(m, net.JoinHostPort(server, "53"))
		if err == nil && r.Truncated {
			c.Net = "tcp"
			r, _, err = c.Exchange(m, net.JoinHostPort(server, "53"))
		}
		return err
	}
	var err error
	if path == "" {
		err = q()
	} else {
		err = inNS(t, path, q)
	}
	if err != nil {
		t.Fatalf("lookup %s at %s: %v", name, server, err)
	}
	var ips []string
	for _, a := range r.Answer {
		if a, ok := a.(*dns.A); ok {
			ips = append(ips, a.A.String())
		}
	}
	return ips, r.Rcode
}

func mustSandbox(t testing.TB, m *Manager, id string) string {
	t.Helper()
	p, err := m.CreateSandbox(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func mustAttach(t testing.TB, m *Manager, id, network string, ep EndpointConfig) Endpoint {
	t.Helper()
	e, err := m.Attach(context.Background(), id, network, ep)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestResolveAndTalk: two sandboxes on one network resolve each other by service name,
// container name and alias, and exchange TCP and UDP.
func TestResolveAndTalk(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "proj_default", Labels: map[string]string{"com.docker.compose.project": "proj"}})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "proj_default"}); err != nil || again.Subnet != n.Subnet {
		t.Fatalf("EnsureNetwork is not idempotent: %v %+v", err, again)
	}
	p1, p2 := mustSandbox(t, m, "c1"), mustSandbox(t, m, "c2")
	if again := mustSandbox(t, m, "c1"); again != p1 {
		t.Fatalf("CreateSandbox not idempotent: %s %s", p1, again)
	}
	e1 := mustAttach(t, m, "c1", n.Name, EndpointConfig{Aliases: []string{"web"}, ContainerName: "proj-web-1", Hostname: "c1host"})
	e2 := mustAttach(t, m, "c2", n.Name, EndpointConfig{Aliases: []string{"db", "database"}, ContainerName: "proj-db-1"})
	if e1.Interface != "eth0" || e1.Gateway != n.Gateway || e1.Prefix != 24 || e1.IP == e2.IP {
		t.Fatalf("endpoints: %+v %+v", e1, e2)
	}
	if again := mustAttach(t, m, "c1", n.Name, EndpointConfig{Aliases: []string{"web"}, ContainerName: "proj-web-1", Hostname: "c1host"}); again != e1 {
		t.Fatalf("Attach not idempotent: %+v vs %+v", again, e1)
	}
	for _, name := range []string{"web", "proj-web-1", "c1host", "WEB"} {
		if ips, _ := lookup(t, p2, n.Gateway, name); len(ips) != 1 || ips[0] != e1.IP {
			t.Fatalf("%s from c2: %v, want %s", name, ips, e1.IP)
		}
	}
	if ips, _ := lookup(t, p1, n.Gateway, "database"); len(ips) != 1 || ips[0] != e2.IP {
		t.Fatalf("database from c1: %v, want %s", ips, e2.IP)
	}
	if _, rc := lookup(t, p1, n.Gateway, "nosuchservice"); rc != dns.RcodeNameError {
		t.Fatalf("unknown name: rcode %d", rc)
	}
	echoServers(t, p1, 8080, 9090)
	seen, err := tcpRoundTrip(t, p2, net.JoinHostPort(e1.IP, "8080"), 2*time.Second)
	if err != nil || seen != e2.IP {
		t.Fatalf("tcp c2 -> web: seen %q, %v", seen, err)
	}
	got, err := udpRoundTrip(t, p2, net.JoinHostPort(e1.IP, "9090"))
	if err != nil || got != e2.IP+":ping" {
		t.Fatalf("udp c2 -> web: %q, %v", got, err)
	}
	// A second network gives eth1.
	n2, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "proj_back", Subnet: "10.211.77.0/24", Gateway: "10.211.77.254", IPRange: "10.211.77.128/25"})
	if err != nil {
		t.Fatal(err)
	}
	e3 := mustAttach(t, m, "c1", n2.Name, EndpointConfig{Aliases: []string{"web"}, IPv4Address: "10.211.77.200"})
	if e3.Interface != "eth1" || e3.IP != "10.211.77.200" || e3.Gateway != "10.211.77.254" {
		t.Fatalf("second endpoint: %+v", e3)
	}
	if _, err := m.Attach(ctx, "c2", n2.Name, EndpointConfig{IPv4Address: "10.211.77.200"}); !errors.Is(err, ErrAddressInUse) {
		t.Fatalf("duplicate static address: %v", err)
	}
	e4 := mustAttach(t, m, "c2", n2.Name, EndpointConfig{})
	if ip := net.ParseIP(e4.IP); ip[15] < 128 {
		t.Fatalf("address %s outside ip_range", e4.IP)
	}
	// c2 leaves the network that gave it its default route: the other one takes over.
	if err := m.Detach(ctx, "c2", n.Name); err != nil {
		t.Fatal(err)
	}
	var gw string
	if err := inNS(t, p2, func() error {
		routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
		for _, r := range routes {
			if r.Dst == nil || r.Dst.IP.IsUnspecified() {
				gw = r.Gw.String()
			}
		}
		return err
	}); err != nil || gw != n2.Gateway {
		t.Fatalf("default route after detach: %q, %v (want via %s)", gw, err, n2.Gateway)
	}
	if eps, err := m.Endpoints(ctx, "c2"); err != nil || len(eps) != 1 || eps[0].IP != e4.IP || eps[0].Interface != "eth1" {
		t.Fatalf("Endpoints(c2): %+v %v", eps, err)
	}
	if err := m.Detach(ctx, "c1", n2.Name); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, "c1", n2.Name); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
	if _, err := netlink.LinkByName(e3.HostVeth); err == nil {
		t.Fatalf("host veth %s left after Detach", e3.HostVeth)
	}
	if _, err := m.Attach(ctx, "nosandbox", n.Name, EndpointConfig{}); !errors.Is(err, ErrNoSandbox) {
		t.Fatalf("attach without sandbox: %v", err)
	}
	if err := m.RemoveNetwork(ctx, n.Name); !errors.Is(err, ErrInUse) {
		t.Fatalf("RemoveNetwork with endpoints: %v", err)
	}
}

// TestDNSReplicas: a service name returns every replica, and follows scale-down at once.
func TestDNSReplicas(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "rep"})
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for i := 1; i <= 3; i++ {
		id := fmt.Sprintf("r%d", i)
		mustSandbox(t, m, id)
		ips = append(ips, mustAttach(t, m, id, n.Name, EndpointConfig{Aliases: []string{"svc"}, ContainerName: "p-svc-" + strconv.Itoa(i)}).IP)
	}
	if got, _ := lookup(t, "", n.Gateway, "svc"); len(got) != 3 {
		t.Fatalf("3 replicas: %v", got)
	}
	for _, id := range []string{"r2", "r3"} {
		if err := m.RemoveSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := lookup(t, "", n.Gateway, "svc"); len(got) != 1 || got[0] != ips[0] {
		t.Fatalf("after scale to 1: %v, want [%s]", got, ips[0])
	}
}

// TestPublish: published ports answer on 127.0.0.1 and on host addresses, keep the client's
// address, conflict cleanly, and come back the same after a restart.
func TestPublish(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "pub"})
	if err != nil {
		t.Fatal(err)
	}
	p1 := mustSandbox(t, m, "web1")
	e1 := mustAttach(t, m, "web1", n.Name, EndpointConfig{Aliases: []string{"web"}})
	echoServers(t, p1, 80, 53)
	out, err := m.Publish(ctx, "web1", []PortMapping{{ContainerPort: 80}, {ContainerPort: 53, Protocol: "udp"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 2 || out[0].HostPort == 0 || out[1].HostPort == 0 || out[0].ContainerIP != e1.IP || out[0].Protocol != "tcp" {
		t.Fatalf("published: %+v", out)
	}
	tcpAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(int(out[0].HostPort)))
	if seen, err := tcpRoundTrip(t, "", tcpAddr, 2*time.Second); err != nil || seen != n.Gateway {
		t.Fatalf("tcp via 127.0.0.1: seen %q (want the gateway, loopback is masqueraded), %v", seen, err)
	}
	if got, err := udpRoundTrip(t, "", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(out[1].HostPort)))); err != nil || !strings.HasSuffix(got, ":ping") {
		t.Fatalf("udp via 127.0.0.1: %q %v", got, err)
	}

	// A client in a namespace of its own behind a veth: it reaches the port on a host address
	// and the container sees the client's own address.
	cl := mustSandbox(t, m, "client")
	hostEnd, clEnd := "vbtest"+m.rootID[:6], "vbtp"+m.rootID[:6]
	t.Cleanup(func() { deleteLink(hostEnd) })
	ns, err := vns.GetFromPath(cl)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: hostEnd, TxQLen: -1}, PeerName: clEnd, PeerNamespace: netlink.NsFd(int(ns))}); err != nil {
		t.Fatal(err)
	}
	hl, _ := netlink.LinkByName(hostEnd)
	if err := netlink.AddrAdd(hl, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 211, 254, 1), Mask: net.CIDRMask(30, 32)}}); err != nil {
		t.Fatal(err)
	}
	netlink.LinkSetUp(hl)
	err = inNS(t, cl, func() error {
		l, err := netlink.LinkByName(clEnd)
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 211, 254, 2), Mask: net.CIDRMask(30, 32)}}); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.IPv4(10, 211, 254, 1)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen, err := tcpRoundTrip(t, cl, net.JoinHostPort("10.211.254.1", strconv.Itoa(int(out[0].HostPort))), 2*time.Second); err != nil || seen != "10.211.254.2" {
		t.Fatalf("tcp via host address: container saw %q (want the client's 10.211.254.2), %v", seen, err)
	}

	// Conflicts: another container, CheckPorts, and a plain listener.
	mustSandbox(t, m, "web2")
	mustAttach(t, m, "web2", n.Name, EndpointConfig{})
	if _, err := m.Publish(ctx, "web2", []PortMapping{{HostPort: out[0].HostPort, ContainerPort: 80}}); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("same port twice: %v", err)
	}
	if err := m.CheckPorts(ctx, []PortMapping{{HostPort: out[0].HostPort, ContainerPort: 1}}); !errors.Is(err, ErrPortInUse) || !strings.Contains(err.Error(), strconv.Itoa(int(out[0].HostPort))) {
		t.Fatalf("CheckPorts on a published port: %v", err)
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := uint16(l.Addr().(*net.TCPAddr).Port)
	if _, err := m.Publish(ctx, "web2", []PortMapping{{HostPort: taken, ContainerPort: 80}}); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("port with a listener: %v", err)
	}
	if err := m.CheckPorts(ctx, []PortMapping{{HostPort: taken, ContainerPort: 80}}); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("CheckPorts on a listener's port: %v", err)
	}
	if err := m.CheckPorts(ctx, []PortMapping{{HostPort: out[0].HostPort, ContainerPort: 80, Protocol: "udp"}}); err != nil {
		t.Fatalf("CheckPorts on a free udp port: %v", err)
	}

	// Restart: the random ports come back.
	if err := m.Unpublish(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tcpRoundTrip(t, "", tcpAddr, 300*time.Millisecond); err == nil {
		t.Fatal("port still answers after Unpublish")
	}
	again, err := m.Publish(ctx, "web1", []PortMapping{{ContainerPort: 80}, {ContainerPort: 53, Protocol: "udp"}})
	if err != nil {
		t.Fatal(err)
	}
	if again[0].HostPort != out[0].HostPort || again[1].HostPort != out[1].HostPort {
		t.Fatalf("ports after restart %+v, before %+v", again, out)
	}
	if got, err := m.PublishedPorts(ctx, "web1"); err != nil || len(got) != 2 {
		t.Fatalf("PublishedPorts: %+v %v", got, err)
	}
}

// TestIsolation: containers on different networks cannot reach each other, and an internal
// network has no way out even with a route added by hand.
func TestIsolation(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	na, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "iso_a"})
	if err != nil {
		t.Fatal(err)
	}
	nb, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "iso_b"})
	if err != nil {
		t.Fatal(err)
	}
	ni, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "iso_int", Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	pa, pb, pi := mustSandbox(t, m, "ca"), mustSandbox(t, m, "cb"), mustSandbox(t, m, "ci")
	ea := mustAttach(t, m, "ca", na.Name, EndpointConfig{ContainerName: "ca"})
	eb := mustAttach(t, m, "cb", nb.Name, EndpointConfig{ContainerName: "cb"})
	ei := mustAttach(t, m, "ci", ni.Name, EndpointConfig{ContainerName: "ci"})
	for _, p := range []string{pa, pb, pi} {
		echoServers(t, p, 7000, 7001)
	}
	if _, err := tcpRoundTrip(t, pa, net.JoinHostPort(eb.IP, "7000"), 500*time.Millisecond); err == nil {
		t.Fatal("network a reached network b")
	}
	if _, err := tcpRoundTrip(t, pb, net.JoinHostPort(ei.IP, "7000"), 500*time.Millisecond); err == nil {
		t.Fatal("network b reached the internal network")
	}
	if _, err := tcpRoundTrip(t, pi, net.JoinHostPort(ea.IP, "7000"), 500*time.Millisecond); err == nil {
		t.Fatal("internal network reached network a without a route")
	}
	// Even with a default route added inside, the internal bridge forwards nothing.
	err = inNS(t, pi, func() error {
		l, err := netlink.LinkByName("eth0")
		if err != nil {
			return err
		}
		return netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(ni.Gateway)})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tcpRoundTrip(t, pi, net.JoinHostPort(ea.IP, "7000"), 500*time.Millisecond); err == nil {
		t.Fatal("internal network reached network a with a route")
	}
	// The internal network still has its DNS.
	if ips, _ := lookup(t, pi, ni.Gateway, "ci"); len(ips) != 1 || ips[0] != ei.IP {
		t.Fatalf("DNS on the internal network: %v", ips)
	}
	// Sanity: the same check succeeds inside one network.
	pa2 := mustSandbox(t, m, "ca2")
	mustAttach(t, m, "ca2", na.Name, EndpointConfig{})
	if _, err := tcpRoundTrip(t, pa2, net.JoinHostPort(ea.IP, "7000"), 2*time.Second); err != nil {
		t.Fatalf("same network: %v", err)
	}
}

type leftovers struct {
	links, rules, dns, mounts int
}

func countLeftovers(t *testing.T, m *Manager, veths []string) leftovers {
	t.Helper()
	var l leftovers
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, v := range veths {
		want[v] = true
	}
	for _, link := range links {
		name := link.Attrs().Name
		if strings.HasPrefix(name, bridgePrefix+m.rootID[:4]) || want[name] {
			l.links++
		}
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, prefix := range []string{tagNet + m.rootID + ":", tagPort + m.rootID + ":"} {
		rules, err := rulesWithTag(c, prefix)
		if err != nil {
			t.Fatal(err)
		}
		l.rules += len(rules)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if pid != os.Getpid() && strings.Contains(string(cmdline), m.ipamDir()) {
				l.dns++
			}
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, filepath.Join(m.cfg.RunRoot, "netns")+"/") {
			l.mounts++
		}
	}
	return l
}

// TestCleanup: a full lifecycle leaves no bridge, veth, rule, DNS process, namespace mount or
// address record behind.
func TestCleanup(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	before := countLeftovers(t, m, nil)
	var veths []string
	for _, net := range []string{"cl_a", "cl_b"} {
		if _, err := m.EnsureNetwork(ctx, NetworkConfig{Name: net}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"x1", "x2"} {
		mustSandbox(t, m, id)
		for _, net := range []string{"cl_a", "cl_b"} {
			veths = append(veths, mustAttach(t, m, id, net, EndpointConfig{Aliases: []string{"x"}}).HostVeth)
		}
		if _, err := m.Publish(ctx, id, []PortMapping{{ContainerPort: 80}}); err != nil {
			t.Fatal(err)
		}
	}
	during := countLeftovers(t, m, veths)
	if during.links != 6 || during.dns != 2 || during.mounts != 2 || during.rules == 0 {
		t.Fatalf("while running: %+v", during)
	}
	for _, id := range []string{"x1", "x2"} {
		if err := m.RemoveSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := m.RemoveSandbox(ctx, id); err != nil {
			t.Fatalf("second RemoveSandbox: %v", err)
		}
	}
	for _, net := range []string{"cl_a", "cl_b"} {
		if err := m.RemoveNetwork(ctx, net); err != nil {
			t.Fatal(err)
		}
		if err := m.RemoveNetwork(ctx, net); err != nil {
			t.Fatalf("second RemoveNetwork: %v", err)
		}
	}
	if after := countLeftovers(t, m, veths); after != before {
		t.Fatalf("leftovers: before %+v, after %+v", before, after)
	}
	books, _ := filepath.Glob(filepath.Join(m.ipamDir(), "*.json"))
	recs, _ := filepath.Glob(filepath.Join(m.cfg.Root, "*.json"))
	if len(books)+len(recs) != 0 {
		t.Fatalf("records left: %v %v", books, recs)
	}
}

// TestCrashRecovery: what a kill -9 leaves is cleaned up by the next call.
func TestCrashRecovery(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "crash"})
	if err != nil {
		t.Fatal(err)
	}
	mustSandbox(t, m, "k1")
	e := mustAttach(t, m, "k1", n.Name, EndpointConfig{Aliases: []string{"k"}})
	pub, err := m.Publish(ctx, "k1", []PortMapping{{ContainerPort: 80}})
	if err != nil {
		t.Fatal(err)
	}

	// The DNS server is killed: EnsureNetwork starts a new one.
	pid := m.dnsPID(n.Name)
	if pid == 0 {
		t.Fatal("no DNS server")
	}
	syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 100 && m.dnsPID(n.Name) != 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "crash"}); err != nil {
		t.Fatal(err)
	}
	if np := m.dnsPID(n.Name); np == 0 || np == pid {
		t.Fatalf("DNS server not replaced: old %d new %d", pid, np)
	}
	if ips, _ := lookup(t, "", n.Gateway, "k"); len(ips) != 1 || ips[0] != e.IP {
		t.Fatalf("DNS after respawn: %v", ips)
	}

	// The PID file is lost while the server runs (a cleaned run root): the server still holds
	// gateway:53, so EnsureNetwork finds it by its command line and replaces it.
	orphan := m.dnsPID(n.Name)
	if err := os.Remove(m.dnsPidPath(n.Name)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "crash"}); err != nil {
		t.Fatalf("EnsureNetwork with an orphaned DNS server: %v", err)
	}
	if np := m.dnsPID(n.Name); np == 0 || np == orphan {
		t.Fatalf("orphaned DNS server not replaced: old %d new %d", orphan, np)
	}
	if m.isDNSProcess(orphan, m.ipamPath(n.Name)) {
		t.Fatalf("orphaned DNS server %d still runs", orphan)
	}
	if ips, _ := lookup(t, "", n.Gateway, "k"); len(ips) != 1 || ips[0] != e.IP {
		t.Fatalf("DNS after replacing the orphan: %v", ips)
	}

	// The container's namespace vanished without RemoveSandbox (berth killed, container gone):
	// removing the network sweeps its endpoint, port rules go with the next sweep.
	if err := unix.Unmount(m.SandboxPath("k1"), unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	// Its port is free for the next container (IPv4 and IPv6 wildcards are one mapping).
	p2 := mustSandbox(t, m, "k2")
	mustAttach(t, m, "k2", n.Name, EndpointConfig{})
	echoServers(t, p2, 80, 81)
	hp := pub[0].HostPort
	got, err := m.Publish(ctx, "k2", []PortMapping{{HostIP: "0.0.0.0", HostPort: hp, ContainerPort: 80}, {HostIP: "::", HostPort: hp, ContainerPort: 80}})
	if err != nil || len(got) != 1 {
		t.Fatalf("port of a vanished container: %+v %v", got, err)
	}
	if _, err := tcpRoundTrip(t, "", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(hp))), 2*time.Second); err != nil {
		t.Fatalf("reused port: %v", err)
	}
	if err := m.RemoveSandbox(ctx, "k2"); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveNetwork(ctx, n.Name); err != nil {
		t.Fatalf("RemoveNetwork after the container vanished: %v", err)
	}
	if err := m.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if after := countLeftovers(t, m, []string{e.HostVeth}); after != (leftovers{}) {
		t.Fatalf("leftovers: %+v", after)
	}

	// A network record lost (deleted by hand, or a half-done removal): Recover removes the
	// bridge, rules, DNS server and address book.
	if _, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "lost"}); err != nil {
		t.Fatal(err)
	}
	os.Remove(m.recordPath("lost"))
	if err := m.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if after := countLeftovers(t, m, nil); after != (leftovers{}) {
		t.Fatalf("leftovers after lost record: %+v", after)
	}
}

// TestConcurrentAttach: 50 containers attach at once; every address is unique.
func TestConcurrentAttach(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "many"})
	if err != nil {
		t.Fatal(err)
	}
	const count = 50
	type res struct {
		ip  string
		err error
	}
	ch := make(chan res, count)
	for i := 0; i < count; i++ {
		go func(i int) {
			id := fmt.Sprintf("m%02d", i)
			if _, err := m.CreateSandbox(ctx, id); err != nil {
				ch <- res{err: err}
				return
			}
			e, err := m.Attach(ctx, id, n.Name, EndpointConfig{Aliases: []string{"many"}})
			ch <- res{e.IP, err}
		}(i)
	}
	seen := map[string]bool{}
	for i := 0; i < count; i++ {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		if seen[r.ip] {
			t.Fatalf("address %s handed out twice", r.ip)
		}
		seen[r.ip] = true
	}
	if ips, _ := lookup(t, "", n.Gateway, "many"); len(ips) != count {
		t.Fatalf("DNS: %d addresses, want %d", len(ips), count)
	}
}

// BenchmarkAttach measures Attach alone (sandbox creation and removal are not timed).
func BenchmarkAttach(b *testing.B) {
	m := newTestManager(b)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	var times []time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		id := fmt.Sprintf("b%d", i)
		mustSandbox(b, m, id)
		b.StartTimer()
		start := time.Now()
		if _, err := m.Attach(ctx, id, n.Name, EndpointConfig{Aliases: []string{"svc"}}); err != nil {
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		b.StopTimer()
		if err := m.RemoveSandbox(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	reportP50(b, times)
}

// BenchmarkCreateSandbox measures creating and removing a sandbox.
func BenchmarkCreateSandbox(b *testing.B) {
	m := newTestManager(b)
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("s%d", i)
		if _, err := m.CreateSandbox(ctx, id); err != nil {
			b.Fatal(err)
		}
		if err := m.RemoveSandbox(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDNS measures one A query for a 3-replica service, from a container namespace.
func BenchmarkDNS(b *testing.B) {
	m := newTestManager(b)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "benchdns"})
	if err != nil {
		b.Fatal(err)
	}
	var client string
	for i := 0; i < 3; i++ {
		id := fmt.Sprintf("d%d", i)
		client = mustSandbox(b, m, id)
		mustAttach(b, m, id, n.Name, EndpointConfig{Aliases: []string{"svc"}})
	}
	var times []time.Duration
	err = inNS(b, client, func() error {
		conn, err := net.Dial("udp4", net.JoinHostPort(n.Gateway, "53"))
		if err != nil {
			return err
		}
		defer conn.Close()
		c := &dns.Conn{Conn: conn}
		q := new(dns.Msg)
		q.SetQuestion("svc.", dns.TypeA)
		for b.Loop() {
			start := time.Now()
			if err := c.WriteMsg(q); err != nil {
				return err
			}
			r, err := c.ReadMsg()
			if err != nil {
				return err
			}
			times = append(times, time.Since(start))
			if len(r.Answer) != 3 {
				return fmt.Errorf("%d answers", len(r.Answer))
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	reportP50(b, times)
}

// BenchmarkThroughput compares TCP throughput to a container directly and through a port
// published on 127.0.0.1.
func BenchmarkThroughput(b *testing.B) {
	m := newTestManager(b)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "benchtp"})
	if err != nil {
		b.Fatal(err)
	}
	p := mustSandbox(b, m, "sink")
	e := mustAttach(b, m, "sink", n.Name, EndpointConfig{})
	var ln net.Listener
	if err := inNS(b, p, func() error {
		var err error
		ln, err = net.Listen("tcp4", ":5001")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	out, err := m.Publish(ctx, "sink", []PortMapping{{ContainerPort: 5001}})
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for _, tc := range []struct{ name, addr string }{
		{"direct", net.JoinHostPort(e.IP, "5001")},
		{"published-127.0.0.1", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(out[0].HostPort)))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c, err := net.Dial("tcp4", tc.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func reportP50(b *testing.B, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	s := append([]time.Duration(nil), times...)
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	b.ReportMetric(float64(s[len(s)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(s[len(s)*99/100].Microseconds()), "p99-µs")
}

// TestAttachRepairs: an endpoint whose veth pair is gone (a crash between the address record
// and the wiring) is rewired with the same address by the next Attach.
func TestAttachRepairs(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "repair"})
	if err != nil {
		t.Fatal(err)
	}
	p := mustSandbox(t, m, "r1")
	e := mustAttach(t, m, "r1", n.Name, EndpointConfig{Aliases: []string{"r"}})
	if err := deleteLink(e.HostVeth); err != nil {
		t.Fatal(err)
	}
	again := mustAttach(t, m, "r1", n.Name, EndpointConfig{Aliases: []string{"r"}})
	if again.IP != e.IP || again.Interface != "eth0" {
		t.Fatalf("repaired endpoint %+v, was %+v", again, e)
	}
	if ips, _ := lookup(t, p, n.Gateway, "r"); len(ips) != 1 || ips[0] != e.IP {
		t.Fatalf("DNS through the repaired endpoint: %v", ips)
	}
}

// BenchmarkEnsureNetwork measures creating a network (record, bridge, nft rules, DNS server)
// and, separately, removing it again; each iteration uses a fresh name. It fails when a
// removal leaves the network's DNS server running (it would hold gateway:53 and make the next
// network on that subnet fail).
func BenchmarkEnsureNetwork(b *testing.B) {
	m := newTestManager(b)
	ctx := context.Background()
	var create, remove []time.Duration
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("bn%d", i)
		start := time.Now()
		if _, err := m.EnsureNetwork(ctx, NetworkConfig{Name: name}); err != nil {
			b.Fatalf("%v (DNS server processes: %v)", err, dnsProcesses())
		}
		create = append(create, time.Since(start))
		pid := m.dnsPID(name) // not timed: a read of the pid file and /proc
		mid := time.Now()
		if err := m.RemoveNetwork(ctx, name); err != nil {
			b.Fatal(err)
		}
		remove = append(remove, time.Since(mid))
		if m.isDNSProcess(pid, m.ipamPath(name)) {
			b.Fatalf("RemoveNetwork(%s) left its DNS server (pid %d) running: %v", name, pid, dnsProcesses())
		}
	}
	reportPercentiles(b, "create", create)
	reportPercentiles(b, "remove", remove)
}

// BenchmarkLatency measures 1-byte TCP request/response round trips from the host to a
// container, directly to its address and through a port published on 127.0.0.1. Both
// connections are used in every iteration (in alternating order) so that load from other
// jobs hits them alike.
func BenchmarkLatency(b *testing.B) {
	m := newTestManager(b)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "benchlat"})
	if err != nil {
		b.Fatal(err)
	}
	p := mustSandbox(b, m, "pong")
	e := mustAttach(b, m, "pong", n.Name, EndpointConfig{})
	echoServers(b, p, 5002, 5003)
	out, err := m.Publish(ctx, "pong", []PortMapping{{ContainerPort: 5002}})
	if err != nil {
		b.Fatal(err)
	}
	direct := pingConn(b, net.JoinHostPort(e.IP, "5002"))
	published := pingConn(b, net.JoinHostPort("127.0.0.1", strconv.Itoa(int(out[0].HostPort))))
	var dt, pt []time.Duration
	buf := make([]byte, 1)
	ping := func(c net.Conn) (time.Duration, error) {
		start := time.Now()
		if _, err := c.Write(buf); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	for i := 0; b.Loop(); i++ {
		first, second := direct, published
		if i%2 == 1 {
			first, second = published, direct
		}
		t1, err := ping(first)
		if err != nil {
			b.Fatal(err)
		}
		t2, err := ping(second)
		if err != nil {
			b.Fatal(err)
		}
		if i%2 == 1 {
			t1, t2 = t2, t1
		}
		dt = append(dt, t1)
		pt = append(pt, t2)
	}
	reportPercentiles(b, "direct", dt)
	reportPercentiles(b, "published", pt)
	if d := percentile(dt, 50); d > 0 {
		b.ReportMetric(float64(percentile(pt, 50))/float64(d), "published/direct-p50")
	}
}

// pingConn dials addr from the host, reads the echo server's greeting and returns the
// connection (closed when the benchmark ends).
func pingConn(b *testing.B, addr string) net.Conn {
	b.Helper()
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bufio.NewReader(io.LimitReader(c, 64)).ReadString('\n'); err != nil {
		b.Fatalf("greeting from %s: %v", addr, err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

// BenchmarkEndpoints200 attaches 200 sandboxes to one network (attach times are reported as
// metrics; sandbox creation is not counted), then times DNS queries from one of them: a
// distinct container name per query, and the service name all 200 share (one answer with
// 200 addresses, over UDP with a 4096-byte EDNS0 buffer). It reports the DNS server's
// VmRSS with no endpoints (after one query) and with 200 (after the timed queries). newTestManager's cleanup removes the
// sandboxes and the network even when the benchmark fails.
func BenchmarkEndpoints200(b *testing.B) {
	const count = 200
	m := newTestManager(b)
	ctx := context.Background()
	n, err := m.EnsureNetwork(ctx, NetworkConfig{Name: "bench200"})
	if err != nil {
		b.Fatal(err)
	}
	// One query first so that the server has started up; a single-label unknown name is
	// answered NXDOMAIN by the server itself (never forwarded).
	if _, rcode := lookup(b, "", n.Gateway, "warmup"); rcode != dns.RcodeNameError {
		b.Fatalf("warm-up query: rcode %d", rcode)
	}
	rssBefore := dnsRSS(b, m, n.Name)
	var attach []time.Duration
	var client string
	for i := 0; i < count; i++ {
		id := fmt.Sprintf("e%03d", i)
		p := mustSandbox(b, m, id)
		if client == "" {
			client = p
		}
		start := time.Now()
		if _, err := m.Attach(ctx, id, n.Name, EndpointConfig{Aliases: []string{"svc"}, ContainerName: id}); err != nil {
			b.Fatalf("attach %d: %v", i, err)
		}
		attach = append(attach, time.Since(start))
	}
	var total time.Duration
	for _, d := range attach {
		total += d
	}
	var names, svc []time.Duration
	err = inNS(b, client, func() error {
		conn, err := net.Dial("udp4", net.JoinHostPort(n.Gateway, "53"))
		if err != nil {
			return err
		}
		defer conn.Close()
		c := &dns.Conn{Conn: conn, UDPSize: 4096}
		query := func(name string, want int) (time.Duration, error) {
			q := new(dns.Msg)
			q.SetQuestion(dns.Fqdn(name), dns.TypeA)
			q.SetEdns0(4096, false)
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			start := time.Now()
			if err := c.WriteMsg(q); err != nil {
				return 0, err
			}
			r, err := c.ReadMsg()
			if err != nil {
				return 0, fmt.Errorf("query %s: %w", name, err)
			}
			d := time.Since(start)
			if r.Truncated || len(r.Answer) != want {
				return 0, fmt.Errorf("query %s: %d answers (truncated %v), want %d", name, len(r.Answer), r.Truncated, want)
			}
			return d, nil
		}
		for i := 0; b.Loop(); i++ {
			d, err := query(fmt.Sprintf("e%03d", i%count), 1)
			if err != nil {
				return err
			}
			names = append(names, d)
			if d, err = query("svc", count); err != nil {
				return err
			}
			svc = append(svc, d)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(total.Milliseconds()), "attach-total-ms")
	reportPercentiles(b, "attach", attach)
	reportPercentiles(b, "attach-first50", attach[:50])
	reportPercentiles(b, "attach-last50", attach[count-50:])
	reportPercentiles(b, "dns-name", names)
	reportPercentiles(b, "dns-svc200", svc)
	b.ReportMetric(float64(rssBefore), "dns-rss-empty-kB")
	b.ReportMetric(float64(dnsRSS(b, m, n.Name)), "dns-rss-200-kB")
}

// dnsProcesses lists the DNS server processes on the machine (any root) with their state,
// for failure messages.
func dnsProcesses() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil || !strings.Contains(string(cmd), "\x00__dns\x00") {
			continue
		}
		stat, _ := os.ReadFile("/proc/" + e.Name() + "/stat")
		out = append(out, fmt.Sprintf("pid %s stat %q cmd %q", e.Name(), string(stat[:min(len(stat), 60)]), strings.ReplaceAll(string(cmd), "\x00", " ")))
	}
	return out
}

// dnsRSS returns the VmRSS (kB) of the network's DNS server.
func dnsRSS(b *testing.B, m *Manager, network string) int {
	b.Helper()
	pid := m.dnsPID(network)
	if pid == 0 {
		b.Fatalf("no DNS server for %s", network)
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// percentile returns the q-th percentile (0-100) of times, which it does not modify.
func percentile(times []time.Duration, q int) time.Duration {
	if len(times) == 0 {
		return 0
	}
	s := slices.Clone(times)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*q/100)]
}

// reportPercentiles reports p50 and p99 of times in µs as "<prefix>-p50-µs" and "-p99-µs".
func reportPercentiles(b *testing.B, prefix string, times []time.Duration) {
	if len(times) == 0 {
		return
	}
	b.ReportMetric(float64(percentile(times, 50).Nanoseconds())/1e3, prefix+"-p50-µs")
	b.ReportMetric(float64(percentile(times, 99).Nanoseconds())/1e3, prefix+"-p99-µs")
}
