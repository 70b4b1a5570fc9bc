package netns

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// EndpointConfig is how a container joins a network.
type EndpointConfig struct {
	IPv4Address string // static address (Compose ipv4_address); "" = next free
	// Aliases are extra DNS names: the service name, networks.<n>.aliases.
	Aliases       []string
	Hostname      string
	ContainerName string
	MacAddress    string
	// Links are names only this container resolves (Compose `links: [db:database]`): each
	// alias answers with the addresses of its target name on the network.
	Links map[string]string
}

// Endpoint is a container's attachment to a network.
type Endpoint struct {
	Network   string
	IP        string // e.g. 10.210.0.2
	Gateway   string
	Prefix    int    // e.g. 24
	Interface string // inside the container: eth0, eth1, ...
	MAC       string
	HostVeth  string
}

func (m *Manager) vethName(containerID, network string) (host, peer string) {
	h := sha256.Sum256([]byte(m.rootID + "/" + containerID + "/" + network))
	x := hex.EncodeToString(h[:])[:11]
	return "vb" + x, "vp" + x
}

// Attach connects the container's sandbox (CreateSandbox first) to a network: an address
// from the network's book, a veth pair whose inner end becomes the next free ethN, and DNS
// names. The first non-internal network attached provides the default route. Attaching an
// attached container returns its endpoint.
func (m *Manager) Attach(ctx context.Context, containerID, network string, ep EndpointConfig) (Endpoint, error) {
	if err := validID(containerID); err != nil {
		return Endpoint{}, err
	}
	n, err := m.readRecord(network)
	if err != nil {
		return Endpoint{}, err
	}
	if !m.sandboxMounted(containerID) {
		return Endpoint{}, fmt.Errorf("attach %s to %q: %w", shortID(containerID), network, ErrNoSandbox)
	}
	if ep.MacAddress != "" {
		if _, err := net.ParseMAC(ep.MacAddress); err != nil {
			return Endpoint{}, fmt.Errorf("mac_address %q: %w", ep.MacAddress, ErrInvalid)
		}
	}
	hostVeth, peerVeth := m.vethName(containerID, network)
	names := endpointNames(ep)
	links := endpointLinks(ep.Links)
	h, ns, err := m.sandboxHandle(containerID)
	if err != nil {
		return Endpoint{}, err
	}
	defer ns.Close()
	defer h.Delete()
	// The interface name is chosen before the record is written, saving a second write.
	nextIface, err := nextEth(h)
	if err != nil {
		return Endpoint{}, err
	}

	// The record comes first: a crash after it leaves a record that the next Attach reuses
	// or that Detach/Prune removes; never an address in use without a record.
	var rec endpointRecord
	fresh := false
	err = m.withIPAM(network, func(st *ipamState) (bool, error) {
		if e, ok := st.Endpoints[containerID]; ok {
			rec = *e
			if !equalStrings(e.Names, names) || !maps.Equal(e.Links, links) {
				e.Names, e.Links = names, links
				return true, nil
			}
			return false, nil
		}
		m.sweepStale(st)
		ip, err := st.allocate(ep.IPv4Address)
		if err != nil {
			return false, err
		}
		rec = endpointRecord{Container: containerID, IP: ip.String(), Interface: nextIface, HostVeth: hostVeth, MAC: ep.MacAddress, Names: names, Links: links}
		st.Endpoints[containerID] = &rec
		fresh = true
		return true, nil
	})
	if err != nil {
		return Endpoint{}, fmt.Errorf("attach %s to %q: %w", shortID(containerID), network, err)
	}
	_, subnet, _ := net.ParseCIDR(n.Subnet)
	prefix, _ := subnet.Mask.Size()

	if !fresh {
		if m.wired(h, &rec) {
			return m.endpoint(n, &rec, rec.Interface, prefix), nil
		}
	}
	iface, err := m.wire(n, h, int(ns), &rec, peerVeth, prefix)
	if err != nil {
		deleteLink(rec.HostVeth)
		if fresh {
			m.withIPAM(network, func(st *ipamState) (bool, error) {
				delete(st.Endpoints, containerID)
				return true, nil
			})
		}
		return Endpoint{}, fmt.Errorf("attach %s to %q: %w", shortID(containerID), network, err)
	}
	if iface != rec.Interface {
		m.withIPAM(network, func(st *ipamState) (bool, error) {
			if e, ok := st.Endpoints[containerID]; ok {
				e.Interface = iface
				return true, nil
			}
			return false, nil
		})
	}
	return m.endpoint(n, &rec, iface, prefix), nil
}

