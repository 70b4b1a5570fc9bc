// Package runtime runs containers with libcontainer in-process. Each started container is
// supervised by its own monitor process (berth-monitor, package runtime/monitor, detached with
// setsid; its libcontainer work runs in short-lived berth-shim children)
// that owns the container after the CLI exits: it writes the log, records the exit code and
// OOM kills, applies the restart policy and runs the healthcheck.
//
// Importers alias this package as crt, since it shadows the standard library's runtime.
//
// Life cycle of a container:
//
//	Create -> created --Start--> running --(exit)--> restarting --(back-off)--> running
//	                                 |                    |
//	                                 +--Stop/Kill/exit----+--> exited --Start--> running
//	Remove (any stopped state, or any state with force) -> gone
//
// On disk: <Root>/<id>/{config.json,state.json,log,log.1...,hosts,resolv.conf,hostname};
// <RunRoot>/libct/<id> is libcontainer's state, <RunRoot>/containers/<id>/ holds the monitor's
// socket, lock and its own stderr.
package runtime

import (
	"errors"
	"io"
	"time"
)

// Errors returned by the runtime; test with errors.Is.
var (
	ErrNotFound     = errors.New("container not found")
	ErrNameConflict = errors.New("container name already in use")
	ErrExists       = errors.New("container already exists")
	ErrRunning      = errors.New("container is running")
	ErrNotRunning   = errors.New("container is not running")
	ErrInvalid      = errors.New("invalid container configuration")
	ErrAmbiguous    = errors.New("ambiguous container ID prefix")
	ErrMonitor      = errors.New("container monitor failed")
	ErrExec         = errors.New("exec failed")
	ErrVolumeInUse  = errors.New("volume is in use")
	ErrNoVolume     = errors.New("volume not found")
	ErrUnsupported  = errors.New("not supported")
)

// Container statuses, the same words Docker and the planner use.
const (
	StatusCreated    = "created"
	StatusRunning    = "running"
	StatusPaused     = "paused"
	StatusRestarting = "restarting"
	StatusExited     = "exited"
	StatusDead       = "dead"
)

// Health statuses.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// Mount is one mount into a container. Named volumes arrive as Type "volume" whose Source is
// the volume's host directory (see Volumes.Ensure); an empty volume is filled from the image's
// content at Target the first time it is mounted.
type Mount struct {
	Type     string   `json:"type"` // "bind", "volume" or "tmpfs"
	Source   string   `json:"source,omitempty"`
	Target   string   `json:"target"`
	ReadOnly bool     `json:"readOnly,omitempty"`
	Options  []string `json:"options,omitempty"` // bind: z, Z, rprivate...; tmpfs: size=64m, mode=1777
}

// Resources are cgroup limits. Zero means unlimited / default.
type Resources struct {
	Memory            int64   `json:"memory,omitempty"`            // bytes
	MemorySwap        int64   `json:"memorySwap,omitempty"`        // memory+swap bytes; -1 unlimited
	MemoryReservation int64   `json:"memoryReservation,omitempty"` // bytes
	CPUs              float64 `json:"cpus,omitempty"`              // e.g. 1.5
	CPUShares         uint64  `json:"cpuShares,omitempty"`
	CpusetCpus        string  `json:"cpusetCpus,omitempty"`
	CpusetMems        string  `json:"cpusetMems,omitempty"`
	PidsLimit         int64   `json:"pidsLimit,omitempty"`
	OOMScoreAdj       int     `json:"oomScoreAdj,omitempty"`
}

// Ulimit is one rlimit; Name is Docker's ("nofile", "nproc", ...).
type Ulimit struct {
	Name string `json:"name"`
	Soft int64  `json:"soft"`
	Hard int64  `json:"hard"`
}

// Device is a host device made available in the container.
type Device struct {
	PathOnHost        string `json:"pathOnHost"`
	PathInContainer   string `json:"pathInContainer,omitempty"`
	CgroupPermissions string `json:"cgroupPermissions,omitempty"` // "rwm" by default
}

