package netns

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// RunDNS is the body of a network's DNS server process (`berth __dns ...`). It answers A
// queries for the names in the records file (the network's address book; re-read whenever it
// changes, checked on every query) and forwards other names to the resolvers of the host's
// resolv.conf, answering SERVFAIL when none replies. Single-label names that are not known get
// NXDOMAIN at once. It returns when ctx ends or the records file is removed.
//
// Flags: --records FILE (required), --resolv FILE (default /etc/resolv.conf), --self IP (its
// own address, never used as an upstream), and either --fds (UDP socket on fd 3, TCP listener
// on fd 4, as ensureDNS passes them) or --listen IP:PORT.
func RunDNS(ctx context.Context, args []string) error {
	fl := flag.NewFlagSet("__dns", flag.ContinueOnError)
	records := fl.String("records", "", "records file")
	resolv := fl.String("resolv", "/etc/resolv.conf", "upstream resolv.conf")
	self := fl.String("self", "", "own address")
	fds := fl.Bool("fds", false, "serve the sockets on fds 3 (udp) and 4 (tcp)")
	listen := fl.String("listen", "", "address to listen on")
	fl.String("network", "", "network name (informational)")
	pidFile := fl.String("pid-file", "", "write the server's PID here once it runs")
	timeout := fl.Duration("upstream-timeout", 1500*time.Millisecond, "per-upstream timeout")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *records == "" {
		return fmt.Errorf("dns: --records is required: %w", ErrInvalid)
	}
	var pc net.PacketConn
	var ln net.Listener
	var err error
	switch {
	case *fds:
		uf, tf := os.NewFile(3, "dns-udp"), os.NewFile(4, "dns-tcp")
		if pc, err = net.FilePacketConn(uf); err != nil {
			return fmt.Errorf("dns: udp socket from fd 3: %w", err)
		}
		if ln, err = net.FileListener(tf); err != nil {
			return fmt.Errorf("dns: tcp socket from fd 4: %w", err)
		}
		uf.Close()
		tf.Close()
	case *listen != "":
		if pc, err = net.ListenPacket("udp", *listen); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err != nil {
			pc.Close()
			return fmt.Errorf("dns: %w", err)
		}
	default:
		return fmt.Errorf("dns: --fds or --listen is required: %w", ErrInvalid)
	}
	if *pidFile != "" {
		// Written by the server itself, so that it is known by its PID file even when the
		// berth that started it was killed before it could write the file.
		if err := writeFile(*pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), false); err != nil {
			return fmt.Errorf("dns: %w", err)
		}
	}
	s := &dnsServer{records: *records, resolv: *resolv, self: *self, timeout: *timeout}
	return s.serve(ctx, pc, ln)
}

type fileKey struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func statKey(path string) (fileKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileKey{}, err
	}
	k := fileKey{size: fi.Size(), mtime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		k.ino = st.Ino
	}
	return k, nil
}

type dnsServer struct {
	records, resolv, self string
	timeout               time.Duration

	mu        sync.Mutex
	recKey    fileKey
	names     map[string][]net.IP
	links     map[string]map[string]string // client IP -> alias -> target name
	ptr       map[string]string
	resKey    fileKey
	upstreams []string
}

func (s *dnsServer) serve(ctx context.Context, pc net.PacketConn, ln net.Listener) error {
	udp := &dns.Server{PacketConn: pc, Handler: s}
	tcp := &dns.Server{Listener: ln, Handler: s}
	errc := make(chan error, 2)
	go func() { errc <- udp.ActivateAndServe() }()
	go func() { errc <- tcp.ActivateAndServe() }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-errc:
			break loop
		case <-tick.C:
			if _, serr := os.Stat(s.records); errors.Is(serr, fs.ErrNotExist) {
				break loop // the network is gone
			}
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	udp.ShutdownContext(sctx)
	tcp.ShutdownContext(sctx)
	return err
}