func (m *Manager) endpoint(n *Network, rec *endpointRecord, iface string, prefix int) Endpoint {
	return Endpoint{Network: n.Name, IP: rec.IP, Gateway: n.Gateway, Prefix: prefix, Interface: iface,
		MAC: rec.MAC, HostVeth: rec.HostVeth}
}

// endpointNames is the deduplicated, lower-cased list of DNS names for an endpoint.
func endpointNames(ep EndpointConfig) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range append(append([]string{}, ep.Aliases...), ep.ContainerName, ep.Hostname) {
		n = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(n)), ".")
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}

// endpointLinks normalises link aliases like names; nil when there are none.
func endpointLinks(links map[string]string) map[string]string {
	var out map[string]string
	for alias, target := range links {
		alias = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(alias)), ".")
		target = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(target)), ".")
		if alias == "" || target == "" || alias == target {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[alias] = target
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sweepStale drops endpoints of containers whose sandbox is gone (a killed berth, a reboot).
func (m *Manager) sweepStale(st *ipamState) bool {
	changed := false
	for id, e := range st.Endpoints {
		if !m.sandboxMounted(id) {
			deleteLink(e.HostVeth)
			delete(st.Endpoints, id)
			changed = true
		}
	}
	return changed
}

// wired reports whether the endpoint's veth pair exists with its address inside the sandbox.
func (m *Manager) wired(h *netlink.Handle, rec *endpointRecord) bool {
	host, err := netlink.LinkByName(rec.HostVeth)
	if err != nil || host.Attrs().MasterIndex == 0 || rec.Interface == "" {
		return false
	}
	link, err := h.LinkByName(rec.Interface)
	if err != nil {
		return false
	}
	addrs, err := h.AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.IP.String() == rec.IP {
			return true
		}
	}
	return false
}

// wire creates the veth pair with its inner end inside the sandbox (h, nsFD) and configures
// it as rec.Interface, or the next free ethN when that name is taken. It returns the name.
func (m *Manager) wire(n *Network, h *netlink.Handle, nsFD int, rec *endpointRecord, peer string, prefix int) (string, error) {
	br, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		return "", fmt.Errorf("bridge %s of network %q is missing (run EnsureNetwork): %w", n.Bridge, n.Name, err)
	}
	veth := &netlink.Veth{
		LinkAttrs: netlink.LinkAttrs{Name: rec.HostVeth, MTU: br.Attrs().MTU, MasterIndex: br.Attrs().Index,
			TxQLen: -1, Flags: net.FlagUp},
		PeerName:      peer,
		PeerNamespace: netlink.NsFd(nsFD),
		PeerMTU:       uint32(br.Attrs().MTU),
	}
	if rec.MAC != "" {
		mac, _ := net.ParseMAC(rec.MAC)
		veth.PeerHardwareAddr = mac
	}
	// Optimistic: a leftover pair of an interrupted attempt is removed only when in the way.
	if err := netlink.LinkAdd(veth); errors.Is(err, unix.EEXIST) {
		deleteLink(rec.HostVeth)
		if l, err := h.LinkByName(peer); err == nil {
			h.LinkDel(l)
		}
		err = netlink.LinkAdd(veth)
		if err != nil {
			return "", fmt.Errorf("create veth %s: %w", rec.HostVeth, err)
		}
	} else if err != nil {
		return "", fmt.Errorf("create veth %s: %w", rec.HostVeth, err)
	}
	inner, err := h.LinkByName(peer)
	if err != nil {
		return "", fmt.Errorf("find %s in sandbox: %w", peer, err)
	}
	iface := rec.Interface
	for try := 0; ; try++ {
		if iface == "" {
			if iface, err = nextEth(h); err != nil {
				return "", err
			}
		}
		err := h.LinkSetName(inner, iface)
		if err == nil {
			break
		}
		// The name is taken (a repair, or another Attach of the same container): take the next.
		if !errors.Is(err, unix.EEXIST) || try == 3 {
			return "", fmt.Errorf("rename %s to %s: %w", peer, iface, err)
		}
		iface = ""
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(rec.IP).To4(), Mask: net.CIDRMask(prefix, 32)}}
	if err := h.AddrAdd(inner, addr); err != nil && !errors.Is(err, unix.EEXIST) {
		return "", fmt.Errorf("add %s to %s: %w", addr.IPNet, iface, err)
	}
	if err := h.LinkSetUp(inner); err != nil {
		return "", fmt.Errorf("bring up %s: %w", iface, err)
	}
	if !n.Internal {
		// The first non-internal network gives the default route; EEXIST means one has it.
		gw := net.ParseIP(n.Gateway).To4()
		if err := h.RouteAdd(&netlink.Route{LinkIndex: inner.Attrs().Index, Gw: gw}); err != nil && !errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("default route via %s: %w", gw, err)
		}
	}
	return iface, nil
}