// Healthcheck is a container's health probe. Test is Docker's form: ["CMD", args...],
// ["CMD-SHELL", "cmd"] or ["NONE"].
type Healthcheck struct {
	Test          []string      `json:"test"`
	Interval      time.Duration `json:"interval,omitempty"`      // default 30s
	Timeout       time.Duration `json:"timeout,omitempty"`       // default 30s
	StartPeriod   time.Duration `json:"startPeriod,omitempty"`   // default 0
	StartInterval time.Duration `json:"startInterval,omitempty"` // default 5s
	Retries       int           `json:"retries,omitempty"`       // default 3
}

// IDMap is a container's user namespace: container user and group IDs 0 to Size-1 are host
// IDs HostUID... and HostGID...
type IDMap struct {
	HostUID uint32 `json:"hostUID"`
	HostGID uint32 `json:"hostGID"`
	Size    uint32 `json:"size"`
}

// IDMappedRootfs records the overlay a user-namespaced container's root filesystem was
// remounted from (with ID-mapped layers), so that it can be mounted again.
type IDMappedRootfs struct {
	Source string   `json:"source"` // the rootfs the container was created with
	Lower  []string `json:"lower"`  // top first
	Upper  string   `json:"upper"`
	Work   string   `json:"work"`
}

// ContainerConfig is everything needed to create a container. It is stored as the container's
// config.json.
type ContainerConfig struct {
	ID     string            `json:"id"` // 64 hex
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Image  string            `json:"image,omitempty"` // informational

	// Rootfs is the already-mounted root filesystem directory.
	Rootfs string `json:"rootfs"`

	Args       []string `json:"args"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"` // name|uid[:group|gid], resolved in the rootfs
	GroupAdd   []string `json:"groupAdd,omitempty"`
	Hostname   string   `json:"hostname,omitempty"`
	Domainname string   `json:"domainname,omitempty"`
	Tty        bool     `json:"tty,omitempty"`
	OpenStdin  bool     `json:"openStdin,omitempty"`

	// NetNSPath: "" makes a new network namespace with only loopback (network none); "host"
	// shares the host's; any other value is the path of a namespace to join.
	NetNSPath string `json:"netnsPath,omitempty"`
	// PIDMode and IPCMode choose the PID and IPC namespaces: "" (or "private") makes the
	// container its own; "host" shares the host's; "container:REF" joins the namespace of
	// another running container (REF: name, ID or unique ID prefix; Create stores the full
	// ID). IPCMode also takes "shareable" (private, with a /dev/shm other containers can
	// join) and "none" (private, without /dev/shm). See namespaces.go.
	PIDMode string `json:"pidMode,omitempty"`
	IPCMode string `json:"ipcMode,omitempty"`
	// UsernsMode is "" or "host" (no user namespace) or "auto": a user namespace that maps
	// container IDs 0-65535 to a range of unprivileged host IDs picked for this container
	// (see userns.go). Create records the range in IDMap.
	UsernsMode string `json:"usernsMode,omitempty"`
	IDMap      *IDMap `json:"idMap,omitempty"`
	// IDMappedRootfs is set by Create for a user namespace: Rootfs is then the container's
	// own mount of the image's layers and writable layer, ID-mapped, under its directory.
	IDMappedRootfs *IDMappedRootfs `json:"idMappedRootfs,omitempty"`
	// VolumesFrom lists containers whose volume and bind mounts this container gets too, at
	// the same targets: "REF", "REF:ro" or "REF:rw" (default: the source mount's mode). Create
	// resolves them into Mounts once, as Docker does, and stores full IDs.
	VolumesFrom []string `json:"volumesFrom,omitempty"`

	Mounts     []Mount `json:"mounts,omitempty"`
	Hosts      string  `json:"hosts,omitempty"`      // /etc/hosts content, "" keeps the image's
	ResolvConf string  `json:"resolvConf,omitempty"` // /etc/resolv.conf content, "" keeps the image's

	Resources   Resources         `json:"resources"`
	Ulimits     []Ulimit          `json:"ulimits,omitempty"`
	CapAdd      []string          `json:"capAdd,omitempty"`
	CapDrop     []string          `json:"capDrop,omitempty"`
	Privileged  bool              `json:"privileged,omitempty"`
	ReadOnly    bool              `json:"readOnly,omitempty"`
	SecurityOpt []string          `json:"securityOpt,omitempty"` // seccomp=unconfined, no-new-privileges[:true|false]
	Sysctls     map[string]string `json:"sysctls,omitempty"`
	Devices     []Device          `json:"devices,omitempty"`
	ShmSize     int64             `json:"shmSize,omitempty"`    // bytes, default 64 MiB
	Tmpfs       map[string]string `json:"tmpfs,omitempty"`      // target -> options ("size=64m,mode=1777")
	Init        bool              `json:"init,omitempty"`       // run berth's reaper as PID 1
	StopSignal  string            `json:"stopSignal,omitempty"` // default SIGTERM
	StopTimeout time.Duration     `json:"stopTimeout,omitempty"`

	Restart     string       `json:"restart,omitempty"` // no|always|on-failure[:N]|unless-stopped
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
	LogMaxSize  int64        `json:"logMaxSize,omitempty"`  // bytes per file; 0 = 10 MiB, <0 unlimited
	LogMaxFiles int          `json:"logMaxFiles,omitempty"` // 0 = 3

	// AutoRemove removes the container's runtime state when it exits (run --rm -d). The
	// caller still owns the rootfs; the runtime only unmounts it when it lies under the
	// container's directory.
	AutoRemove bool `json:"autoRemove,omitempty"`
	// AutoRemoveCmd, when set with AutoRemove, is run by the monitor instead of its own removal
	// (for example `berth container rm -f ID`, which also releases the rootfs).
	AutoRemoveCmd []string `json:"autoRemoveCmd,omitempty"`

	Created time.Time `json:"created"`
}

