package engine

import (
	"context"
	"time"

	"github.com/berth-dev/berth/spec"
)

// The engine consumes the concrete storage, runtime and network packages through the small
// interfaces below; cmd/berth adapts the real implementations to them, and the engine's tests
// use fakes (fakes_test.go). Every Remove treats "not found" as success; every Ensure treats
// "already exists" as success.

// Image is what the engine needs to know about an image present in the store.
type Image struct {
	ID         string
	Env        []string
	Cmd        []string
	Entrypoint []string
	WorkingDir string
	User       string
	StopSignal string
	Volumes    []string // image VOLUMEs (container paths)
	// Healthcheck is the image's HEALTHCHECK, nil when it has none.
	Healthcheck *spec.Healthcheck
}

// Images resolves, pulls and removes images.
type Images interface {
	// Resolve returns the local image for ref, or an error wrapping ErrNotFound.
	Resolve(ctx context.Context, ref string) (Image, error)
	Pull(ctx context.Context, ref string) error
	Remove(ctx context.Context, ref string) error
}

// Builder builds a service's image and tags it. Optional: without one, services that must be
// built fail with ErrUnsupported.
type Builder interface {
	Build(ctx context.Context, project string, svc spec.Service, tag string) error
}

// Layers prepares and releases container root filesystems.
//
// Mount makes the image's layers plus the container's writable layer available at the returned
// path; Unmount undoes Mount but keeps the writable layer (stop/start keeps it); Remove discards
// the writable layer (after Unmount).
type Layers interface {
	Mount(ctx context.Context, containerID, imageID string) (rootfs string, err error)
	Unmount(ctx context.Context, containerID string) error
	Remove(ctx context.Context, containerID string) error
}

// ContainerInfo is one container as the runtime lists it.
type ContainerInfo struct {
	ID       string
	Name     string
	Labels   map[string]string
	State    string // planner.State*
	ExitCode int
	Health   string // "", "starting", "healthy", "unhealthy"
	Pid      int
	Created  time.Time
	Command  string
	// Ports are the published ports recorded for the container.
	Ports []PortMapping
}

// Mount is one mount of a container, with a host source.
type Mount struct {
	Type     string // "bind", "volume" (Source is the volume's host directory), "tmpfs"
	Source   string
	Target   string
	ReadOnly bool
	Options  []string
}

// ContainerConfig is everything the runtime needs to create a container.
type ContainerConfig struct {
	ID         string
	Name       string
	Hostname   string
	Labels     map[string]string
	Rootfs     string
	Args       []string
	Env        []string
	WorkingDir string
	User       string
	NetNSPath  string // namespace to join; "host" for the host's network
	Mounts     []Mount
	Hosts      string // content of /etc/hosts
	ResolvConf string // content of /etc/resolv.conf
	Restart    string
	// Healthcheck is the effective healthcheck (service over image), nil for none.
	Healthcheck *spec.Healthcheck
	StopSignal  string
	Tty         bool
	OpenStdin   bool
	// Service is the full service definition for settings the engine does not interpret
	// (resources, capabilities, ulimits, sysctls...). Zero for one-off containers without one.
	Service spec.Service
}

// Runtime creates and drives containers.
//
// A container is created (stopped), started (running), may exit on its own or be stopped
// (exited), may be started again, and is removed when stopped. Stop sends the stop signal and
// kills after grace.
type Runtime interface {
	Create(ctx context.Context, c ContainerConfig) error
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string, grace time.Duration) error
	Remove(ctx context.Context, id string, force bool) error
	Inspect(ctx context.Context, id string) (ContainerInfo, error)
}

// Lister lists every container the runtime knows.
type Lister interface {
	List(ctx context.Context) ([]ContainerInfo, error)
}

// StateWatcher is an optional capability of Runtime: changes receives a value whenever the
// recorded state of one of ids may have changed, so waits need not poll. stop ends the watch.
type StateWatcher interface {
	WatchState(ctx context.Context, ids []string) (changes <-chan struct{}, stop func(), err error)
}

// IDLister is an optional capability of a Lister: the IDs of every container, cheaper than
// List because no config or state is read. Sweep uses it.
type IDLister interface {
	IDs(ctx context.Context) ([]string, error)
}

