package spec

import (
	"errors"
	"strings"
)

// ErrInvalid classes every user error found while loading a project.
var ErrInvalid = errors.New("invalid compose project")

// ErrNotFound is returned when no compose file can be found.
var ErrNotFound = errors.New("no compose file found")

// Error is a user error in a compose file: where it is, what is wrong, and what to write instead.
type Error struct {
	File string // the compose file, when known
	Path string // key path, e.g. "services.web.ports[0]"
	Msg  string
	Hint string
	Err  error // the underlying class or cause (ErrInvalid when nil)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("\n  hint: ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func (e *Error) Unwrap() error {
	if e.Err != nil {
		return e.Err
	}
	return ErrInvalid
}
