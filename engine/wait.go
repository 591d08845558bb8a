package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/fleetd/fleetd/fault"
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

// WaitUp is the health gate of a rollout: it waits until the container is
// up — healthy when it has a healthcheck, else still running after
// readiness — and then watches it for monitor; it fails, naming the reason,
// when the container exits, restarts or turns unhealthy before that ends,
// or when timeout passes before it is up.
func (d *Docker) WaitUp(ctx context.Context, id string, readiness, monitor, timeout time.Duration) (err error) {
	defer classified(&err)
	if err := d.WaitHealthy(ctx, id, timeout); err != nil {
		return err
	}
	ins, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("wait up for %s: inspect: %w", id, err)
	}
	watch := monitor
	if ins.State == nil || ins.State.Health == nil {
		watch = max(watch, readiness)
	}
	return d.watch(ctx, id, watch)
}

// watch fails when the container stops running or turns unhealthy within
// d; it follows events and inspects only when one arrives.
func (d *Docker) watch(ctx context.Context, id string, dur time.Duration) error {
	if dur <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: waitFilters(id)})
	timer := time.NewTimer(dur)
	defer timer.Stop()
	for {
		ins, err := d.cli.ContainerInspect(ctx, id)
		if err != nil {
			return fmt.Errorf("monitor %s: inspect: %w", id, err)
		}
		if reason := failedWhileUp(ins); reason != "" {
			name := strings.TrimPrefix(ins.Name, "/")
			return fault.New(fault.Retryable, fault.Unhealthy, name, fmt.Errorf("monitor %s: %s within %s of becoming ready", name, reason, dur))
		}
		select {
		case <-msgs:
		case err := <-errs:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("monitor %s: events: %w", id, err)
		case <-timer.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// failedWhileUp names why a container that was up no longer is, or "".
func failedWhileUp(ins container.InspectResponse) string {
	st := ins.State
	switch {
	case st == nil:
		return ""
	case st.Restarting:
		return fmt.Sprintf("restarting after exit code %d", st.ExitCode)
	case !st.Running:
		return fmt.Sprintf("exited with code %d%s", st.ExitCode, oomNote(st.OOMKilled))
	case st.Health != nil && st.Health.Status == "unhealthy":
		return "unhealthy: " + lastHealthOutput(st.Health)
	}
	return ""
}

// WaitRecovered returns when the container is healthy again (or running,
// without a healthcheck). Unlike WaitHealthy it tolerates "unhealthy" on the
// way: after an unpause Docker keeps the verdict of the checks that failed
// during the pause until one passes. It fails when the container exits or
// timeout passes.
func (d *Docker) WaitRecovered(ctx context.Context, id string, timeout time.Duration) error {
	return d.waitFor(ctx, id, timeout, "recovery", recoveredState)
}

// recoveredState judges a container for WaitRecovered.
func recoveredState(ins container.InspectResponse) (waitState, string) {
	st, reason := healthyState(ins)
	if st == waitFailed && ins.State != nil && ins.State.Running && !ins.State.Restarting {
		return waitPending, "" // unhealthy, but running: a check may pass yet
	}
	return st, reason
}

// WaitExit returns when the container has exited with code 0; it fails when
// it exits with another code or timeout passes.
func (d *Docker) WaitExit(ctx context.Context, id string, timeout time.Duration) error {
	return d.waitFor(ctx, id, timeout, "exit", exitState)
}

func (d *Docker) waitFor(ctx context.Context, id string, timeout time.Duration, what string, judge func(container.InspectResponse) (waitState, string)) (err error) {
	defer classified(&err)
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: waitFilters(id)})
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
			name := strings.TrimPrefix(ins.Name, "/")
			return fault.New(fault.Retryable, fault.Unhealthy, name, fmt.Errorf("wait %s for %s: %s", what, name, reason))
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

// waitFilters subscribes to the container's lifecycle and health events;
// exec events (one set per health probe) would only cause idle inspects.
func waitFilters(id string) filters.Args {
	args := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("container", id))
	for _, e := range []string{"start", "die", "stop", "kill", "oom", "restart", "pause", "unpause", "destroy", "health_status"} {
		args.Add("event", e)
	}
	return args
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

// Diagnosis is what a container that did not come up says about itself:
// its state, the output of its last health check, the tail of its logs.
type Diagnosis struct {
	State     string // running, exited (code N), restarting, …
	HealthLog string
	Logs      string
}

// Diagnose reads a container's state, last health check output and the
// last lines of its logs (stdout and stderr, interleaved as Docker keeps
// them).
func (d *Docker) Diagnose(ctx context.Context, id string, lines int) (_ Diagnosis, err error) {
	defer classified(&err)
	var out Diagnosis
	ins, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return out, fmt.Errorf("inspect %s: %w", id, err)
	}
	if s := ins.State; s != nil {
		out.State = s.Status
		if s.Status == "exited" {
			out.State = fmt.Sprintf("exited (code %d)", s.ExitCode)
		}
		if h := s.Health; h != nil && len(h.Log) > 0 {
			out.HealthLog = strings.TrimSpace(h.Log[len(h.Log)-1].Output)
		}
	}
	rc, err := d.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	if err != nil {
		return out, fmt.Errorf("logs of %s: %w", id, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if ins.Config != nil && ins.Config.Tty {
		_, err = io.Copy(&buf, io.LimitReader(rc, 64<<10))
	} else {
		_, err = stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 64<<10))
	}
	out.Logs = strings.TrimRight(buf.String(), "\n")
	if err != nil {
		return out, fmt.Errorf("logs of %s: %w", id, err)
	}
	return out, nil
}
