package netns

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
)

// NetworkConfig is what the engine asks for (Compose's networks.<name> after project-name
// prefixing). Empty Subnet means: the next free /24 of the pool.
type NetworkConfig struct {
	Name       string
	Labels     map[string]string
	Internal   bool
	Subnet     string // CIDR
	Gateway    string // defaults to the subnet's first address
	IPRange    string // CIDR inside Subnet that dynamic addresses come from
	DriverOpts map[string]string
}

// Network is a network as it exists on this machine.
type Network struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Bridge     string            `json:"bridge"`
	Subnet     string            `json:"subnet"`
	Gateway    string            `json:"gateway"`
	IPRange    string            `json:"ip_range,omitempty"`
	Internal   bool              `json:"internal"`
	Labels     map[string]string `json:"labels,omitempty"`
	DriverOpts map[string]string `json:"driver_opts,omitempty"`
	MTU        int               `json:"mtu,omitempty"`
	Created    time.Time         `json:"created"`
	// Endpoints is filled by InspectNetwork: container ID -> address.
	Endpoints map[string]string `json:"endpoints,omitempty"`
}

// Driver options understood (Docker's names).
const (
	OptBridgeName = "com.docker.network.bridge.name"
	OptMTU        = "com.docker.network.driver.mtu"
)

func (m *Manager) recordPath(name string) string { return filepath.Join(m.cfg.Root, name+".json") }

func networkID(name string) string {
	h := sha256.Sum256([]byte("berth-network:" + name))
	return hex.EncodeToString(h[:])
}

// bridgeName is "bt-" + 4 hex digits of the root + 8 of the name: 15 bytes, the kernel's limit.
func (m *Manager) bridgeName(name string) string {
	return bridgePrefix + m.rootID[:4] + networkID(m.rootID + "/" + name)[:8]
}

const bridgePrefix = "bt-"

func (m *Manager) readRecord(name string) (*Network, error) {
	var n Network
	if err := readJSON(m.recordPath(name), &n); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("network %q: %w", name, ErrNotFound)
		}
		return nil, err
	}
	return &n, nil
}

// EnsureNetwork creates the network or completes and verifies an existing one: record and
// address book, bridge with the gateway address, nftables rules (outbound NAT unless internal,
// isolation), and a running DNS server. It is idempotent; an existing network whose subnet or
// internal flag differs from an explicit request returns ErrMismatch.
func (m *Manager) EnsureNetwork(ctx context.Context, nc NetworkConfig) (Network, error) {
	if err := validName(nc.Name); err != nil {
		return Network{}, err
	}
	l, err := m.lockGlobal()
	if err != nil {
		return Network{}, err
	}
	defer l.Unlock()
	if err := m.recoverLocked(); err != nil {
		m.log.Warn("sweep leftovers of killed berth processes", "err", err)
	}

	var claim net.Listener // the machine lock while a new subnet is chosen and claimed
	defer func() {
		if claim != nil {
			claim.Close()
		}
	}()
	n, err := m.readRecord(nc.Name)
	switch {
	case err == nil:
		if nc.Subnet != "" && !sameCIDR(nc.Subnet, n.Subnet) {
			return Network{}, fmt.Errorf("network %q has subnet %s, not %s: %w", nc.Name, n.Subnet, nc.Subnet, ErrMismatch)
		}
		if nc.Internal != n.Internal {
			return Network{}, fmt.Errorf("network %q has internal=%t: %w", nc.Name, n.Internal, ErrMismatch)
		}
	case errors.Is(err, ErrNotFound):
		// Managers with other roots pick subnets too: choose and claim (bridge address)
		// under a machine-wide lock.
		if claim, err = machineLock(ctx); err != nil {
			return Network{}, err
		}
		if n, err = m.newRecord(nc); err != nil {
			return Network{}, err
		}
		if err := writeJSON(m.recordPath(n.Name), n); err != nil {
			return Network{}, err
		}
	default:
		return Network{}, err
	}
	if err := m.createIPAM(n.Name, n.Subnet, n.Gateway, n.IPRange); err != nil {
		return Network{}, err
	}
	if err := m.ensureBridge(n); err != nil {
		return Network{}, err
	}
	if claim != nil { // the bridge holds the subnet's address now: others see it
		claim.Close()
		claim = nil
	}
	if err := m.ensureNetworkRules(n); err != nil {
		return Network{}, err
	}
	if !n.Internal {
		if err := enableForwarding(); err != nil {
			return Network{}, err
		}
	}
	if err := m.ensureDNS(ctx, n); err != nil {
		return Network{}, err
	}
	return *n, nil
}

