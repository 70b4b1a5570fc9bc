package netns

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ipamState is one network's address book, <RunRoot>/ipam/<network>.json. It is also the DNS
// server's records file: every endpoint lists the names it answers to.
//
// The book lives under the run root and is written without fsync (temp file and rename, so a
// killed process never leaves a torn file): its endpoints describe sandboxes, which a reboot
// removes anyway, and fsync on every Attach cost 5-25 ms on this machine's disk. A book that
// is missing or unreadable (power loss) is rebuilt empty from the network record; the
// network's subnet and gateway are in the fsynced record under Root.
type ipamState struct {
	Network string `json:"network"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	IPRange string `json:"ip_range,omitempty"`
	// Last is the address handed out most recently; allocation continues after it (round
	// robin), so a crash-looping container does not get a just-released address back at once.
	Last string `json:"last,omitempty"`
	// Endpoints by container ID.
	Endpoints map[string]*endpointRecord `json:"endpoints"`
}

// endpointRecord is one container's endpoint on a network.
type endpointRecord struct {
	Container string   `json:"container"`
	IP        string   `json:"ip"`
	Interface string   `json:"interface,omitempty"`
	HostVeth  string   `json:"host_veth"`
	MAC       string   `json:"mac,omitempty"`
	Names     []string `json:"names,omitempty"`
	// Links are names only this endpoint resolves: alias -> target name.
	Links map[string]string `json:"links,omitempty"`
}

func (m *Manager) ipamDir() string { return filepath.Join(m.cfg.RunRoot, "ipam") }

func (m *Manager) ipamPath(network string) string {
	return filepath.Join(m.ipamDir(), network+".json")
}

func (m *Manager) ipamLockPath(network string) string {
	return filepath.Join(m.ipamDir(), network+".lock")
}

// withIPAM runs fn on the network's address book under its lock and writes it back when fn
// reports a change. A missing book returns ErrNotFound.
func (m *Manager) withIPAM(network string, fn func(*ipamState) (bool, error)) error {
	l, err := lockFile(m.ipamLockPath(network))
	if err != nil {
		return err
	}
	defer l.Unlock()
	var st ipamState
	if err := readJSON(m.ipamPath(network), &st); err != nil {
		n, rerr := m.readRecord(network)
		if rerr != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("network %q: %w", network, ErrNotFound)
			}
			return err
		}
		if !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("address book unreadable, starting it afresh", "network", network, "err", err)
		}
		st = ipamState{Network: network, Subnet: n.Subnet, Gateway: n.Gateway, IPRange: n.IPRange}
	}
	if st.Endpoints == nil {
		st.Endpoints = map[string]*endpointRecord{}
	}
	changed, err := fn(&st)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	return writeJSONNoSync(m.ipamPath(network), &st)
}

func (m *Manager) readIPAM(network string) (*ipamState, error) {
	var st ipamState
	if err := readJSON(m.ipamPath(network), &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("network %q: %w", network, ErrNotFound)
		}
		return nil, err
	}
	if st.Endpoints == nil {
		st.Endpoints = map[string]*endpointRecord{}
	}
	return &st, nil
}

// createIPAM writes a fresh book unless one exists.
func (m *Manager) createIPAM(network, subnet, gateway, ipRange string) error {
	l, err := lockFile(m.ipamLockPath(network))
	if err != nil {
		return err
	}
	defer l.Unlock()
	if _, err := os.Stat(m.ipamPath(network)); err == nil {
		return nil
	}
	return writeJSONNoSync(m.ipamPath(network), &ipamState{Network: network, Subnet: subnet, Gateway: gateway,
		IPRange: ipRange, Endpoints: map[string]*endpointRecord{}})
}

func (m *Manager) removeIPAM(network string) error {
	for _, p := range []string{m.ipamPath(network), m.ipamLockPath(network)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove address book of %q: %w", network, err)
		}
	}
	return nil
}

func ip4ToU32(ip net.IP) uint32 { return binary.BigEndian.Uint32(ip.To4()) }

func u32ToIP4(v uint32) net.IP {
	ip := make(net.IP, 4)
	binary.BigEndian.PutUint32(ip, v)
	return ip
}

// cidrBounds returns the first and last address of n.
func cidrBounds(n *net.IPNet) (uint32, uint32) {
	ones, bits := n.Mask.Size()
	first := ip4ToU32(n.IP.Mask(n.Mask))
	return first, first + uint32(1)<<(bits-ones) - 1
}

// allocate picks an address for owner in st: the requested one (which must be free and
// usable) or the next free one after st.Last, wrapping around.
func (st *ipamState) allocate(requested string) (net.IP, error) {
	_, subnet, err := net.ParseCIDR(st.Subnet)
	if err != nil {
		return nil, fmt.Errorf("subnet %q: %w", st.Subnet, ErrInvalid)
	}
	netFirst, netLast := cidrBounds(subnet)
	used := map[uint32]bool{}
	if gw := net.ParseIP(st.Gateway); gw != nil {
		used[ip4ToU32(gw)] = true
	}
	for _, e := range st.Endpoints {
		if ip := net.ParseIP(e.IP); ip != nil && ip.To4() != nil {
			used[ip4ToU32(ip)] = true
		}
	}
	usable := func(v uint32) bool { // not the network or broadcast address (/31, /32 have none)
		return netLast-netFirst < 3 || (v != netFirst && v != netLast)
	}
	if requested != "" {
		ip := net.ParseIP(requested)
		if ip == nil || ip.To4() == nil || !subnet.Contains(ip) {
			return nil, fmt.Errorf("address %q is not in subnet %s: %w", requested, st.Subnet, ErrInvalid)
		}
		v := ip4ToU32(ip)
		if !usable(v) {
			return nil, fmt.Errorf("address %s is reserved in %s: %w", ip, st.Subnet, ErrInvalid)
		}
		if used[v] {
			return nil, fmt.Errorf("address %s on network %q: %w", ip, st.Network, ErrAddressInUse)
		}
		st.Last = ip.String()
		return ip.To4(), nil
	}
	first, last := netFirst, netLast
	if st.IPRange != "" {
		_, r, err := net.ParseCIDR(st.IPRange)
		if err != nil {
			return nil, fmt.Errorf("ip_range %q: %w", st.IPRange, ErrInvalid)
		}
		first, last = cidrBounds(r)
		first, last = max(first, netFirst), min(last, netLast)
	}
	if first > last {
		return nil, fmt.Errorf("network %q: %w", st.Network, ErrRangeExhausted)
	}
	start := first
	if lip := net.ParseIP(st.Last); lip != nil && lip.To4() != nil {
		if v := ip4ToU32(lip); v >= first && v < last {
			start = v + 1
		}
	}
	n := uint64(last) - uint64(first) + 1
	for i := uint64(0); i < n; i++ {
		v := uint32(uint64(first) + (uint64(start-first)+i)%n)
		if !usable(v) || used[v] {
			continue
		}
		ip := u32ToIP4(v)
		st.Last = ip.String()
		return ip, nil
	}
	return nil, fmt.Errorf("network %q (%s): %w", st.Network, st.Subnet, ErrRangeExhausted)
}

// names returns the lower-cased name -> addresses table the DNS server answers from.
func (st *ipamState) names() map[string][]string {
	out := map[string][]string{}
	ids := make([]string, 0, len(st.Endpoints))
	for id := range st.Endpoints {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		e := st.Endpoints[id]
		seen := map[string]bool{}
		for _, n := range e.Names {
			n = strings.TrimSuffix(strings.ToLower(n), ".")
			if n == "" || seen[n] {
				continue
			}
			seen[n] = true
			out[n] = append(out[n], e.IP)
		}
	}
	return out
}

// pickSubnet returns the first /size subnet of pool that overlaps nothing in used.
func pickSubnet(pool *net.IPNet, size int, used []*net.IPNet) (*net.IPNet, error) {
	ones, _ := pool.Mask.Size()
	if size < ones || size > 30 {
		return nil, fmt.Errorf("subnet size /%d does not fit pool %s: %w", size, pool, ErrInvalid)
	}
	first, last := cidrBounds(pool)
	step := uint64(1) << (32 - size)
	mask := net.CIDRMask(size, 32)
	for v := uint64(first); v+step-1 <= uint64(last); v += step {
		cand := &net.IPNet{IP: u32ToIP4(uint32(v)), Mask: mask}
		if !overlapsAny(cand, used) {
			return cand, nil
		}
	}
	return nil, fmt.Errorf("pool %s: %w", pool, ErrPoolExhausted)
}

func overlapsAny(n *net.IPNet, used []*net.IPNet) bool {
	for _, u := range used {
		if overlaps(n, u) {
			return true
		}
	}
	return false
}

func overlaps(a, b *net.IPNet) bool {
	if a.IP.To4() == nil || b.IP.To4() == nil {
		return false
	}
	return a.Contains(b.IP.Mask(b.Mask)) || b.Contains(a.IP.Mask(a.Mask))
}