// HealthResult is one healthcheck probe.
type HealthResult struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	ExitCode int       `json:"exitCode"`
	Output   string    `json:"output"`
}

// Health is the container's health, nil when it has no healthcheck.
type Health struct {
	Status        string         `json:"status"`
	FailingStreak int            `json:"failingStreak"`
	Log           []HealthResult `json:"log,omitempty"` // the last 5
}

// State is what is true about a container now.
type State struct {
	Status       string    `json:"status"`
	Pid          int       `json:"pid,omitempty"` // host PID of the container's PID 1
	ExitCode     int       `json:"exitCode"`
	OOMKilled    bool      `json:"oomKilled,omitempty"`
	Error        string    `json:"error,omitempty"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
	RestartCount int       `json:"restartCount,omitempty"`
	// StoppedByUser is set by Stop/Kill so unless-stopped does not revive the container.
	StoppedByUser bool    `json:"stoppedByUser,omitempty"`
	Health        *Health `json:"health,omitempty"`
	MonitorPid    int     `json:"monitorPid,omitempty"`
}

// Running reports whether the container's process is (or is about to be) alive.
func (s State) Running() bool {
	return s.Status == StatusRunning || s.Status == StatusPaused || s.Status == StatusRestarting
}

// Container is a container's configuration and current state.
type Container struct {
	Config ContainerConfig
	State  State
}

// LogOptions select what Logs returns.
type LogOptions struct {
	Follow     bool
	Tail       int       // last n lines; < 0 all
	Since      time.Time // zero: from the start
	Until      time.Time // zero: no end
	Timestamps bool
	Stdout     bool // both false means both
	Stderr     bool
}

// LogLine is one line of a container's output.
type LogLine struct {
	Time    time.Time `json:"time"`
	Stream  string    `json:"stream"` // "stdout" or "stderr"
	Text    string    `json:"text"`   // without the trailing newline
	Partial bool      `json:"partial,omitempty"`
}

// ProcessSpec is a process to exec in a running container.
type ProcessSpec struct {
	Args       []string
	Env        []string // added to the container's
	User       string   // "" = the container's
	WorkingDir string   // "" = the container's
	Tty        bool
	Privileged bool
}

// Stdio connects a process to the caller. Nil members mean /dev/null. With a tty, Stdout gets
// everything and Stderr is unused; Resize delivers terminal size changes (width, height).
type Stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Resize, when not nil, delivers terminal sizes for tty processes; closed when done.
	Resize <-chan [2]uint16
	// Detach, when true for Exec, starts the process and returns at once with exit code 0.
	Detach bool

	started func() // called once the exec'd process runs (shim status report)
}
