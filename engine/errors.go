package engine

import (
	"errors"
	"fmt"
)

var (
	// ErrNotManaged is returned, wrapped, when an operation would change an
	// object that lacks io.fleetd.managed=true.
	ErrNotManaged = errors.New("not managed by fleetd")
	// ErrConflict is returned, wrapped in a *ConflictError, when an
	// unmanaged object holds a name fleetd needs.
	ErrConflict = errors.New("name held by an unmanaged object")
	// ErrNotFound is returned, wrapped, when an object fleetd expects to
	// exist (an external network or volume, an image) does not.
	ErrNotFound = errors.New("not found")
	// ErrUnreachable is returned, wrapped in a *DaemonError, when the Docker
	// daemon cannot be reached; callers retry with backoff.
	ErrUnreachable = errors.New("docker daemon unreachable")
)

// ConflictError says that an unmanaged object holds a name fleetd wants.
// errors.Is(err, ErrConflict) holds for it.
type ConflictError struct {
	Kind string // container | network | volume
	Name string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s %s exists and is not managed by fleetd", e.Kind, e.Name)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// DaemonError says that the daemon at Host could not be used, and why. Its
// message is one line. errors.Is(err, ErrUnreachable) holds for it.
type DaemonError struct {
	Host   string
	Reason string // "permission denied on the socket", "not reachable", ...
	Err    error
}

func (e *DaemonError) Error() string {
	return fmt.Sprintf("docker daemon at %s: %s: %s", e.Host, e.Reason, oneLine(e.Err.Error()))
}

func (e *DaemonError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnreachable) true.
func (e *DaemonError) Is(target error) bool { return target == ErrUnreachable }
