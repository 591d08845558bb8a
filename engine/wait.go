package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// ErrWaitTimeout is wrapped by a wait that ran out of time.
var ErrWaitTimeout = errors.New("timed out")

// waitState is what a wait concludes from one inspect: done, failed with
// a reason, or keep waiting.
type waitState int

const (
	waitPending waitState = iota
	waitDone
	waitFailed
)

// WaitHealthy returns when the container is healthy, or running when its
// image and spec define no healthcheck. It fails, naming the reason (exit
// code, last health check output), when the container exits or turns
// unhealthy first, or when timeout passes. It follows the container's
// events rather than polling: it subscribes first, then inspects once, then
// re-inspects only when an event for the container arrives.
func (d *Docker) WaitHealthy(ctx context.Context, id string, timeout time.Duration) error {
	return d.waitFor(ctx, id, timeout, "healthy", healthyState)
}

// WaitExit returns when the container has exited with code 0; it fails when
// it exits with another code or timeout passes.
func (d *Docker) WaitExit(ctx context.Context, id string, timeout time.Duration) error {
	return d.waitFor(ctx, id, timeout, "exit", exitState)
}

func (d *Docker) waitFor(ctx context.Context, id string, timeout time.Duration, what string, judge func(container.InspectResponse) (waitState, string)) error {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("container", id),
	)})
	for {
		ins, err := d.cli.ContainerInspect(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait %s for %s: %w after %s", what, id, ErrWaitTimeout, timeout)
			}
			return fmt.Errorf("wait %s for %s: inspect: %w", what, id, err)
		}
		switch st, reason := judge(ins); st {
		case waitDone:
			return nil
		case waitFailed:
			return fmt.Errorf("wait %s for %s: %s", what, strings.TrimPrefix(ins.Name, "/"), reason)
		}
		select {
		case <-msgs:
		case err := <-errs:
			if ctx.Err() != nil {
				return fmt.Errorf("wait %s for %s: %w after %s", what, id, ErrWaitTimeout, timeout)
			}
			return fmt.Errorf("wait %s for %s: events: %w", what, id, err)
		case <-ctx.Done():
			return fmt.Errorf("wait %s for %s: %w after %s", what, id, ErrWaitTimeout, timeout)
		}
	}
}

// healthyState judges a container for WaitHealthy.
func healthyState(ins container.InspectResponse) (waitState, string) {
	st := ins.State
	if st == nil {
		return waitPending, ""
	}
	if !st.Running && (st.Status == "exited" || st.Status == "dead") {
		return waitFailed, fmt.Sprintf("exited with code %d%s", st.ExitCode, oomNote(st.OOMKilled))
	}
	if st.Restarting {
		return waitFailed, fmt.Sprintf("restarting after exit code %d", st.ExitCode)
	}
	if st.Health == nil {
		if st.Running {
			return waitDone, ""
		}
		return waitPending, ""
	}
	switch st.Health.Status {
	case "healthy":
		return waitDone, ""
	case "unhealthy":
		return waitFailed, "unhealthy: " + lastHealthOutput(st.Health)
	}
	return waitPending, ""
}

// exitState judges a container for WaitExit.
func exitState(ins container.InspectResponse) (waitState, string) {
	st := ins.State
	if st == nil || st.Running || st.Restarting || st.Status == "created" {
		return waitPending, ""
	}
	if st.ExitCode == 0 {
		return waitDone, ""
	}
	return waitFailed, fmt.Sprintf("exited with code %d%s", st.ExitCode, oomNote(st.OOMKilled))
}

func oomNote(oom bool) string {
	if oom {
		return " (out of memory)"
	}
	return ""
}

func lastHealthOutput(h *container.Health) string {
	if h == nil || len(h.Log) == 0 {
		return "no health check output"
	}
	out := strings.TrimSpace(h.Log[len(h.Log)-1].Output)
	if out == "" {
		return fmt.Sprintf("health check exit code %d", h.Log[len(h.Log)-1].ExitCode)
	}
	return out
}
