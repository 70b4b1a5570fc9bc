package spec

import (
	"errors"
	"strconv"
	"strings"
)

// ErrInvalid classes every user error found while loading a project.
var ErrInvalid = errors.New("invalid compose project")

// ErrNotFound is returned when no compose file can be found.
var ErrNotFound = errors.New("no compose file found")

// Error is a user error in a compose file: where it is, what is wrong, and what to write instead.
type Error struct {
	File   string // the compose file, when known
	Line   int    // 1-based line in File, 0 when unknown
	Column int    // 1-based column in File, 0 when unknown
	Path   string // key path, e.g. "services.web.ports[0]"
	Msg    string
	Hint   string
	Err    error // the underlying class or cause (ErrInvalid when nil)
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":")
			b.WriteString(strconv.Itoa(e.Line))
			if e.Column > 0 {
				b.WriteString(":")
				b.WriteString(strconv.Itoa(e.Column))
			}
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString("\n  hint: ")
		b.WriteString(strings.ReplaceAll(e.Hint, "\n", "\n        "))
	}
	return b.String()
}

func (e *Error) Unwrap() error {
	if e.Err != nil {
		return e.Err
	}
	return ErrInvalid
}

// invalid returns an Error whose cause keeps both the ErrInvalid class and the original error.
func invalid(cause error, file, path, msg, hint string) *Error {
	var err error = ErrInvalid
	if cause != nil {
		err = errors.Join(ErrInvalid, cause)
	}
	return &Error{File: file, Path: path, Msg: msg, Hint: hint, Err: err}
}
