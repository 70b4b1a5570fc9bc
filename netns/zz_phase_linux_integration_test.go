//go:build linux && integration

package netns

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestZZPhases(t *testing.T) {
	m := newTestManager(t)
	ctx := context.Background()
	n, _ := m.EnsureNetwork(ctx, NetworkConfig{Name: "ph"})
	for i := 0; i < 5; i++ {
		id := fmt.Sprintf("p%d", i)
		mustSandbox(t, m, id)
		t0 := time.Now()
		var st *ipamState
		m.withIPAM(n.Name, func(s *ipamState) (bool, error) { st = s; return true, nil })
		t1 := time.Now()
		rec := &endpointRecord{IP: fmt.Sprintf("10.211.0.%d", 100+i)}
		rec.HostVeth, _ = m.vethName(id, n.Name)
		_, peer := m.vethName(id, n.Name)
		nr, _ := m.readRecord(n.Name)
		t2 := time.Now()
		_, err := m.wire(nr, id, rec, peer, 24)
		t3 := time.Now()
		h, ns, _ := m.sandboxHandle(id)
		h.Delete(); ns.Close()
		t4 := time.Now()
		t.Logf("ipam write %v, read rec %v, wire %v, handle %v err %v", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), t4.Sub(t3), err)
		_ = st
	}
}
