package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is berth's nftables table (family ip). berth touches no other table.
const TableName = "berth"

// Rules carry their owner in UserData: "net:<root id>:<network>\x00" or "port:<root id>:
// <container>:<proto>:<host ip>:<host port>:<container ip>:<container port>", so they can be
// found and removed by owner.
const (
	tagNet  = "net:"
	tagPort = "port:"
)

type nftChains struct {
	table                                *nftables.Table
	forward, prerouting, output, postrtg *nftables.Chain
}

func berthTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
}

func chainsOf(t *nftables.Table) *nftChains {
	accept := nftables.ChainPolicyAccept
	return &nftChains{
		table: t,
		forward: &nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept},
		prerouting: &nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept},
		output: &nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest, Policy: &accept},
		postrtg: &nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
			Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &accept},
	}
}

// ensureTable creates berth's table and base chains if missing (in the same batch as what
// the caller adds next).
func ensureTable(c *nftables.Conn) *nftChains {
	ch := chainsOf(c.AddTable(berthTable()))
	c.AddChain(ch.forward)
	c.AddChain(ch.prerouting)
	c.AddChain(ch.output)
	c.AddChain(ch.postrtg)
	return ch
}

func (ch *nftChains) all() []*nftables.Chain {
	return []*nftables.Chain{ch.forward, ch.prerouting, ch.output, ch.postrtg}
}

// rulesWithTag lists berth's rules whose UserData starts with prefix. A missing table yields none.
func rulesWithTag(c *nftables.Conn, prefix string) ([]*nftables.Rule, error) {
	ch := chainsOf(berthTable())
	var out []*nftables.Rule
	for _, chain := range ch.all() {
		rules, err := c.GetRules(ch.table, chain)
		if err != nil {
			if isNftNotFound(err) {
				continue
			}
			return nil, fmt.Errorf("list nftables rules of %s/%s: %w", TableName, chain.Name, err)
		}
		for _, r := range rules {
			if strings.HasPrefix(string(r.UserData), prefix) {
				r.Table, r.Chain = ch.table, chain
				out = append(out, r)
			}
		}
	}
	return out, nil
}

// flush sends the batch under the machine lock, so that dropTableIfEmpty never deletes the
// table between another process's listing and its batch.
func flush(c *nftables.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := machineLock(ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	return c.Flush()
}

// dropTableIfEmpty deletes berth's table when no rule is left in it (the last network of
// every root is gone), so that nothing of berth's stays hooked into the packet path.
func dropTableIfEmpty() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := machineLock(ctx)
	if err != nil {
		return err
	}
	defer l.Close()
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	ch := chainsOf(berthTable())
	for _, chain := range ch.all() {
		rules, err := c.GetRules(ch.table, chain)
		if err != nil {
			if isNftNotFound(err) {
				continue
			}
			return fmt.Errorf("list nftables rules of %s/%s: %w", TableName, chain.Name, err)
		}
		if len(rules) > 0 {
			return nil
		}
	}
	if _, err := c.ListTableOfFamily(TableName, nftables.TableFamilyIPv4); err != nil {
		return nil // no table
	}
	c.DelTable(ch.table)
	if err := c.Flush(); err != nil && !isNftNotFound(err) {
		return fmt.Errorf("delete empty nftables table %s: %w", TableName, err)
	}
	return nil
}

func isNftNotFound(err error) bool {
	return errors.Is(err, unix.ENOENT) || strings.Contains(err.Error(), "no such file or directory")
}

func (m *Manager) netTag(network string) string { return tagNet + m.rootID + ":" + network + "\x00" }

func ifname(n string) []byte {
	b := make([]byte, 16)
	copy(b, n)
	return b
}

func metaIf(key expr.MetaKey, op expr.CmpOp, data []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}
}

// ipMatch matches the IPv4 source (offset 12) or destination (16) against a network.
func ipMatch(offset uint32, n *net.IPNet) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte(n.Mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(n.IP.To4())},
	}
}

// ctDNAT matches connections whose destination was rewritten (ct status dnat).
func ctDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(0x20 /* IPS_DST_NAT */), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func cat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

