// Package spec loads Compose files with compose-go and converts them into berth's own model.
//
// Nothing outside this package sees compose-go types: the rest of berth works on Project,
// Service, Network and Volume as defined here. All durations are time.Duration, all sizes are
// bytes, and maps are never nil after Load.
package spec

import "time"

// Project is a loaded, interpolated, merged and validated Compose project.
type Project struct {
	Name       string
	WorkingDir string
	// ComposeFiles are the files the project was loaded from, in merge order.
	ComposeFiles []string
	// Services are the enabled services, sorted by name.
	Services []Service
	// DisabledServices are services excluded by profiles, sorted by name.
	DisabledServices []Service
	Networks         map[string]Network // key: the name used in the compose file
	Volumes          map[string]Volume  // key: the name used in the compose file
	Secrets          map[string]FileObject
	Configs          map[string]FileObject
	// Profiles lists every profile named by any service, sorted.
	Profiles []string
}

// Service is one Compose service with defaults applied.
type Service struct {
	Name  string
	Image string // may be empty when Build is set; see ImageName
	Build *Build

	// Command and Entrypoint are nil when the image's default applies, and empty but non-nil
	// when the compose file clears them explicitly.
	Command    []string
	Entrypoint []string

	Environment map[string]string // env_file entries merged in, then environment on top
	EnvFiles    []string          // absolute paths, as declared
	WorkingDir  string
	User        string
	GroupAdd    []string
	Hostname    string
	Domainname  string
	// ContainerName is the fixed name from container_name, or empty.
	ContainerName string

	Ports       []Port
	Expose      []string
	Volumes     []Mount
	VolumesFrom []string
	Tmpfs       []string

	// Networks the service joins, keyed by the project-level network key. Empty when
	// NetworkMode is set to something other than a network.
	Networks    map[string]ServiceNetwork
	NetworkMode string // "", "none", "host", "service:NAME", "container:NAME", "bridge"
	Links       []string
	ExtraHosts  []string // "host:ip" (also "host=ip" is normalised to "host:ip")
	DNS         []string
	DNSSearch   []string
	DNSOpt      []string
	MacAddress  string

	DependsOn   map[string]Dependency
	Healthcheck *Healthcheck

	Restart         string // "no", "always", "on-failure[:N]", "unless-stopped"
	StopSignal      string
	StopGracePeriod *time.Duration
	Init            *bool
	Labels          map[string]string
	Annotations     map[string]string
	Profiles        []string
	// Scale is the number of replicas asked for (scale, deploy.replicas, or 1).
	Scale int

	Resources   Resources
	Ulimits     map[string]Ulimit
	CapAdd      []string
	CapDrop     []string
	Privileged  bool
	ReadOnly    bool
	SecurityOpt []string
	Sysctls     map[string]string
	Devices     []string
	ShmSize     int64
	IPC         string
	PID         string
	UsernsMode  string
	Tty         bool
	StdinOpen   bool
	Logging     *Logging
	PullPolicy  string // "", "always", "missing", "never", "build"
	Platform    string
	Secrets     []FileRef
	Configs     []FileRef

	// Extensions holds x-* keys of the service, as decoded YAML values.
	Extensions map[string]any
}

// ImageName is the image the service runs: Image, or "<project>-<service>" for a build
// without an explicit image, as Compose names it.
func (s Service) ImageName(project string) string {
	if s.Image != "" {
		return s.Image
	}
	return project + "-" + s.Name
}

// Build is a service's build section.
type Build struct {
	Context          string // absolute directory
	Dockerfile       string // path relative to Context, or absolute
	DockerfileInline string
	Args             map[string]string
	Target           string
	Labels           map[string]string
	Tags             []string
	Network          string
	NoCache          bool
	Pull             bool
	Platforms        []string
}

// Port is one published or exposed port. Ranges are expanded by the loader into one Port each.
type Port struct {
	Name      string
	HostIP    string
	Published string // host port, "" for a random port; may be a range "8000-8010"
	Target    uint32 // container port
	Protocol  string // "tcp" or "udp"
	Mode      string // "ingress" or "host"
}

// Mount types.
const (
	MountVolume = "volume"
	MountBind   = "bind"
	MountTmpfs  = "tmpfs"
)

// Mount is one entry of a service's volumes.
type Mount struct {
	Type     string // MountVolume, MountBind, MountTmpfs
	Source   string // volume key (project-level), absolute host path, or "" (anonymous volume)
	Target   string
	ReadOnly bool
	// Bind options.
	CreateHostPath bool
	Propagation    string
	SELinux        string // "z" or "Z"
	// Volume options.
	NoCopy  bool
	Subpath string
	// Tmpfs options.
	TmpfsSize int64
	TmpfsMode uint32
}

// ServiceNetwork is a service's attachment to one network.
type ServiceNetwork struct {
	Aliases     []string
	IPv4Address string
	IPv6Address string
	Priority    int
}

// Dependency conditions.
const (
	ConditionStarted   = "service_started"
	ConditionHealthy   = "service_healthy"
	ConditionCompleted = "service_completed_successfully"
)

// Dependency is one depends_on entry.
type Dependency struct {
	Condition string // ConditionStarted, ConditionHealthy, ConditionCompleted
	Restart   bool
	Required  bool
}

// Healthcheck is a service's healthcheck; Disable means "NONE" / disable: true.
type Healthcheck struct {
	Test          []string // ["CMD", ...], ["CMD-SHELL", "..."], or ["NONE"]
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
	Disable       bool
}

// Resources are the limits and reservations of a service, merged from the top-level keys
// (mem_limit, cpus, ...) and deploy.resources.
type Resources struct {
	MemLimit       int64   // bytes, 0 = unlimited
	MemReservation int64   // bytes
	MemSwapLimit   int64   // bytes, -1 = unlimited swap
	CPUs           float64 // 0 = unlimited
	CPUShares      int64
	Cpuset         string
	PidsLimit      int64 // 0 = unlimited
}

// Ulimit is a soft/hard pair.
type Ulimit struct {
	Soft int64
	Hard int64
}

// Logging is a service's logging section.
type Logging struct {
	Driver  string
	Options map[string]string
}

// FileRef is a service's reference to a secret or config.
type FileRef struct {
	Source string
	Target string
	UID    string
	GID    string
	Mode   *uint32
}

// Network is a project-level network.
type Network struct {
	Name       string // actual name, e.g. "<project>_default"
	Driver     string
	DriverOpts map[string]string
	Internal   bool
	External   bool
	Attachable bool
	EnableIPv6 bool
	Labels     map[string]string
	IPAM       []IPAMConfig
}

// IPAMConfig is one ipam.config entry.
type IPAMConfig struct {
	Subnet  string
	Gateway string
	IPRange string
}

// Volume is a project-level named volume.
type Volume struct {
	Name       string // actual name, e.g. "<project>_data"
	Driver     string
	DriverOpts map[string]string
	External   bool
	Labels     map[string]string
}

// FileObject is a top-level secret or config.
type FileObject struct {
	Name        string
	File        string // absolute path
	Environment string
	Content     string
	External    bool
}

// Service returns the enabled service with the given name.
func (p *Project) Service(name string) (Service, bool) {
	for _, s := range p.Services {
		if s.Name == name {
			return s, true
		}
	}
	return Service{}, false
}

// ServiceNames returns the enabled services' names in order.
func (p *Project) ServiceNames() []string {
	names := make([]string, len(p.Services))
	for i, s := range p.Services {
		names[i] = s.Name
	}
	return names
}
