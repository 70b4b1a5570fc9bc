package planner

// Action is one typed step of a plan. Resource names what the action works on, e.g.
// "network:proj_default", "service:web:1", "image:busybox".
type Action interface {
	Resource() string
	Kind() string
}

// EnsureNetwork creates the network if it is missing.
type EnsureNetwork struct {
	Key  string // key in Project.Networks
	Name string // actual name
	// External networks are only checked: missing is an error, never created.
	External bool
	Reason   string
}

// EnsureVolume creates the named volume if it is missing.
type EnsureVolume struct {
	Key  string
	Name string
	// External volumes are only checked: missing is an error, never created.
	External bool
	Reason   string
}

// EnsureImage makes the image present: pulled, built, or checked.
type EnsureImage struct {
	Service string
	Ref     string // image reference
	Build   bool   // build from the service's build section
	Pull    bool   // pull even if present (pull_policy always / --pull always)
	Reason  string
}

// CreateContainer creates replica Number of Service.
type CreateContainer struct {
	Service string
	Number  int
	Name    string
	Hash    string
	Reason  string
}

// StartContainer starts a created or stopped container.
type StartContainer struct {
	Service string
	Number  int
	Name    string
	Reason  string
}

// WaitContainer waits for a service's containers to reach Condition (spec.Condition*).
type WaitContainer struct {
	Service   string
	Condition string
	Required  bool
	Reason    string // who waits, e.g. "web depends_on db", or "--wait"
}

// StopContainer stops a running container.
type StopContainer struct {
	ID      string
	Service string
	Number  int
	Name    string
	Reason  string
}

// RemoveContainer removes a (stopped) container.
type RemoveContainer struct {
	ID      string
	Service string
	Number  int
	Name    string
	Reason  string
	// Volumes also removes the container's anonymous volumes (`down -v`).
	Volumes bool
}

// RecreateContainer replaces an existing container with one made from the current config:
// the old one is stopped and renamed aside, the new one created, then the old one removed.
type RecreateContainer struct {
	ID      string // the existing container
	Service string
	Number  int
	Name    string
	Hash    string
	Reason  string
	// OnlyIfImageChanged: the container is otherwise up to date and is recreated only if the
	// image ID after the service's EnsureImage (a build or pull) differs from the container's;
	// if it does not, the executor skips the recreate (and the StartContainer that follows
	// starts the existing container if it is not running).
	OnlyIfImageChanged bool
}

// RemoveNetwork removes a project network.
type RemoveNetwork struct {
	Key    string
	Name   string
	Reason string
}

// RemoveVolume removes a project volume.
type RemoveVolume struct {
	Key    string
	Name   string
	Reason string
}

// RemoveImage removes an image used by the project.
type RemoveImage struct {
	Ref    string
	Reason string
}

func (a EnsureNetwork) Resource() string     { return "network:" + a.Name }
func (a EnsureVolume) Resource() string      { return "volume:" + a.Name }
func (a EnsureImage) Resource() string       { return "image:" + a.Ref }
func (a CreateContainer) Resource() string   { return serviceResource(a.Service, a.Number) }
func (a StartContainer) Resource() string    { return serviceResource(a.Service, a.Number) }
func (a WaitContainer) Resource() string     { return "service:" + a.Service }
func (a StopContainer) Resource() string     { return serviceResource(a.Service, a.Number) }
func (a RemoveContainer) Resource() string   { return serviceResource(a.Service, a.Number) }
func (a RecreateContainer) Resource() string { return serviceResource(a.Service, a.Number) }
func (a RemoveNetwork) Resource() string     { return "network:" + a.Name }
func (a RemoveVolume) Resource() string      { return "volume:" + a.Name }
func (a RemoveImage) Resource() string       { return "image:" + a.Ref }

func (EnsureNetwork) Kind() string     { return "EnsureNetwork" }
func (EnsureVolume) Kind() string      { return "EnsureVolume" }
func (EnsureImage) Kind() string       { return "EnsureImage" }
func (CreateContainer) Kind() string   { return "CreateContainer" }
func (StartContainer) Kind() string    { return "StartContainer" }
func (WaitContainer) Kind() string     { return "WaitContainer" }
func (StopContainer) Kind() string     { return "StopContainer" }
func (RemoveContainer) Kind() string   { return "RemoveContainer" }
func (RecreateContainer) Kind() string { return "RecreateContainer" }
func (RemoveNetwork) Kind() string     { return "RemoveNetwork" }
func (RemoveVolume) Kind() string      { return "RemoveVolume" }
func (RemoveImage) Kind() string       { return "RemoveImage" }

func serviceResource(service string, n int) string {
	return "service:" + service + ":" + itoa(n)
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// Node is one action in the plan's DAG. Deps are IDs of nodes that must finish first.
type Node struct {
	ID     int
	Action Action
	Deps   []int
}

// Plan is a DAG of actions in a deterministic order: every node's Deps have smaller IDs.
type Plan struct {
	Project string
	Nodes   []Node
	// Notes are things the user should know that the plan does not act on, e.g. orphan
	// containers left in place without --remove-orphans.
	Notes []string
}