// nextEth returns the first ethN not present in the sandbox.
func nextEth(h *netlink.Handle) (string, error) {
	links, err := h.LinkList()
	if err != nil {
		return "", fmt.Errorf("list sandbox links: %w", err)
	}
	used := map[string]bool{}
	for _, l := range links {
		used[l.Attrs().Name] = true
	}
	for i := 0; ; i++ {
		if name := "eth" + strconv.Itoa(i); !used[name] {
			return name, nil
		}
	}
}

// Detach disconnects the container from the network: its veth pair, address and DNS names
// go. A container that is not attached, or a missing network, is not an error.
func (m *Manager) Detach(ctx context.Context, containerID, network string) error {
	if err := validID(containerID); err != nil {
		return err
	}
	st, err := m.readIPAM(network)
	if errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	hostVeth, _ := m.vethName(containerID, network)
	if e, ok := st.Endpoints[containerID]; ok && e.HostVeth != "" {
		hostVeth = e.HostVeth
	}
	// The link goes first: a crash afterwards leaves only a record, which the next Detach or
	// sweep removes.
	if err := deleteLink(hostVeth); err != nil {
		return err
	}
	if err := m.dropEndpoint(network, containerID); err != nil {
		return err
	}
	return m.restoreDefaultRoute(containerID)
}

// dropEndpoint removes the container's endpoint record from the network's address book; a
// missing record or network is not an error.
func (m *Manager) dropEndpoint(network, containerID string) error {
	err := m.withIPAM(network, func(st *ipamState) (bool, error) {
		if _, ok := st.Endpoints[containerID]; !ok {
			return false, nil
		}
		delete(st.Endpoints, containerID)
		return true, nil
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// restoreDefaultRoute gives a sandbox that lost its default route (its network was detached)
// one through another non-internal network it is still attached to.
func (m *Manager) restoreDefaultRoute(containerID string) error {
	if !m.sandboxMounted(containerID) {
		return nil
	}
	eps, err := m.Endpoints(context.Background(), containerID)
	if err != nil || len(eps) == 0 {
		return err
	}
	h, ns, err := m.sandboxHandle(containerID)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer h.Delete()
	routes, err := h.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list sandbox routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			return nil
		}
	}
	for _, e := range eps {
		n, err := m.readRecord(e.Network)
		if err != nil || n.Internal || e.Interface == "" {
			continue
		}
		link, err := h.LinkByName(e.Interface)
		if err != nil {
			continue
		}
		gw := net.ParseIP(n.Gateway).To4()
		if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: gw}); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("default route via %s: %w", gw, err)
		}
		return nil
	}
	return nil
}

// Endpoints returns the container's endpoints, by network name.
func (m *Manager) Endpoints(ctx context.Context, containerID string) ([]Endpoint, error) {
	nets, err := m.containerNetworks(containerID)
	if err != nil {
		return nil, err
	}
	var out []Endpoint
	for _, name := range nets {
		n, err := m.readRecord(name)
		if err != nil {
			continue
		}
		st, err := m.readIPAM(name)
		if err != nil {
			continue
		}
		rec, ok := st.Endpoints[containerID]
		if !ok {
			continue
		}
		_, subnet, err := net.ParseCIDR(n.Subnet)
		if err != nil {
			continue
		}
		prefix, _ := subnet.Mask.Size()
		out = append(out, m.endpoint(n, rec, rec.Interface, prefix))
	}
	return out, nil
}
