package enginetest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetd/fleetd/fault"
)

// ErrTimeout is returned, wrapped in a Retryable Timeout, when a wait runs
// out of time. A wait that fails on the container's state (exited,
// unhealthy, a non-zero exit code) is a Retryable Unhealthy naming the
// container, as engine.Docker's waits are.
var ErrTimeout = errors.New("timed out")

// pollInterval is how often a wait re-reads state that another goroutine
// (a test's out-of-band helper) may change.
const pollInterval = 5 * time.Millisecond

// WaitHealthy waits until the container is up: running and healthy, or
// running with no health status. It fails at once when the container is
// unhealthy or not running, and after timeout otherwise.
func (f *Fake) WaitHealthy(ctx context.Context, id string, timeout time.Duration) error {
	return f.wait(ctx, "WaitHealthy", "wait healthy", id, timeout, healthyNow)
}

// healthyNow is the verdict of WaitHealthy and WaitUp: up when running and
// healthy (or without health status); failed at once when not running or
// unhealthy.
func healthyNow(x *ctr) (bool, error) {
	switch {
	case x.c.State != "running" && x.c.State != "restarting":
		return false, fmt.Errorf("container is %s (exit code %d)", x.c.State, x.in.ExitCode)
	case x.c.Health == "unhealthy":
		return false, fmt.Errorf("container is unhealthy: %s", x.in.HealthLog)
	}
	return x.c.State == "running" && (x.c.Health == "" || x.c.Health == "healthy"), nil
}

// WaitExit waits until the container has exited with code 0; a non-zero
// exit code is an error.
func (f *Fake) WaitExit(ctx context.Context, id string, timeout time.Duration) error {
	return f.wait(ctx, "WaitExit", "wait exit", id, timeout, func(x *ctr) (bool, error) {
		switch x.c.State {
		case "exited", "dead":
			if x.in.ExitCode != 0 {
				return false, fmt.Errorf("container exited with code %d", x.in.ExitCode)
			}
			return true, nil
		}
		return false, nil
	})
}

// wait logs op once, then polls done on the managed container until it
// reports true or an error, the timeout passes or ctx ends.
func (f *Fake) wait(ctx context.Context, op, verb, id string, timeout time.Duration, done func(*ctr) (bool, error)) error {
	if err := f.withManaged(ctx, op, verb, id, func(*ctr) error { return nil }); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := f.check(id, done)
		switch {
		case err != nil:
			return fmt.Errorf("%s container %s: %w", verb, id, err)
		case ok:
			return nil
		}
		select {
		case <-ctx.Done():
			return fault.New(fault.Retryable, fault.Timeout, "", fmt.Errorf("%s container %s: %w after %s", verb, id, ErrTimeout, timeout))
		case <-time.After(pollInterval):
		}
	}
}

func (f *Fake) check(id string, done func(*ctr) (bool, error)) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x := f.lookup(id)
	if x == nil {
		return false, fmt.Errorf("container %s: %w", id, ErrNotFound)
	}
	ok, err := done(x)
	return ok, fault.New(fault.Retryable, fault.Unhealthy, x.c.Name, err)
}

// WaitUp is the rollout gate: the fake has no clock to watch a readiness
// delay or monitor period pass, so a container is up once WaitHealthy
// would return; a container the OnStart hook made unhealthy or exited
// fails the gate at once.
func (f *Fake) WaitUp(ctx context.Context, id string, readiness, monitor, timeout time.Duration) error {
	return f.wait(ctx, "WaitUp", "wait up", id, timeout, healthyNow)
}

// WaitRecovered waits until the container is running and healthy (or has
// no health status), tolerating "unhealthy" until the timeout; an exited
// container fails at once.
func (f *Fake) WaitRecovered(ctx context.Context, id string, timeout time.Duration) error {
	return f.wait(ctx, "WaitRecovered", "wait recovered", id, timeout, func(x *ctr) (bool, error) {
		if x.c.State != "running" && x.c.State != "restarting" {
			return false, fmt.Errorf("container is %s (exit code %d)", x.c.State, x.in.ExitCode)
		}
		return x.c.State == "running" && (x.c.Health == "" || x.c.Health == "healthy"), nil
	})
}
