// Package planner turns a desired project and the observed state into a plan of typed actions.
//
// It is pure: no I/O, no syscalls, no clock and no randomness. Plan(want, have, opt) is a
// function, and Plan.String() is deterministic; golden tests compare it.
package planner

// Compose's label keys, used on containers, networks and volumes.
const (
	LabelProject    = "com.docker.compose.project"
	LabelService    = "com.docker.compose.service"
	LabelNumber     = "com.docker.compose.container-number"
	LabelOneOff     = "com.docker.compose.oneoff"
	LabelConfigHash = "com.docker.compose.config-hash"
	LabelImage      = "com.docker.compose.image"
	LabelNetwork    = "com.docker.compose.network"
	LabelVolume     = "com.docker.compose.volume"
	LabelWorkingDir = "com.docker.compose.project.working_dir"
	LabelConfigFile = "com.docker.compose.project.config_files"
	LabelDependsOn  = "com.docker.compose.depends_on"
	LabelVersion    = "com.docker.compose.version"
)

// Container states as observed.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StatePaused     = "paused"
	StateRestarting = "restarting"
	StateExited     = "exited"
	StateDead       = "dead"
)

// Observed is what exists on the machine for one project.
type Observed struct {
	Containers []Container
	Networks   []Network
	Volumes    []Volume
	// Images maps an image reference (as written in the service, e.g. "busybox" or
	// "proj-web") to the image ID present in the store. Missing references are absent.
	Images map[string]string
}

// Container is an observed container of the project (labels decoded).
type Container struct {
	ID         string
	Name       string
	Service    string
	Number     int
	OneOff     bool
	ConfigHash string
	ImageID    string
	State      string // one of the State* constants
	ExitCode   int
	Health     string // "", "starting", "healthy", "unhealthy"
	// FieldHashes are FieldHashes(service) as recorded at creation, or nil. With them a
	// recreate's reason names the changed keys ("config changed: environment, ports").
	FieldHashes map[string]string
}

// Network is an observed network.
type Network struct {
	Name string // actual name
	Hash string // config hash recorded at creation, "" if unknown
}

// Volume is an observed volume.
type Volume struct {
	Name string // actual name
}

// Options change how Plan reconciles, mirroring `berth up`'s flags.
type Options struct {
	// Services restricts the plan to these services (and their dependencies unless NoDeps).
	// Empty means every enabled service.
	Services           []string
	Scale              map[string]int // overrides Service.Scale
	ForceRecreate      bool
	NoRecreate         bool
	AlwaysRecreateDeps bool
	NoDeps             bool
	RemoveOrphans      bool
	NoStart            bool
	// Pull is "", "always", "missing", "never" or "build".
	Pull    string
	Build   bool // --build: build every service with a build section
	NoBuild bool
	// Wait adds WaitContainer actions for every started service (`up --wait`).
	Wait bool
}

// DownOptions mirror `berth down`'s flags.
type DownOptions struct {
	Volumes       bool   // -v: remove named volumes declared by the project and anonymous ones
	RemoveImages  string // "", "local", "all"
	RemoveOrphans bool
}
