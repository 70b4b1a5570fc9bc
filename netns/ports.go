package netns

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
)

// PortMapping is one published port. HostPort 0 asks for a random free port; Publish returns
// the mapping with it filled in. ContainerIP "" means the container's address on its first
// non-internal network. HostIP "" (or 0.0.0.0) means every host address including
// 127.0.0.1.
type PortMapping struct {
	HostIP        string `json:"host_ip,omitempty"`
	HostPort      uint16 `json:"host_port"`
	ContainerIP   string `json:"container_ip"`
	ContainerPort uint16 `json:"container_port"`
	Protocol      string `json:"protocol"` // "tcp" (default) or "udp"
}

func (p PortMapping) String() string {
	host := p.HostIP
	if host == "" {
		host = "0.0.0.0"
	}
	return fmt.Sprintf("%s:%d->%s:%d/%s", host, p.HostPort, p.ContainerIP, p.ContainerPort, p.Protocol)
}

// portOwner is the owner part of a port rule's tag: "<root id>:<container>".
func (m *Manager) portOwner(containerID string) string { return m.rootID + ":" + containerID }

func (p PortMapping) tag(owner string) string {
	return fmt.Sprintf("%s%s:%s:%s:%d:%s:%d", tagPort, owner, p.Protocol, p.HostIP, p.HostPort, p.ContainerIP, p.ContainerPort)
}

// parsePortTag is the inverse of tag; it returns the owner ("<root id>:<container>") too.
func parsePortTag(s string) (string, PortMapping, bool) {
	if !strings.HasPrefix(s, tagPort) {
		return "", PortMapping{}, false
	}
	f := strings.Split(strings.TrimPrefix(s, tagPort), ":")
	if len(f) != 7 {
		return "", PortMapping{}, false
	}
	hp, err1 := strconv.ParseUint(f[4], 10, 16)
	cp, err2 := strconv.ParseUint(f[6], 10, 16)
	if err1 != nil || err2 != nil {
		return "", PortMapping{}, false
	}
	return f[0] + ":" + f[1], PortMapping{Protocol: f[2], HostIP: f[3], HostPort: uint16(hp), ContainerIP: f[5], ContainerPort: uint16(cp)}, true
}

func normalizePort(p PortMapping) (PortMapping, error) {
	p.Protocol = strings.ToLower(p.Protocol)
	if p.Protocol == "" {
		p.Protocol = "tcp"
	}
	if p.Protocol != "tcp" && p.Protocol != "udp" {
		return p, fmt.Errorf("port %d: protocol %q: use tcp or udp: %w", p.ContainerPort, p.Protocol, ErrInvalid)
	}
	if p.HostIP != "" {
		ip := net.ParseIP(strings.Trim(p.HostIP, "[]"))
		switch {
		case ip != nil && ip.IsUnspecified(): // 0.0.0.0 or ::
			p.HostIP = ""
		case ip == nil || ip.To4() == nil:
			return p, fmt.Errorf("port %d: host IP %q is not an IPv4 address (IPv6 is not supported): %w", p.ContainerPort, p.HostIP, ErrInvalid)
		default:
			p.HostIP = ip.To4().String()
		}
	}
	if p.ContainerPort == 0 {
		return p, fmt.Errorf("container port 0: %w", ErrInvalid)
	}
	return p, nil
}

// clash reports whether two mappings want the same host socket.
func clash(a, b PortMapping) bool {
	return a.Protocol == b.Protocol && a.HostPort == b.HostPort &&
		(a.HostIP == b.HostIP || a.HostIP == "" || b.HostIP == "")
}

// probe checks that nothing on the host listens on the mapping's host socket.
func probe(p PortMapping) error {
	host := p.HostIP
	if host == "" {
		host = "0.0.0.0"
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(p.HostPort)))
	var err error
	if p.Protocol == "udp" {
		var c net.PacketConn
		if c, err = net.ListenPacket("udp4", addr); err == nil {
			c.Close()
		}
	} else {
		var l net.Listener
		if l, err = net.Listen("tcp4", addr); err == nil {
			l.Close()
		}
	}
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "cannot assign requested address") {
		return fmt.Errorf("publish %s: %s is not an address of this machine: %w", p, host, ErrInvalid)
	}
	return fmt.Errorf("bind for %s:%d/%s failed: port is already allocated: %w", host, p.HostPort, p.Protocol, ErrPortInUse)
}

func (m *Manager) portsLock() (*fileLock, error) {
	return lockFile(filepath.Join(m.cfg.Root, "ports.lock"))
}

