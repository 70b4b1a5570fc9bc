package netns

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func newUnitManager(t *testing.T) *Manager {
	t.Helper()
	m, err := New(Config{Root: t.TempDir(), RunRoot: t.TempDir(), DNSBinary: []string{"/bin/false"}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAllocateRoundRobin(t *testing.T) {
	st := &ipamState{Network: "n", Subnet: "10.210.5.0/29", Gateway: "10.210.5.1", Endpoints: map[string]*endpointRecord{}}
	var got []string
	for i := 0; i < 5; i++ {
		ip, err := st.allocate("")
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprint("c", i)
		st.Endpoints[id] = &endpointRecord{Container: id, IP: ip.String()}
		got = append(got, ip.String())
	}
	want := []string{"10.210.5.2", "10.210.5.3", "10.210.5.4", "10.210.5.5", "10.210.5.6"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("allocation order (-want +got):\n%s", diff)
	}
	if _, err := st.allocate(""); !errors.Is(err, ErrRangeExhausted) {
		t.Fatalf("full /29: err = %v, want ErrRangeExhausted", err)
	}
	// A released address is not handed out again at once: allocation continues after Last.
	delete(st.Endpoints, "c1")
	delete(st.Endpoints, "c4")
	ip, _ := st.allocate("")
	if ip.String() != "10.210.5.3" { // wraps around after .6: .2 taken, .3 free
		t.Fatalf("after release got %s, want 10.210.5.3", ip)
	}
}

func TestAllocateRequested(t *testing.T) {
	st := &ipamState{Network: "n", Subnet: "10.210.5.0/24", Gateway: "10.210.5.1", Endpoints: map[string]*endpointRecord{
		"a": {IP: "10.210.5.9"},
	}}
	for _, tc := range []struct {
		req  string
		want error
	}{
		{"10.210.5.10", nil},
		{"10.210.5.9", ErrAddressInUse},
		{"10.210.5.1", ErrAddressInUse},
		{"10.210.5.0", ErrInvalid},
		{"10.210.5.255", ErrInvalid},
		{"10.210.6.3", ErrInvalid},
		{"bogus", ErrInvalid},
	} {
		t.Run(tc.req, func(t *testing.T) {
			_, err := st.allocate(tc.req)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("allocate(%s) = %v, want %v", tc.req, err, tc.want)
			}
		})
	}
}

func TestAllocateIPRange(t *testing.T) {
	st := &ipamState{Network: "n", Subnet: "10.210.5.0/24", Gateway: "10.210.5.1", IPRange: "10.210.5.128/30", Endpoints: map[string]*endpointRecord{}}
	var got []string
	for {
		ip, err := st.allocate("")
		if errors.Is(err, ErrRangeExhausted) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		st.Endpoints[ip.String()] = &endpointRecord{IP: ip.String()}
		got = append(got, ip.String())
	}
	if diff := cmp.Diff([]string{"10.210.5.128", "10.210.5.129", "10.210.5.130", "10.210.5.131"}, got); diff != "" {
		t.Fatalf("ip_range allocation (-want +got):\n%s", diff)
	}
}

func TestPickSubnet(t *testing.T) {
	_, pool, _ := net.ParseCIDR("10.210.0.0/16")
	cidrs := func(ss ...string) []*net.IPNet {
		var out []*net.IPNet
		for _, s := range ss {
			_, n, _ := net.ParseCIDR(s)
			out = append(out, n)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		used []*net.IPNet
		want string
	}{
		{"empty", nil, "10.210.0.0/24"},
		{"first used", cidrs("10.210.0.0/24"), "10.210.1.0/24"},
		{"host route overlaps", cidrs("10.210.0.0/24", "10.210.1.128/25"), "10.210.2.0/24"},
		{"wide route", cidrs("10.210.0.0/20"), "10.210.16.0/24"},
		{"unrelated", cidrs("192.168.0.0/16", "128.0.0.0/1"), "10.210.0.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := pickSubnet(pool, 24, tc.used)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := pickSubnet(pool, 24, cidrs("10.210.0.0/16")); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("exhausted pool: %v", err)
	}
}

// TestIPAMConcurrent: 50 concurrent allocations through the locked, file-backed address book
// (as 50 parallel container starts do) never hand out an address twice.
func TestIPAMConcurrent(t *testing.T) {
	m := newUnitManager(t)
	if err := m.createIPAM("n", "10.210.7.0/24", "10.210.7.1", ""); err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("c%02d", i)
			errs <- m.withIPAM("n", func(st *ipamState) (bool, error) {
				ip, err := st.allocate("")
				if err != nil {
					return false, err
				}
				st.Endpoints[id] = &endpointRecord{Container: id, IP: ip.String()}
				return true, nil
			})
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st, err := m.readIPAM("n")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for id, e := range st.Endpoints {
		if other, dup := seen[e.IP]; dup {
			t.Fatalf("%s given to %s and %s", e.IP, other, id)
		}
		seen[e.IP] = id
	}
	if len(seen) != n {
		t.Fatalf("%d endpoints recorded, want %d", len(seen), n)
	}
}

func TestNames(t *testing.T) {
	st := &ipamState{Endpoints: map[string]*endpointRecord{
		"a": {IP: "10.0.0.2", Names: endpointNames(EndpointConfig{Aliases: []string{"web", "Web"}, ContainerName: "p-web-1", Hostname: "abc"})},
		"b": {IP: "10.0.0.3", Names: endpointNames(EndpointConfig{Aliases: []string{"web"}, ContainerName: "p-web-2"})},
	}}
	want := map[string][]string{"web": {"10.0.0.2", "10.0.0.3"}, "p-web-1": {"10.0.0.2"}, "p-web-2": {"10.0.0.3"}, "abc": {"10.0.0.2"}}
	if diff := cmp.Diff(want, st.names()); diff != "" {
		t.Fatalf("names (-want +got):\n%s", diff)
	}
}

func TestPortTag(t *testing.T) {
	p := PortMapping{HostIP: "127.0.0.1", HostPort: 8080, ContainerIP: "10.210.0.2", ContainerPort: 80, Protocol: "tcp"}
	owner, got, ok := parsePortTag(p.tag("abcd1234:cid"))
	if !ok || owner != "abcd1234:cid" || got != p {
		t.Fatalf("round trip: %v %q %+v", ok, owner, got)
	}
	a := PortMapping{HostPort: 80, Protocol: "tcp"}
	for _, tc := range []struct {
		b    PortMapping
		want bool
	}{
		{PortMapping{HostPort: 80, Protocol: "tcp"}, true},
		{PortMapping{HostPort: 80, Protocol: "udp"}, false},
		{PortMapping{HostPort: 81, Protocol: "tcp"}, false},
		{PortMapping{HostIP: "127.0.0.1", HostPort: 80, Protocol: "tcp"}, true},
	} {
		if got := clash(a, tc.b); got != tc.want {
			t.Errorf("clash(%v, %v) = %v", a, tc.b, got)
		}
	}
	if got := clash(PortMapping{HostIP: "127.0.0.1", HostPort: 80, Protocol: "tcp"}, PortMapping{HostIP: "127.0.0.2", HostPort: 80, Protocol: "tcp"}); got {
		t.Error("different host IPs clash")
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{Root: t.TempDir(), RunRoot: t.TempDir(), Pool: "10.0.0.0/28"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("small pool: %v", err)
	}
	if _, err := New(Config{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no roots: %v", err)
	}
	m := newUnitManager(t)
	a, b := m.bridgeName("proj_default"), m.bridgeName("proj_other")
	if len(a) != 15 || a == b {
		t.Fatalf("bridge names %q %q", a, b)
	}
	m2 := newUnitManager(t)
	if m2.bridgeName("proj_default") == a {
		t.Fatal("bridge names do not depend on the root")
	}
}