// Signaler sends signals and freezes containers.
type Signaler interface {
	Kill(ctx context.Context, id string, signal string) error
	Pause(ctx context.Context, id string) error
	Unpause(ctx context.Context, id string) error
}

// LogLine is one line of a container's output.
type LogLine struct {
	Time   time.Time
	Stream string // "stdout" or "stderr"
	Text   string // without the trailing newline
}

// Logs reads a container's log.
type Logs interface {
	// Tail returns the last n lines (all when n < 0).
	Tail(ctx context.Context, id string, n int) ([]LogLine, error)
	// Follow calls fn for the last tail lines (all when tail < 0) and then for each new line
	// until ctx ends or, when untilExit is set, the container stops.
	Follow(ctx context.Context, id string, tail int, untilExit bool, fn func(LogLine)) error
}

// NetworkConfig describes one project network.
type NetworkConfig struct {
	Name     string
	Labels   map[string]string
	Internal bool
	Subnet   string
	Gateway  string
	IPRange  string
}

// NetworkInfo is one existing network.
type NetworkInfo struct {
	Name   string
	Labels map[string]string
}

// Networks makes and removes networks.
type Networks interface {
	Ensure(ctx context.Context, n NetworkConfig) error
	Remove(ctx context.Context, name string) error
	List(ctx context.Context) ([]NetworkInfo, error)
}

// EndpointConfig is a container's attachment to one network.
type EndpointConfig struct {
	Network       string
	IPv4Address   string
	Aliases       []string
	Hostname      string
	ContainerName string
	// Links are names only this container resolves: alias -> service (Compose links).
	Links map[string]string
}

// Endpoint is the result of an attachment.
type Endpoint struct {
	Network string
	IP      string // container address, without prefix length
	Gateway string
	DNS     string // resolver address for the container's resolv.conf, "" for the host's
}

// PortMapping is one published port.
type PortMapping struct {
	HostIP        string
	HostPort      uint16 // 0 asks for a free port
	ContainerPort uint16
	Protocol      string // "tcp" or "udp"
}

// Sandboxes are containers' network namespaces.
//
// Create makes the namespace; Attach wires it into networks; Publish maps host ports into it;
// Remove undoes all of that (unpublish, detach from every network, delete the namespace).
type Sandboxes interface {
	Create(ctx context.Context, id string) (nsPath string, err error)
	Attach(ctx context.Context, id string, ep EndpointConfig) (Endpoint, error)
	Publish(ctx context.Context, id string, ports []PortMapping) ([]PortMapping, error)
	Remove(ctx context.Context, id string, networks []string) error
}

// PortChecker is an optional capability of Sandboxes: CheckPorts fails (before anything
// starts) when a fixed host port is already published or listened on.
type PortChecker interface {
	CheckPorts(ctx context.Context, ports []PortMapping) error
}

// VolumeInfo is one existing named volume.
type VolumeInfo struct {
	Name   string
	Labels map[string]string
}

// Volumes makes and removes named volumes.
type Volumes interface {
	// Ensure creates the volume if missing and returns its host directory.
	Ensure(ctx context.Context, name string, labels map[string]string) (path string, err error)
	Remove(ctx context.Context, name string) error
	List(ctx context.Context) ([]VolumeInfo, error)
}

// Leftover is something made for a container (a sandbox, a writable layer): the container's
// ID and when it was made.
type Leftover struct {
	ID      string
	Created time.Time
}

// SandboxSweeper is an optional capability of Sandboxes for converging after a crash or a
// failed create: List returns the containers that have a sandbox; Recover sweeps endpoints,
// port rules and DNS records of containers whose sandbox is gone.
type SandboxSweeper interface {
	List(ctx context.Context) ([]Leftover, error)
	Recover(ctx context.Context) error
}

// LayerLister is an optional capability of Layers: the containers that have a writable layer.
type LayerLister interface {
	List(ctx context.Context) ([]Leftover, error)
}

// AutoRemover is an optional capability of Runtime: SetAutoRemove makes a created container
// remove itself, and everything made for it, when it exits (`run -d --rm`).
type AutoRemover interface {
	SetAutoRemove(ctx context.Context, id string) error
}