func sameCIDR(a, b string) bool {
	_, x, err1 := net.ParseCIDR(a)
	_, y, err2 := net.ParseCIDR(b)
	return err1 == nil && err2 == nil && x.String() == y.String()
}

// newRecord validates the request and chooses subnet and gateway. Callers hold the global lock.
func (m *Manager) newRecord(nc NetworkConfig) (*Network, error) {
	n := &Network{Name: nc.Name, ID: networkID(nc.Name), Bridge: m.bridgeName(nc.Name), Internal: nc.Internal,
		Labels: nc.Labels, DriverOpts: nc.DriverOpts, MTU: 1500, Created: time.Now().UTC()}
	if b := nc.DriverOpts[OptBridgeName]; b != "" {
		if len(b) > 15 || strings.ContainsAny(b, "/ ") {
			return nil, fmt.Errorf("%s %q: %w", OptBridgeName, b, ErrInvalid)
		}
		// Never adopt (and later delete) an interface berth did not make.
		if _, err := netlink.LinkByName(b); err == nil {
			return nil, fmt.Errorf("%s %q: an interface with that name exists: %w", OptBridgeName, b, ErrAddressInUse)
		}
		n.Bridge = b
	}
	if s := nc.DriverOpts[OptMTU]; s != "" {
		mtu, err := strconv.Atoi(s)
		if err != nil || mtu < 68 || mtu > 65535 {
			return nil, fmt.Errorf("%s %q: %w", OptMTU, s, ErrInvalid)
		}
		n.MTU = mtu
	}
	others, err := m.listRecords()
	if err != nil {
		return nil, err
	}
	var used []*net.IPNet
	for _, o := range others {
		if _, s, err := net.ParseCIDR(o.Subnet); err == nil {
			used = append(used, s)
		}
	}
	var subnet *net.IPNet
	if nc.Subnet != "" {
		_, s, err := net.ParseCIDR(nc.Subnet)
		if err != nil || s.IP.To4() == nil {
			return nil, fmt.Errorf("subnet %q is not an IPv4 CIDR: %w", nc.Subnet, ErrInvalid)
		}
		if overlapsAny(s, used) {
			return nil, fmt.Errorf("subnet %s overlaps another berth network: %w", s, ErrAddressInUse)
		}
		addrs, err := hostAddrs(n.Bridge)
		if err != nil {
			return nil, err
		}
		if overlapsAny(s, addrs) {
			return nil, fmt.Errorf("subnet %s overlaps an address of this machine: %w", s, ErrAddressInUse)
		}
		subnet = s
	} else {
		routes, err := hostRoutes()
		if err != nil {
			return nil, err
		}
		addrs, err := hostAddrs(n.Bridge)
		if err != nil {
			return nil, err
		}
		if subnet, err = pickSubnet(m.pool, 24, append(append(used, routes...), addrs...)); err != nil {
			return nil, err
		}
	}
	n.Subnet = subnet.String()
	first, last := cidrBounds(subnet)
	if nc.Gateway != "" {
		gw := net.ParseIP(nc.Gateway)
		if gw == nil || gw.To4() == nil || !subnet.Contains(gw) {
			return nil, fmt.Errorf("gateway %q is not in subnet %s: %w", nc.Gateway, subnet, ErrInvalid)
		}
		n.Gateway = gw.To4().String()
	} else {
		if last-first < 3 {
			return nil, fmt.Errorf("subnet %s is too small: %w", subnet, ErrInvalid)
		}
		n.Gateway = u32ToIP4(first + 1).String()
	}
	if nc.IPRange != "" {
		_, r, err := net.ParseCIDR(nc.IPRange)
		if err != nil || !subnet.Contains(r.IP) {
			return nil, fmt.Errorf("ip_range %q is not inside subnet %s: %w", nc.IPRange, subnet, ErrInvalid)
		}
		n.IPRange = r.String()
	}
	return n, nil
}

