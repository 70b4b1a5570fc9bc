package netns

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// HostsOptions describe a container's /etc/hosts.
type HostsOptions struct {
	Hostname   string
	Domainname string
	// IPs are the container's addresses (its endpoints'), mapped to the hostname; with none
	// (network mode none) the hostname maps to 127.0.1.1.
	IPs []string
	// ExtraHosts are Compose extra_hosts entries: "name:ip", "name=ip" or "name ip"; the address
	// "host-gateway" stands for HostGateway.
	ExtraHosts  []string
	HostGateway string
}

// HostsFile returns the content of a container's /etc/hosts.
func (m *Manager) HostsFile(o HostsOptions) (string, error) { return HostsFile(o) }

// HostsFile is the pure form of Manager.HostsFile.
func HostsFile(o HostsOptions) (string, error) {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	b.WriteString("fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
	for _, e := range o.ExtraHosts {
		name, addr, err := splitExtraHost(e)
		if err != nil {
			return "", err
		}
		if addr == "host-gateway" {
			if o.HostGateway == "" {
				return "", fmt.Errorf("extra_hosts %q: host-gateway needs a network with a gateway: %w", e, ErrInvalid)
			}
			addr = o.HostGateway
		}
		fmt.Fprintf(&b, "%s\t%s\n", addr, name)
	}
	if o.Hostname != "" {
		names := o.Hostname
		if o.Domainname != "" {
			names = o.Hostname + "." + o.Domainname + " " + o.Hostname
		}
		ips := o.IPs
		if len(ips) == 0 {
			ips = []string{"127.0.1.1"}
		}
		for _, ip := range ips {
			fmt.Fprintf(&b, "%s\t%s\n", ip, names)
		}
	}
	return b.String(), nil
}

func splitExtraHost(e string) (string, string, error) {
	e = strings.TrimSpace(e)
	var name, addr string
	if i := strings.IndexAny(e, "= \t"); i > 0 {
		name, addr = e[:i], strings.TrimSpace(e[i+1:])
	} else if i := strings.IndexByte(e, ':'); i > 0 {
		name, addr = e[:i], e[i+1:]
	}
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	if name == "" || addr == "" || (addr != "host-gateway" && net.ParseIP(addr) == nil) {
		return "", "", fmt.Errorf("extra_hosts %q: use \"name:address\", e.g. \"db:10.0.0.5\": %w", e, ErrInvalid)
	}
	return name, addr, nil
}

// ResolvOptions describe a container's /etc/resolv.conf.
type ResolvOptions struct {
	// Nameserver is the network DNS server (the first network's gateway, Endpoint.Gateway);
	// "" (network mode none/host, default bridge without DNS) uses the host's resolvers.
	Nameserver string
	DNS        []string // Compose dns: added after the network DNS server (or instead of the host's)
	Search     []string // dns_search
	Options    []string // dns_opt
	// HostResolvConf is the host file to read; default /etc/resolv.conf.
	HostResolvConf string
}

// ResolvConf returns the content of a container's /etc/resolv.conf.
func (m *Manager) ResolvConf(o ResolvOptions) (string, error) {
	path := o.HostResolvConf
	if path == "" {
		path = "/etc/resolv.conf"
	}
	host, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return "", fmt.Errorf("read host %s: %w", path, err)
	}
	return ResolvConf(o, host)
}

// ResolvConf is the pure form of Manager.ResolvConf; host is the host's resolv.conf.
func ResolvConf(o ResolvOptions, host []byte) (string, error) {
	hrc := parseResolv(host)
	var servers []string
	if o.Nameserver != "" {
		servers = append(servers, o.Nameserver)
	}
	for _, d := range o.DNS {
		ip := net.ParseIP(d)
		if ip == nil {
			return "", fmt.Errorf("dns %q is not an IP address: %w", d, ErrInvalid)
		}
		servers = append(servers, ip.String())
	}
	if len(servers) == 0 {
		for _, s := range hrc.nameservers {
			// A loopback resolver of the host (systemd-resolved) is unreachable from a
			// container namespace.
			if ip := net.ParseIP(s); ip != nil && !ip.IsLoopback() {
				servers = append(servers, s)
			}
		}
		if len(servers) == 0 {
			servers = []string{"8.8.8.8", "8.8.4.4"}
		}
	}
	search := o.Search
	if len(search) == 0 && o.Nameserver == "" {
		search = hrc.search
	}
	options := o.Options
	if len(options) == 0 && o.Nameserver == "" {
		options = hrc.options
	}
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(search, " "))
	}
	if len(options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(options, " "))
	}
	return b.String(), nil
}
