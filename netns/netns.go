// Package netns gives berth's containers their networks: a Linux bridge per network, a network
// namespace per container (bind-mounted under <run root>/netns/<id>) wired with a veth pair per
// network, persistent locked IPAM, a DNS server per network answering service names, and
// published ports through nftables in berth's own table.
//
// Lifecycle of a container's networking, as the engine drives it:
//
//	EnsureNetwork(n)            once per network (idempotent; re-spawns a dead DNS server)
//	CreateSandbox(id) -> path   before the container starts; the runtime joins path
//	Attach(id, net, ep)         one per network, in priority order (the first non-internal
//	                            network provides the default route)
//	Publish(id, ports)          after Attach; CheckPorts before anything starts
//	... container runs ...
//	RemoveSandbox(id)           unpublishes, detaches everything and unmounts the namespace
//	RemoveNetwork(name, force)  when no endpoint is left
//
// Every Ensure/Create is idempotent and every Remove/Detach treats "not found" as success, so an
// interrupted sequence converges when it is run again; Prune sweeps what a killed process left.
package netns

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
)

// Errors returned by the package; test with errors.Is.
var (
	ErrNotFound       = errors.New("not found")
	ErrInUse          = errors.New("network has active endpoints")
	ErrPortInUse      = errors.New("port is already allocated")
	ErrAddressInUse   = errors.New("address is already in use")
	ErrPoolExhausted  = errors.New("no free subnet left in the address pool")
	ErrRangeExhausted = errors.New("no free address left in the network")
	ErrInvalid        = errors.New("invalid network configuration")
	ErrNoSandbox      = errors.New("container has no network sandbox")
	ErrMismatch       = errors.New("existing network differs from the requested one")
)

// DefaultPool is the address pool networks without an explicit subnet are carved from, in /24s.
const DefaultPool = "10.210.0.0/16"

// Config configures a Manager.
type Config struct {
	// Root holds persistent records: <Root>/<network>.json (name, subnet, gateway, labels) and
	// <Root>/ports/<container>.json (last published ports). Usually <berth root>/networks.
	Root string
	// RunRoot holds runtime state cleared by a reboot: netns/<id> bind mounts, ipam/<network>.json
	// address books (also the DNS records), dns/<network>.pid. Usually /run/berth.
	RunRoot string
	Logger  *slog.Logger
	// Pool is the default address pool (CIDR), carved into /24s; default DefaultPool.
	Pool string
	// DNSBinary is the argv that starts a DNS server process; RunDNS's flags are appended.
	// Default: the current executable with "__dns".
	DNSBinary []string
	// PortRange is the range random host ports are taken from; default 49153-65535.
	PortRange [2]uint16
}

// Manager owns berth's networks. It is safe for concurrent use by several goroutines and
// several processes: every state change happens under file locks.
type Manager struct {
	cfg  Config
	log  *slog.Logger
	pool *net.IPNet
	// rootID scopes kernel objects (bridge and veth names, rule tags) to this state root, so
	// managers with different roots on one machine never touch each other's objects.
	rootID string
}

// New returns a Manager; it creates the state directories and changes nothing in the kernel.
func New(cfg Config) (*Manager, error) {
	if cfg.Root == "" || cfg.RunRoot == "" {
		return nil, fmt.Errorf("netns: Root and RunRoot are required: %w", ErrInvalid)
	}
	if cfg.Pool == "" {
		cfg.Pool = DefaultPool
	}
	_, pool, err := net.ParseCIDR(cfg.Pool)
	if err != nil || pool.IP.To4() == nil {
		return nil, fmt.Errorf("netns: pool %q is not an IPv4 CIDR: %w", cfg.Pool, ErrInvalid)
	}
	if ones, _ := pool.Mask.Size(); ones > 24 {
		return nil, fmt.Errorf("netns: pool %q is smaller than a /24: %w", cfg.Pool, ErrInvalid)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.DNSBinary) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("netns: find executable for the DNS server: %w", err)
		}
		cfg.DNSBinary = []string{exe, "__dns"}
	}
	if cfg.PortRange[0] == 0 || cfg.PortRange[1] < cfg.PortRange[0] {
		cfg.PortRange = [2]uint16{49153, 65535}
	}
	for _, d := range []string{cfg.Root, filepath.Join(cfg.Root, "ports"),
		cfg.RunRoot, filepath.Join(cfg.RunRoot, "ipam"), filepath.Join(cfg.RunRoot, "netns"), filepath.Join(cfg.RunRoot, "dns")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("netns: create state directory: %w", err)
		}
	}
	abs, err := filepath.Abs(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	sum := sha256.Sum256([]byte(filepath.Clean(abs)))
	return &Manager{cfg: cfg, log: cfg.Logger, pool: pool, rootID: hex.EncodeToString(sum[:])[:8]}, nil
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func validName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("network name %q: use letters, digits, '_', '.' and '-': %w", name, ErrInvalid)
	}
	return nil
}

var idRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

func validID(id string) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("container id %q: %w", id, ErrInvalid)
	}
	return nil
}
