package netns

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func TestHostsFile(t *testing.T) {
	got, err := HostsFile(HostsOptions{Hostname: "web", IPs: []string{"10.210.0.2"},
		ExtraHosts: []string{"db:10.0.0.5", "gw=host-gateway", "v6:::1"}, HostGateway: "10.210.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\n" +
		"ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n10.0.0.5\tdb\n10.210.0.1\tgw\n::1\tv6\n10.210.0.2\tweb\n"
	if got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
	if _, err := HostsFile(HostsOptions{ExtraHosts: []string{"nope"}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad extra host: %v", err)
	}
}

func TestResolvConf(t *testing.T) {
	host := []byte("# host\nnameserver 127.0.0.53\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")
	for _, tc := range []struct {
		name string
		o    ResolvOptions
		want string
	}{
		{"network", ResolvOptions{Nameserver: "10.210.0.1"}, "nameserver 10.210.0.1\n"},
		{"network with options", ResolvOptions{Nameserver: "10.210.0.1", DNS: []string{"9.9.9.9"}, Search: []string{"a.example"}, Options: []string{"ndots:2"}},
			"nameserver 10.210.0.1\nnameserver 9.9.9.9\nsearch a.example\noptions ndots:2\n"},
		{"host resolvers", ResolvOptions{}, "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolvConf(tc.o, host)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// TestDNSServer runs the server body on loopback: names from the records file (which it
// re-reads when it changes), NXDOMAIN for unknown single labels, forwarding to an upstream
// from its resolv.conf, SERVFAIL when no upstream answers.
func TestDNSServer(t *testing.T) {
	m := newUnitManager(t)
	if err := m.createIPAM("n", "10.210.9.0/24", "10.210.9.1", ""); err != nil {
		t.Fatal(err)
	}
	add := func(id, ip string, names ...string) {
		t.Helper()
		if err := m.withIPAM("n", func(st *ipamState) (bool, error) {
			st.Endpoints[id] = &endpointRecord{Container: id, IP: ip, Names: names}
			return true, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	add("a", "10.210.9.2", "web", "p-web-1")
	add("b", "10.210.9.3", "web", "p-web-2")

	// A fake upstream on loopback: answers example.test.
	up, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upSrv := &dns.Server{PacketConn: up, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: net.IPv4(192, 0, 2, 77)})
		w.WriteMsg(m)
	})}
	go upSrv.ActivateAndServe()
	t.Cleanup(func() { upSrv.Shutdown() })

	s, addr := startTestDNS(t, m.ipamPath("n"))

	query := func(name string, qt uint16, network string) *dns.Msg {
		t.Helper()
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), qt)
		r, _, err := c.Exchange(q, addr)
		if err != nil {
			t.Fatalf("query %s: %v", name, err)
		}
		return r
	}
	if r := query("web", dns.TypeA, "udp"); len(r.Answer) != 2 {
		t.Fatalf("web: %d answers, want 2: %v", len(r.Answer), r)
	}
	if r := query("P-WEB-1", dns.TypeA, "tcp"); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.210.9.2" {
		t.Fatalf("p-web-1 over tcp: %v", r)
	}
	if r := query("web", dns.TypeAAAA, "udp"); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
		t.Fatalf("AAAA web: %v", r)
	}
	if r := query("2.9.210.10.in-addr.arpa", dns.TypePTR, "udp"); len(r.Answer) != 1 || r.Answer[0].(*dns.PTR).Ptr != "p-web-1." {
		t.Fatalf("PTR: %v", r)
	}
	if r := query("nothere", dns.TypeA, "udp"); r.Rcode != dns.RcodeNameError {
		t.Fatalf("unknown single label: rcode %d", r.Rcode)
	}
	if r := query("example.test", dns.TypeA, "udp"); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("no upstream: rcode %d, want SERVFAIL", r.Rcode)
	}
	// Records follow changes at once.
	add("c", "10.210.9.4", "web")
	if r := query("web", dns.TypeA, "udp"); len(r.Answer) != 3 {
		t.Fatalf("after scale up: %d answers, want 3", len(r.Answer))
	}
	// Forwarding: point the server at the fake upstream (port fixed to 53 in resolv.conf, so
	// set the parsed upstream directly).
	s.mu.Lock()
	s.resolv = "/nonexistent"
	s.upstreams = []string{up.LocalAddr().String()}
	s.mu.Unlock()
	if r := query("example.test", dns.TypeA, "udp"); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.77" {
		t.Fatalf("forwarded: %v", r)
	}
}

// TestDNSLinkAliasesAreScoped: a link alias resolves only for the container that declared the
// link (identified by the query's source address), like Docker's links on user networks.
func TestDNSLinkAliasesAreScoped(t *testing.T) {
	m := newUnitManager(t)
	if err := m.createIPAM("n", "10.210.9.0/24", "10.210.9.1", ""); err != nil {
		t.Fatal(err)
	}
	if err := m.withIPAM("n", func(st *ipamState) (bool, error) {
		st.Endpoints["db"] = &endpointRecord{Container: "db", IP: "10.210.9.2", Names: []string{"db", "p-db-1"}}
		// The linking container; the test's queries come from 127.0.0.1.
		st.Endpoints["app"] = &endpointRecord{Container: "app", IP: "127.0.0.1", Names: []string{"app"},
			Links: endpointLinks(map[string]string{"Database": "db"})}
		st.Endpoints["other"] = &endpointRecord{Container: "other", IP: "127.0.0.2", Names: []string{"other"}}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	_, addr := startTestDNS(t, m.ipamPath("n"))

	query := func(from, name string) *dns.Msg {
		t.Helper()
		c := &dns.Client{Net: "udp", Timeout: 2 * time.Second,
			Dialer: &net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(from)}}}
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), dns.TypeA)
		r, _, err := c.Exchange(q, addr)
		if err != nil {
			t.Fatalf("query %s from %s: %v", name, from, err)
		}
		return r
	}
	if r := query("127.0.0.1", "database"); len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.210.9.2" {
		t.Fatalf("link alias from the linking container: %v", r)
	}
	if r := query("127.0.0.2", "database"); r.Rcode != dns.RcodeNameError {
		t.Fatalf("link alias from another container: rcode %d, want NXDOMAIN", r.Rcode)
	}
	if r := query("127.0.0.2", "db"); len(r.Answer) != 1 {
		t.Fatalf("service name from another container: %v", r)
	}
}

// startTestDNS serves the records file on a loopback port for the test's duration.
func startTestDNS(t *testing.T, records string) (*dnsServer, string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := &dnsServer{records: records, resolv: "/nonexistent", timeout: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, pc, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, pc.LocalAddr().String()
}
