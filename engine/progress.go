package engine

import (
	"sync"
	"time"
)

// Event statuses.
const (
	StatusWorking = "working"
	StatusDone    = "done"
	StatusError   = "error"
	StatusWarning = "warning"
	StatusInfo    = "info"
)

// Event is one progress report about a resource.
type Event struct {
	Time     time.Time
	Resource string // e.g. "service:web:1", "network:proj_default"
	Kind     string // the action kind, e.g. "CreateContainer"
	Name     string // what to show: a container, network or volume name, an image reference
	Status   string // Status*
	Text     string // human text: "Creating", "Started", the error message...
	Err      error  `json:"-"`
}

// Progress receives the engine's progress; cmd renders it (tty, plain, json, quiet).
// Implementations must be safe for concurrent use.
type Progress interface {
	// Start is called once before the operation (e.g. "up", "down").
	Start(operation string)
	Event(e Event)
	// Done is called once after the operation with its result.
	Done(err error)
}

// NopProgress discards progress.
type NopProgress struct{}

func (NopProgress) Start(string) {}
func (NopProgress) Event(Event)  {}
func (NopProgress) Done(error)   {}

// RecordingProgress keeps every event; useful to tests and to the json renderer.
type RecordingProgress struct {
	mu     sync.Mutex
	Events []Event
}

func (r *RecordingProgress) Start(string) {}
func (r *RecordingProgress) Done(error)   {}
func (r *RecordingProgress) Event(e Event) {
	r.mu.Lock()
	r.Events = append(r.Events, e)
	r.mu.Unlock()
}

// Snapshot returns a copy of the recorded events.
func (r *RecordingProgress) Snapshot() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.Events...)
}
