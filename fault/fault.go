// Package fault classifies failures for the agent: whether trying the same
// thing again can succeed (Retryable) or only a change elsewhere can
// (Permanent), with a reason code for conditions and metrics and the name
// of the object at fault. The engine adapter types its errors with it; the
// agent reads them with Of. It imports nothing of fleetd.
package fault

import (
	"errors"
	"fmt"
)

// Class says whether the same attempt can succeed later.
type Class int

// Classes.
const (
	// Retryable failures pass by themselves: the engine was unreachable,
	// a call timed out or failed on the server (5xx), a pull failed on the
	// way, a container was not healthy in time. They are retried with
	// backoff.
	Retryable Class = iota + 1
	// Permanent failures stay until something changes: an unmanaged
	// object holds a name, an image does not exist, a port is taken by
	// something fleetd does not own, the spec is invalid. They wait for a
	// new revision, an engine event about the object, or a manual sync.
	Permanent
)

func (c Class) String() string {
	switch c {
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Reason is a CamelCase code, as Kubernetes conditions spell reasons.
type Reason string

// Reasons.
const (
	// Retryable.
	EngineUnreachable Reason = "EngineUnreachable"
	Timeout           Reason = "Timeout"
	EngineError       Reason = "EngineError" // the engine answered 5xx
	PullFailed        Reason = "PullFailed"
	Unhealthy         Reason = "Unhealthy"       // exited or unhealthy before it was up
	Failed            Reason = "Failed"          // unclassified: retried, to be safe
	VersionConflict   Reason = "VersionConflict" // a swarm object changed since it was read: observe again

	// Permanent.
	Conflict      Reason = "Conflict" // an unmanaged object holds the name
	NotManaged    Reason = "NotManaged"
	NotFound      Reason = "NotFound" // an external network or volume is missing
	ImageNotFound Reason = "ImageNotFound"
	PortAllocated Reason = "PortAllocated"
	InvalidSpec   Reason = "InvalidSpec"
	RolloutFailed Reason = "RolloutFailed" // rolled back or paused: not retried until a new commit or a sync
	PruneRefused  Reason = "PruneRefused"
	NotLeader     Reason = "NotLeader" // another agent holds the swarm's lease: this one stands by
)

// Error is a classified failure. errors.As finds it in a chain.
type Error struct {
	Class  Class
	Reason Reason
	// Object names what is at fault when it is known: the container,
	// network or volume whose name is held, the missing image, the taken
	// host port. An engine event about it may change the answer.
	Object string
	Err    error
}

// New classifies err. It returns nil for a nil err.
func New(c Class, r Reason, object string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Class: c, Reason: r, Object: object, Err: err}
}

func (e *Error) Error() string { return e.Err.Error() }

// Unwrap gives the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Of classifies err: the outermost *Error in its chain, or, for an error
// nobody classified, Retryable with reason Failed (retrying with backoff
// is the safe guess). Of(nil) is nil.
func Of(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Class: Retryable, Reason: Failed, Err: err}
}

// IsPermanent reports whether err is classified Permanent.
func IsPermanent(err error) bool {
	e := Of(err)
	return e != nil && e.Class == Permanent
}
