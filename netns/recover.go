package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// Recover sweeps what a killed berth process left behind: endpoints of containers whose
// sandbox is gone, bridges, rules and DNS servers of networks without a record, port rules
// of containers without a sandbox, and unmounted sandbox files. Live networks and sandboxes
// are not touched; networks whose DNS server died get it back on their next EnsureNetwork.
func (m *Manager) Recover(ctx context.Context) error {
	l, err := m.lockGlobal()
	if err != nil {
		return err
	}
	defer l.Unlock()
	return m.recoverLocked()
}

// sandboxGrace is how old an unmounted sandbox file must be before Recover treats it as left
// behind rather than as one that CreateSandbox is about to mount.
const sandboxGrace = time.Minute

func (m *Manager) recoverLocked() error {
	recs, err := m.listRecords()
	if err != nil {
		return err
	}
	known := map[string]bool{}
	bridges := map[string]bool{}
	for _, n := range recs {
		known[n.Name] = true
		bridges[n.Bridge] = true
		err := m.withIPAM(n.Name, func(st *ipamState) (bool, error) { return m.sweepStale(st), nil })
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	var errs []error
	// Bridges of networks that lost their record (removal interrupted after the record went
	// cannot happen: the record goes last; but a record can be deleted by hand).
	// Names from sysfs: a netlink dump of every link costs far more with hundreds of veths
	// around, and only this root's bridge names are of interest.
	ifaces, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return fmt.Errorf("list links: %w", err)
	}
	for _, e := range ifaces {
		name := e.Name()
		if !strings.HasPrefix(name, bridgePrefix+m.rootID[:4]) || len(name) != 15 || bridges[name] {
			continue
		}
		if link, err := netlink.LinkByName(name); err == nil && link.Type() == "bridge" {
			errs = append(errs, deleteLink(name))
		}
	}
	// Address books, DNS servers and pid files of unknown networks.
	books, _ := filepath.Glob(filepath.Join(m.ipamDir(), "*.json"))
	for _, b := range books {
		if name := strings.TrimSuffix(filepath.Base(b), ".json"); !known[name] {
			errs = append(errs, m.stopDNS(name), m.removeIPAM(name))
		}
	}
	pids, _ := filepath.Glob(filepath.Join(m.cfg.RunRoot, "dns", "*.pid"))
	for _, p := range pids {
		if name := strings.TrimSuffix(filepath.Base(p), ".pid"); !known[name] {
			errs = append(errs, m.stopDNS(name))
		}
	}
	// Rules; port rules change under the ports lock.
	pl, err := m.portsLock()
	if err != nil {
		return err
	}
	defer pl.Unlock()
	c, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	rules, err := rulesWithTag(c, "")
	if err != nil {
		return err
	}
	stale := 0
	netPrefix := tagNet + m.rootID + ":"
	for _, r := range rules {
		tag := string(r.UserData)
		switch {
		case strings.HasPrefix(tag, netPrefix):
			if name := strings.TrimSuffix(strings.TrimPrefix(tag, netPrefix), "\x00"); !known[name] {
				errs = append(errs, c.DelRule(r))
				stale++
			}
		case strings.HasPrefix(tag, tagPort+m.rootID+":"):
			if owner, _, ok := parsePortTag(tag); ok && !m.sandboxMounted(ownerID(owner)) {
				errs = append(errs, c.DelRule(r))
				stale++
			}
		}
	}
	if stale > 0 {
		if err := flush(c); err != nil {
			errs = append(errs, fmt.Errorf("delete stale nftables rules: %w", err))
		}
	}
	errs = append(errs, dropTableIfEmpty())
	// Sandbox files whose mount is gone. CreateSandbox makes the file first and mounts the
	// namespace on it a moment later without the global lock (sandboxes are made in parallel),
	// so a young unmounted file may be one being created right now: leave it to a later sweep.
	ents, _ := os.ReadDir(filepath.Join(m.cfg.RunRoot, "netns"))
	for _, e := range ents {
		if m.sandboxMounted(e.Name()) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) < sandboxGrace {
			continue
		}
		os.Remove(filepath.Join(m.cfg.RunRoot, "netns", e.Name()))
	}
	return errors.Join(errs...)
}