type nftRule struct {
	chain *nftables.Chain
	exprs []expr.Any
}

var drop = []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}

// ensureNetworkRules (re)installs the network's rules: isolation from other berth bridges,
// no way out for internal networks, outbound masquerade for the others, masquerade of
// loopback sources reaching published ports. Callers hold the global lock.
func (m *Manager) ensureNetworkRules(n *Network) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	old, err := rulesWithTag(c, m.netTag(n.Name))
	if err != nil {
		return err
	}
	_, subnet, _ := net.ParseCIDR(n.Subnet)
	loopback := &net.IPNet{IP: net.IPv4(127, 0, 0, 0).To4(), Mask: net.CIDRMask(8, 32)}
	var want []nftRule
	ch := ensureTable(c)
	br := ifname(n.Bridge)
	pfx := []byte(bridgePrefix)
	if n.Internal {
		want = append(want,
			nftRule{ch.forward, cat(metaIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), metaIf(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), drop)},
			nftRule{ch.forward, cat(metaIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), metaIf(expr.MetaKeyIIFNAME, expr.CmpOpNeq, br), drop)},
		)
	} else {
		want = append(want,
			nftRule{ch.forward, cat(metaIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, br), metaIf(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br),
				metaIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, pfx), drop)},
			nftRule{ch.forward, cat(metaIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), metaIf(expr.MetaKeyIIFNAME, expr.CmpOpNeq, br),
				metaIf(expr.MetaKeyIIFNAME, expr.CmpOpEq, pfx), drop)},
			nftRule{ch.postrtg, cat(ipMatch(12, subnet), metaIf(expr.MetaKeyOIFNAME, expr.CmpOpNeq, br), []expr.Any{&expr.Masq{}})},
			// Hairpin: a container reaching a port published by a neighbour on the same
			// bridge through a host address must see the reply come back from that address.
			nftRule{ch.postrtg, cat(ctDNAT(), ipMatch(12, subnet), ipMatch(16, subnet), metaIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), []expr.Any{&expr.Masq{}})},
		)
	}
	want = append(want, nftRule{ch.postrtg, cat(ipMatch(12, loopback), metaIf(expr.MetaKeyOIFNAME, expr.CmpOpEq, br), []expr.Any{&expr.Masq{}})})

	for _, r := range old {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("delete nftables rule: %w", err)
		}
	}
	for _, w := range want {
		c.AddRule(&nftables.Rule{Table: ch.table, Chain: w.chain, Exprs: w.exprs, UserData: []byte(m.netTag(n.Name))})
	}
	if err := flush(c); err != nil {
		return fmt.Errorf("install nftables rules for network %q: %w", n.Name, err)
	}
	return nil
}

// deleteNetworkRules removes the network's rules; none is not an error.
func (m *Manager) deleteNetworkRules(name string) error {
	return deleteTagged(m.netTag(name))
}

func deleteTagged(prefix string) error {
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	rules, err := rulesWithTag(c, prefix)
	if err != nil {
		return err
	}
	if len(rules) == 0 {
		return nil
	}
	for _, r := range rules {
		if err := c.DelRule(r); err != nil {
			return fmt.Errorf("delete nftables rule: %w", err)
		}
	}
	if err := flush(c); err != nil {
		return fmt.Errorf("delete nftables rules %q: %w", strings.TrimSuffix(prefix, "\x00"), err)
	}
	return nil
}

// dnatRule is a published port: traffic to the host's addresses (or hostIP) on proto/hostPort
// goes to containerIP:containerPort.
func dnatExprs(p PortMapping) []expr.Any {
	var match []expr.Any
	if hip := net.ParseIP(p.HostIP); hip != nil && !hip.IsUnspecified() {
		match = []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(hip.To4())},
		}
	} else {
		match = []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
		}
	}
	proto := byte(unix.IPPROTO_TCP)
	if p.Protocol == "udp" {
		proto = unix.IPPROTO_UDP
	}
	return cat(match, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.HostPort)},
		&expr.Immediate{Register: 1, Data: []byte(net.ParseIP(p.ContainerIP).To4())},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.ContainerPort)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	})
}
