package engine

import (
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/fault"
)

// classified types the error a public method returns (see package fault):
// every engine operation ends with `defer classified(&err)`, so that the
// agent can tell a failure that passes (retry with backoff) from one that
// waits for a change (a conflict, a missing image, a taken port).
func classified(err *error) { *err = classify(*err) }

// Classify types an error of a Docker API call, as every method of this
// package does, for adapters of the same engine (engine/swarm).
func Classify(err error) error { return classify(err) }

// classify types err; an error it cannot place is returned as it is (the
// agent retries those, to be safe).
func classify(err error) error {
	if err == nil {
		return nil
	}
	var f *fault.Error
	var conflict *ConflictError
	switch {
	case errors.As(err, &f):
		return err
	case errors.As(err, &conflict):
		return fault.New(fault.Permanent, fault.Conflict, conflict.Name, err)
	case errors.Is(err, ErrNotManaged):
		return fault.New(fault.Permanent, fault.NotManaged, "", err)
	case errors.Is(err, ErrNotFound):
		return fault.New(fault.Permanent, fault.NotFound, "", err)
	case strings.Contains(err.Error(), "update out of sequence"):
		return fault.New(fault.Retryable, fault.VersionConflict, "", err)
	case portTaken(err.Error()) != "":
		return fault.New(fault.Permanent, fault.PortAllocated, portTaken(err.Error()), err)
	case errors.Is(err, ErrWaitTimeout), errors.Is(err, context.DeadlineExceeded):
		return fault.New(fault.Retryable, fault.Timeout, "", err)
	case unreachable(err):
		return fault.New(fault.Retryable, fault.EngineUnreachable, "", err)
	case cerrdefs.IsInvalidArgument(err), cerrdefs.IsNotImplemented(err): // e.g. a swarm service's mode change
		return fault.New(fault.Permanent, fault.InvalidSpec, "", err)
	case cerrdefs.IsUnavailable(err), cerrdefs.IsInternal(err), cerrdefs.IsUnknown(err), cerrdefs.IsDataLoss(err):
		return fault.New(fault.Retryable, fault.EngineError, "", err)
	}
	return err
}

// pullFault types a pull failure: an image the registry does not have is
// permanent (until a new revision or an image event), anything else on the
// way (registry down, network) passes.
func pullFault(ref string, err error) error {
	switch {
	case err == nil:
		return nil
	case unreachable(err):
		return classify(err)
	case cerrdefs.IsNotFound(err) || errors.Is(err, ErrNotFound) || imageMissing(err.Error()):
		return fault.New(fault.Permanent, fault.ImageNotFound, ref, err)
	}
	return fault.New(fault.Retryable, fault.PullFailed, ref, err)
}

// imageMissing recognizes the registry's "no such image" answers that a
// pull stream reports as text.
func imageMissing(msg string) bool {
	msg = strings.ToLower(msg)
	for _, s := range []string{"manifest unknown", "not found", "repository does not exist", "name unknown"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// unreachable reports whether err means the daemon could not be talked to.
func unreachable(err error) bool {
	var de *DaemonError
	return errors.As(err, &de) || client.IsErrConnectionFailed(err) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrDeadlineExceeded) ||
		strings.Contains(err.Error(), "Cannot connect to the Docker daemon")
}

// portMessage is how the daemon says that a host port is taken:
// "Bind for 0.0.0.0:8080 failed: port is already allocated", or
// "listen tcp4 0.0.0.0:8080: bind: address already in use" (Docker 20.10
// with a process, not a container, holding it).
var portMessage = regexp.MustCompile(`(?:Bind for (\S+) failed: port is already allocated|listen \S+ (\S+): bind: address already in use)`)

// portTaken returns the host address of a taken port named in msg, or "".
func portTaken(msg string) string {
	m := portMessage.FindStringSubmatch(msg)
	if m == nil {
		return ""
	}
	return m[1] + m[2]
}