// refresh re-reads the records and resolv.conf when they changed. Callers hold s.mu.
func (s *dnsServer) refresh() {
	if k, err := statKey(s.records); err != nil {
		s.names, s.links, s.ptr, s.recKey = nil, nil, nil, fileKey{}
	} else if k != s.recKey {
		var st ipamState
		if err := readJSON(s.records, &st); err == nil {
			s.recKey = k
			s.names = map[string][]net.IP{}
			s.links = map[string]map[string]string{}
			s.ptr = map[string]string{}
			for name, ips := range st.names() {
				for _, ip := range ips {
					if p := net.ParseIP(ip).To4(); p != nil {
						s.names[name] = append(s.names[name], p)
					}
				}
			}
			for _, e := range st.Endpoints {
				if len(e.Links) > 0 {
					s.links[e.IP] = e.Links
				}
				if len(e.Names) > 0 {
					if rev, err := dns.ReverseAddr(e.IP); err == nil {
						s.ptr[rev] = pickPTRName(e.Names)
					}
				}
			}
		}
	}
	if k, err := statKey(s.resolv); err == nil && k != s.resKey {
		if data, err := os.ReadFile(s.resolv); err == nil {
			s.resKey = k
			s.upstreams = nil
			for _, ns := range parseResolv(data).nameservers {
				if ns == s.self {
					continue
				}
				s.upstreams = append(s.upstreams, net.JoinHostPort(ns, "53"))
			}
		}
	}
}

// pickPTRName prefers the container name (the longest name, e.g. proj-web-1) for reverse lookups.
func pickPTRName(names []string) string {
	best := names[0]
	for _, n := range names[1:] {
		if len(n) > len(best) {
			best = n
		}
	}
	return best
}

// clientIP is the address a query came from, as recorded in endpoint records.
func clientIP(a net.Addr) string {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.IP.String()
	case *net.TCPAddr:
		return a.IP.String()
	}
	return ""
}

// ServeDNS answers one query.
func (s *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 || r.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
	s.mu.Lock()
	s.refresh()
	lookup := name
	if target, ok := s.links[clientIP(w.RemoteAddr())][name]; ok {
		lookup = target // a link alias of the asking container
	}
	ips, known := s.names[lookup]
	ptr, knownPTR := s.ptr[strings.ToLower(q.Name)]
	upstreams := s.upstreams
	s.mu.Unlock()

	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = true
	switch {
	case known && q.Qclass == dns.ClassINET:
		m.Authoritative = true
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
			off := 0
			if len(ips) > 1 {
				off = rand.IntN(len(ips))
			}
			for i := range ips {
				ip := ips[(off+i)%len(ips)]
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0}, A: ip})
			}
		}
		// AAAA and others: NOERROR without answers, so clients do not fall through to search.
		if _, ok := w.LocalAddr().(*net.UDPAddr); ok {
			size := dns.MinMsgSize
			if o := r.IsEdns0(); o != nil {
				size = int(o.UDPSize())
			}
			m.Truncate(size) // sets TC: the client retries over TCP and gets every replica
		}
		w.WriteMsg(m)
		return
	case knownPTR && q.Qtype == dns.TypePTR:
		m.Authoritative = true
		m.Answer = append(m.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 0}, Ptr: dns.Fqdn(ptr)})
		w.WriteMsg(m)
		return
	case !strings.Contains(name, ".") && q.Qtype != dns.TypePTR:
		m.Rcode = dns.RcodeNameError
		w.WriteMsg(m)
		return
	}
	network := "udp"
	if _, ok := w.LocalAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	c := &dns.Client{Net: network, Timeout: s.timeout}
	for _, up := range upstreams {
		in, _, err := c.Exchange(r, up)
		if err == nil && in != nil {
			in.Id = r.Id
			w.WriteMsg(in)
			return
		}
	}
	m = new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	w.WriteMsg(m)
}

type resolvConf struct {
	nameservers, search, options []string
}

func parseResolv(data []byte) resolvConf {
	var rc resolvConf
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			if ip := net.ParseIP(f[1]); ip != nil {
				rc.nameservers = append(rc.nameservers, ip.String())
			}
		case "search", "domain":
			rc.search = f[1:]
		case "options":
			rc.options = append(rc.options, f[1:]...)
		}
	}
	return rc
}