func (m *Manager) portsPath(containerID string) string {
	return filepath.Join(m.cfg.Root, "ports", containerID+".json")
}

// livePorts is publishedPorts without the rules of this root's containers whose sandbox is
// gone (a killed berth, a container that died without cleanup): those ports are free.
func (m *Manager) livePorts(c *nftables.Conn) (map[string][]PortMapping, error) {
	pub, err := publishedPorts(c)
	if err != nil {
		return nil, err
	}
	for owner := range pub {
		if strings.HasPrefix(owner, m.rootID+":") && !m.sandboxMounted(ownerID(owner)) {
			delete(pub, owner)
		}
	}
	return pub, nil
}

// publishedPorts lists every published port with its owner, from berth's rules.
func publishedPorts(c *nftables.Conn) (map[string][]PortMapping, error) {
	rules, err := rulesWithTag(c, tagPort)
	if err != nil {
		return nil, err
	}
	out := map[string][]PortMapping{}
	seen := map[string]bool{}
	for _, r := range rules {
		s := string(r.UserData)
		if seen[s] {
			continue
		}
		seen[s] = true
		if id, p, ok := parsePortTag(s); ok {
			out[id] = append(out[id], p)
		}
	}
	return out, nil
}

func ownerID(owner string) string {
	if i := strings.IndexByte(owner, ':'); i >= 0 {
		return owner[i+1:]
	}
	return owner
}

// CheckPorts fails with ErrPortInUse when a fixed host port is published by berth or taken by
// a listener; random ports (HostPort 0) are not checked. Run it before anything starts.
func (m *Manager) CheckPorts(ctx context.Context, ports []PortMapping) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	pub, err := m.livePorts(c)
	if err != nil {
		return err
	}
	var want []PortMapping
	for _, p := range ports {
		p, err := normalizePort(p)
		if err != nil {
			return err
		}
		if p.HostPort == 0 {
			continue
		}
		if slices.Contains(want, p) {
			continue
		}
		for _, w := range want {
			if clash(w, p) {
				return fmt.Errorf("port %d/%s is published twice: %w", p.HostPort, p.Protocol, ErrPortInUse)
			}
		}
		for owner, ps := range pub {
			for _, q := range ps {
				if clash(q, p) {
					return fmt.Errorf("port %d/%s is published by container %s: %w", p.HostPort, p.Protocol, shortID(ownerID(owner)), ErrPortInUse)
				}
			}
		}
		if err := probe(p); err != nil {
			return err
		}
		want = append(want, p)
	}
	return nil
}

// Publish installs DNAT rules for the container's ports, replacing ones it had. Random host
// ports prefer the port the container had last time. A host port published by another
// container or bound by a listener fails with ErrPortInUse and installs nothing.
func (m *Manager) Publish(ctx context.Context, containerID string, ports []PortMapping) ([]PortMapping, error) {
	if err := validID(containerID); err != nil {
		return nil, err
	}
	l, err := m.portsLock()
	if err != nil {
		return nil, err
	}
	defer l.Unlock()
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	pub, err := m.livePorts(c)
	if err != nil {
		return nil, err
	}
	var taken []PortMapping
	for owner, ps := range pub {
		if owner != m.portOwner(containerID) {
			taken = append(taken, ps...)
		}
	}
	// Own rules being replaced are not listeners, but the probe would not see them anyway:
	// DNAT rules bind no socket.
	var before []PortMapping
	readJSON(m.portsPath(containerID), &before)
	free := func(p PortMapping) error {
		for _, q := range taken {
			if clash(q, p) {
				return fmt.Errorf("port %d/%s is already published by another container: %w", p.HostPort, p.Protocol, ErrPortInUse)
			}
		}
		return probe(p)
	}

	out := make([]PortMapping, 0, len(ports))
	requested := map[PortMapping]bool{}
	for _, p := range ports {
		p, err := normalizePort(p)
		if err != nil {
			return nil, err
		}
		if requested[p] {
			continue // "0.0.0.0:80:80" and "[::]:80:80" are one IPv4 mapping
		}
		requested[p] = true
		if p.ContainerIP == "" {
			if p.ContainerIP, err = m.containerIP(containerID); err != nil {
				return nil, err
			}
		}
		if net.ParseIP(p.ContainerIP).To4() == nil {
			return nil, fmt.Errorf("port %d: container IP %q: %w", p.ContainerPort, p.ContainerIP, ErrInvalid)
		}
		if p.HostPort != 0 {
			if err := free(p); err != nil {
				return nil, err
			}
		} else if p, err = m.randomPort(p, before, free); err != nil {
			return nil, err
		}
		taken = append(taken, p)
		out = append(out, p)
	}

	// This container's previous rules, and rules of this root's containers whose sandbox is
	// gone (they would shadow the new ones).
	mine, err := rulesWithTag(c, tagPort+m.rootID+":")
	if err != nil {
		return nil, err
	}
	var old []*nftables.Rule
	for _, r := range mine {
		owner, _, ok := parsePortTag(string(r.UserData))
		if !ok || owner == m.portOwner(containerID) || !m.sandboxMounted(ownerID(owner)) {
			old = append(old, r)
		}
	}
	ch := ensureTable(c)
	for _, r := range old {
		if err := c.DelRule(r); err != nil {
			return nil, fmt.Errorf("delete nftables rule: %w", err)
		}
	}
	for _, p := range out {
		for _, chain := range []*nftables.Chain{ch.prerouting, ch.output} {
			c.AddRule(&nftables.Rule{Table: ch.table, Chain: chain, Exprs: dnatExprs(p), UserData: []byte(p.tag(m.portOwner(containerID)))})
		}
	}
	// Written before the rules go in: the file is both a hint for the next Publish of this
	// container (not worth an fsync on the start path) and the mark Unpublish looks for, so a
	// container with rules always has it.
	if err := writeJSONNoSync(m.portsPath(containerID), out); err != nil {
		return nil, err
	}
	if err := flush(c); err != nil {
		return nil, fmt.Errorf("install port rules for %s: %w", shortID(containerID), err)
	}
	return out, nil
}