// hostRoutes lists the IPv4 destinations routed on this machine (the default route excepted).
func hostRoutes() ([]*net.IPNet, error) {
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 0}, 0)
	})
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	var out []*net.IPNet
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			continue
		}
		out = append(out, r.Dst)
	}
	return out, nil
}

// hostAddrs lists the IPv4 networks of addresses on this machine's interfaces (up or down),
// except the given bridge's.
func hostAddrs(except string) ([]*net.IPNet, error) {
	skip := -1
	if l, err := netlink.LinkByName(except); err == nil {
		skip = l.Attrs().Index
	}
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	var out []*net.IPNet
	for _, a := range addrs {
		if a.IPNet != nil && a.LinkIndex != skip {
			out = append(out, &net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask})
		}
	}
	return out, nil
}

// machineLock is a lock shared by every berth process on the machine, whatever its roots:
// a bound abstract unix socket, released by the kernel when the holder dies.
func machineLock(ctx context.Context) (net.Listener, error) {
	for {
		l, err := net.Listen("unix", "@berth-netns-subnets")
		if err == nil {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the subnet lock: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (m *Manager) listRecords() ([]*Network, error) {
	matches, err := filepath.Glob(filepath.Join(m.cfg.Root, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*Network
	for _, p := range matches {
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		if validName(name) != nil {
			continue
		}
		n, err := m.readRecord(name)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return nil, err
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ListNetworks returns every network berth knows, sorted by name.
func (m *Manager) ListNetworks(ctx context.Context) ([]Network, error) {
	recs, err := m.listRecords()
	if err != nil {
		return nil, err
	}
	out := make([]Network, 0, len(recs))
	for _, r := range recs {
		out = append(out, *r)
	}
	return out, nil
}

// InspectNetwork returns one network with its endpoints.
func (m *Manager) InspectNetwork(ctx context.Context, name string) (Network, error) {
	n, err := m.readRecord(name)
	if err != nil {
		return Network{}, err
	}
	if st, err := m.readIPAM(name); err == nil {
		n.Endpoints = map[string]string{}
		for id, e := range st.Endpoints {
			n.Endpoints[id] = e.IP
		}
	}
	return *n, nil
}

// RemoveNetwork removes a network and everything it owns: DNS server, rules, bridge, address
// book, record. A missing network is not an error. It refuses with ErrInUse while a container
// with a live sandbox is attached; endpoints of containers whose sandbox is gone are swept.
func (m *Manager) RemoveNetwork(ctx context.Context, name string) error {
	return m.removeNetwork(ctx, name, false)
}

// RemoveNetworkForce removes a network even while containers are attached; their endpoints
// on it are torn down.
func (m *Manager) RemoveNetworkForce(ctx context.Context, name string) error {
	return m.removeNetwork(ctx, name, true)
}

func (m *Manager) removeNetwork(ctx context.Context, name string, force bool) error {
	if err := validName(name); err != nil {
		return err
	}
	l, err := m.lockGlobal()
	if err != nil {
		return err
	}
	defer l.Unlock()
	bridge := m.bridgeName(name)
	if n, err := m.readRecord(name); err == nil {
		bridge = n.Bridge
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	// Endpoints: sweep stale ones, refuse on live ones unless forced.
	var veths []string
	err = m.withIPAM(name, func(st *ipamState) (bool, error) {
		changed := false
		for id, e := range st.Endpoints {
			if m.sandboxMounted(id) && !force {
				return changed, fmt.Errorf("network %q: container %s is attached: %w", name, shortID(id), ErrInUse)
			}
			veths = append(veths, e.HostVeth)
			delete(st.Endpoints, id)
			changed = true
		}
		return changed, nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	for _, v := range veths {
		if err := deleteLink(v); err != nil {
			return err
		}
	}
	if err := m.stopDNS(name); err != nil {
		return err
	}
	if err := m.deleteNetworkRules(name); err != nil {
		return err
	}
	if err := dropTableIfEmpty(); err != nil {
		return err
	}
	if err := reapBridgePorts(bridge); err != nil {
		return err
	}
	if err := deleteLink(bridge); err != nil {
		return err
	}
	if err := m.removeIPAM(name); err != nil {
		return err
	}
	if err := os.Remove(m.recordPath(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove network record %q: %w", name, err)
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ensureBridge creates the bridge if needed and gives it the gateway address; it accepts an
// existing bridge after checking that it is one.
func (m *Manager) ensureBridge(n *Network) error {
	link, err := netlink.LinkByName(n.Bridge)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return fmt.Errorf("look up bridge %s: %w", n.Bridge, err)
		}
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: n.Bridge, MTU: n.MTU, TxQLen: -1}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create bridge %s: %w", n.Bridge, err)
		}
		if link, err = netlink.LinkByName(n.Bridge); err != nil {
			return fmt.Errorf("look up bridge %s: %w", n.Bridge, err)
		}
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("interface %s exists and is a %s, not a bridge: %w", n.Bridge, link.Type(), ErrMismatch)
	}
	_, subnet, _ := net.ParseCIDR(n.Subnet)
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(n.Gateway).To4(), Mask: subnet.Mask}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("set address %s on %s: %w", addr.IPNet, n.Bridge, err)
	}
	// 127.0.0.1:port published ports are DNATed out of this bridge.
	if err := writeSysctl(fmt.Sprintf("/proc/sys/net/ipv4/conf/%s/route_localnet", n.Bridge), "1"); err != nil {
		return err
	}
	if link.Attrs().Flags&net.FlagUp == 0 {
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("bring up %s: %w", n.Bridge, err)
		}
	}
	return nil
}

// reapBridgePorts deletes the interfaces still enslaved to the bridge. Removed containers'
// veth pairs are left to the kernel, which destroys them with the container's namespace a few
// milliseconds later (see RemoveSandbox); they are given a moment to go, and any that stays (its
// namespace still referenced by something) is deleted here, so no veth outlives its network.
func reapBridgePorts(bridge string) error {
	brif := filepath.Join("/sys/class/net", bridge, "brif")
	ports := func() []string {
		ents, _ := os.ReadDir(brif) // no bridge, no ports
		names := make([]string, len(ents))
		for i, e := range ents {
			names[i] = e.Name()
		}
		return names
	}
	left := ports()
	for wait := 0; len(left) > 0 && wait < 250; wait += 10 {
		time.Sleep(10 * time.Millisecond)
		left = ports()
	}
	for _, name := range left {
		if err := deleteLink(name); err != nil {
			return err
		}
	}
	return nil
}

// retryDump runs a host-wide netlink dump again when the kernel reports that it was
// interrupted by a concurrent change (other containers starting or stopping), in which case its
// result may be incomplete.
func retryDump[T any](dump func() (T, error)) (T, error) {
	v, err := dump()
	for i := 0; i < 10 && errors.Is(err, netlink.ErrDumpInterrupted); i++ {
		v, err = dump()
	}
	return v, err
}

// deleteLink deletes an interface; a missing one is not an error.
func deleteLink(name string) error {
	if name == "" {
		return nil
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("look up %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		if _, err2 := netlink.LinkByName(name); err2 != nil {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

func writeSysctl(path, value string) error {
	cur, err := os.ReadFile(path)
	if err == nil && strings.TrimSpace(string(cur)) == value {
		return nil
	}
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s=%s: %w", path, value, err)
	}
	return nil
}

// enableForwarding turns on IPv4 forwarding, which outbound NAT and ports published on host
// addresses need (as Docker does).
func enableForwarding() error { return writeSysctl("/proc/sys/net/ipv4/ip_forward", "1") }