// containerIP returns the container's address on its first non-internal network (by name), or
// on any network.
func (m *Manager) containerIP(containerID string) (string, error) {
	nets, err := m.containerNetworks(containerID)
	if err != nil {
		return "", err
	}
	ip := ""
	for _, name := range nets {
		st, err := m.readIPAM(name)
		if err != nil {
			continue
		}
		e, ok := st.Endpoints[containerID]
		if !ok {
			continue
		}
		if n, err := m.readRecord(name); err == nil && !n.Internal {
			return e.IP, nil
		}
		if ip == "" {
			ip = e.IP
		}
	}
	if ip == "" {
		return "", fmt.Errorf("publish ports of %s: it is attached to no network: %w", shortID(containerID), ErrInvalid)
	}
	return ip, nil
}

// randomPort fills in a free host port: the one used last time for the same container port
// if it is still free, else a random one from the configured range.
func (m *Manager) randomPort(p PortMapping, before []PortMapping, free func(PortMapping) error) (PortMapping, error) {
	for _, b := range before {
		if b.Protocol == p.Protocol && b.ContainerPort == p.ContainerPort && b.HostIP == p.HostIP && b.HostPort != 0 {
			q := p
			q.HostPort = b.HostPort
			if free(q) == nil {
				return q, nil
			}
		}
	}
	lo, hi := int(m.cfg.PortRange[0]), int(m.cfg.PortRange[1])
	n := hi - lo + 1
	start := rand.IntN(n)
	for i := 0; i < n; i++ {
		q := p
		q.HostPort = uint16(lo + (start+i)%n)
		if free(q) == nil {
			return q, nil
		}
	}
	return p, fmt.Errorf("no free host port in %d-%d for %d/%s: %w", lo, hi, p.ContainerPort, p.Protocol, ErrPortInUse)
}

// Unpublish removes the container's port rules; it keeps the record of the ports so that a
// restart gets the same random ports back. None is not an error.
func (m *Manager) Unpublish(ctx context.Context, containerID string) error {
	// A container that never published a port has no ports file (Publish writes it before it
	// installs rules): nothing to delete, and no need to take the ports lock and read the
	// whole rule set, which parallel removals would otherwise queue for.
	if _, err := os.Stat(m.portsPath(containerID)); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	l, err := m.portsLock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	return deleteTagged(tagPort + m.portOwner(containerID) + ":")
}

// ForgetPorts drops the remembered ports of a removed container (after Unpublish).
func (m *Manager) ForgetPorts(ctx context.Context, containerID string) error {
	if err := validID(containerID); err != nil {
		return err
	}
	if err := os.Remove(m.portsPath(containerID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("forget ports of %s: %w", shortID(containerID), err)
	}
	return nil
}

// PublishedPorts returns the ports currently published for the container.
func (m *Manager) PublishedPorts(ctx context.Context, containerID string) ([]PortMapping, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	pub, err := publishedPorts(c)
	if err != nil {
		return nil, err
	}
	return pub[m.portOwner(containerID)], nil
}
