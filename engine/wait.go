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
// unhealthy first, or when timeout passes. It follows the container on
// the engine's shared events subscription (see hub) rather than polling:
// the health verdict comes from the events themselves; it inspects only
// to learn where a container the hub has not seen since its create
// stands, and to name the reason of a failure.
func (d *Docker) WaitHealthy(ctx context.Context, id string, timeout time.Duration) error {
	return d.waitFor(ctx, id, timeout, "healthy", healthyVerdict, healthyState)
}

// WaitUp is the health gate of a rollout: it waits until the container is
// up — healthy when it has a healthcheck, else still running after
// readiness — and then watches it for monitor; it fails, naming the reason,
// when the container exits, restarts or turns unhealthy before that ends,
// or when timeout passes before it is up. With a healthcheck, a monitor of
// 0 watches nothing.
func (d *Docker) WaitUp(ctx context.Context, id string, readiness, monitor, timeout time.Duration) (err error) {
	defer classified(&err)
	f, err := d.follow(ctx, id, timeout, "healthy")
	if err != nil {
		return err
	}
	defer f.close()
	if err := f.until(healthyVerdict, healthyState); err != nil {
		return err
	}
	watch := monitor
	if f.health != healthYes {
		watch = max(watch, readiness)
	}
	return f.watch(ctx, watch)
}

// verdict is what a wait concludes from one event.
type verdict int

const (
	keepWaiting verdict = iota
	waitOver            // the wait is done
	inspectNow          // the event may end the wait: inspect and judge
)

// healthyVerdict judges an event for WaitHealthy and WaitUp: a healthy
// verdict ends the wait, a start ends it for a container without a
// healthcheck, and an exit, a restart, an unhealthy verdict or a removal
// are judged (and named) from an inspect.
func healthyVerdict(ev ctrEvent, health healthKnown) verdict {
	switch ev.Action {
	case "health_status":
		switch ev.Detail {
		case "healthy":
			return waitOver
		case "unhealthy":
			return inspectNow
		}
	case "start":
		if health == healthNo {
			return waitOver
		}
	case "die", "oom", "restart", "destroy":
		return inspectNow
	}
	return keepWaiting
}

// recoveredVerdict judges an event for WaitRecovered: an unhealthy
// verdict is tolerated; an unpause is judged from an inspect, since the
// health verdict from before the pause may already be healthy.
func recoveredVerdict(ev ctrEvent, health healthKnown) verdict {
	switch ev.Action {
	case "health_status":
		if ev.Detail == "healthy" {
			return waitOver
		}
		return keepWaiting
	case "unpause":
		return inspectNow
	}
	return healthyVerdict(ev, health)
}

// exitVerdict judges an event for WaitExit: an exit is judged from an
// inspect (a restart policy may bring the container back; an OOM kill is
// named).
func exitVerdict(ev ctrEvent, _ healthKnown) verdict {
	switch ev.Action {
	case "die", "destroy":
		return inspectNow
	}
	return keepWaiting
}

// monitorVerdict judges an event while a container that is up is
// monitored: whatever may mean it went down is judged from an inspect.
func monitorVerdict(ev ctrEvent, _ healthKnown) verdict {
	switch ev.Action {
	case "die", "oom", "restart", "destroy", "stop", "kill":
		return inspectNow
	case "health_status":
		if ev.Detail == "unhealthy" {
			return inspectNow
		}
	}
	return keepWaiting
}

// healthOf reads from an inspect whether the container has a healthcheck
// (its own or its image's: the engine merges that in at create).
func healthOf(ins container.InspectResponse) healthKnown {
	if ins.ContainerJSONBase != nil && ins.State != nil && ins.State.Health != nil {
		return healthYes
	}
	if ins.Config == nil {
		return healthUnknown
	}
	if hc := ins.Config.Healthcheck; hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		return healthYes
	}
	return healthNo
}

// follower is one wait on one container through the hub.
type follower struct {
	d       *Docker
	ctx     context.Context // bounded by the wait's timeout
	cancel  context.CancelFunc
	sub     *hubSub
	ref     string
	what    string
	timeout time.Duration
	k       known
	health  healthKnown
}

// follow registers a wait for the container ref on the hub; what and
// timeout name it in errors.
func (d *Docker) follow(ctx context.Context, ref string, timeout time.Duration, what string) (*follower, error) {
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	sub, k, err := d.hub.watch(wctx, ref)
	if err != nil {
		timedOut := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		if timedOut {
			return nil, fmt.Errorf("wait %s for %s: %w after %s", what, ref, ErrWaitTimeout, timeout)
		}
		return nil, fmt.Errorf("wait %s for %s: events: %w", what, ref, err)
	}
	return &follower{d: d, ctx: wctx, cancel: cancel, sub: sub, ref: ref, what: what, timeout: timeout, k: k, health: k.health}, nil
}

func (f *follower) close() {
	f.d.hub.unwatch(f.sub)
	f.cancel()
}

func (f *follower) timedOut() error {
	return fmt.Errorf("wait %s for %s: %w after %s", f.what, f.ref, ErrWaitTimeout, f.timeout)
}

// inspect inspects the container, binds the registration to its ID and
// learns whether it has a healthcheck.
func (f *follower) inspect() (container.InspectResponse, error) {
	ins, err := f.d.cli.ContainerInspect(f.ctx, f.ref)
	if err != nil {
		if f.ctx.Err() != nil {
			return ins, f.timedOut()
		}
		return ins, fmt.Errorf("wait %s for %s: inspect: %w", f.what, f.ref, err)
	}
	if h := healthOf(ins); h != healthUnknown {
		f.health = h
	}
	if ins.ContainerJSONBase != nil && ins.ID != "" {
		f.d.hub.bind(f.sub, ins.ID, f.health)
	}
	return ins, nil
}

// until waits until events (judged by decide) or an inspect (judged by
// judge) say the wait is over. It starts from what the hub recorded of
// the container when it knows it whole (from its create on, with its
// healthcheck known), else from an inspect.
func (f *follower) until(decide func(ctrEvent, healthKnown) verdict, judge func(container.InspectResponse) (waitState, string)) error {
	check := func() (bool, error) {
		ins, err := f.inspect()
		if err != nil {
			return false, err
		}
		switch st, reason := judge(ins); st {
		case waitDone:
			return true, nil
		case waitFailed:
			name := strings.TrimPrefix(ins.Name, "/")
			return true, fault.New(fault.Retryable, fault.Unhealthy, name, fmt.Errorf("wait %s for %s: %s", f.what, name, reason))
		}
		return false, nil
	}
	start := inspectNow
	if f.k.whole && f.health != healthUnknown {
		start = lastVerdict(f.k.events, decide, f.health)
	}
	switch start {
	case waitOver:
		return nil
	case inspectNow:
		if done, err := check(); done || err != nil {
			return err
		}
	}
	for {
		select {
		case ev := <-f.sub.ch:
			switch decide(ev, f.health) {
			case waitOver:
				return nil
			case inspectNow:
				if done, err := check(); done || err != nil {
					return err
				}
			}
		case <-f.sub.resync:
			if done, err := check(); done || err != nil {
				return err
			}
		case <-f.ctx.Done():
			return f.timedOut()
		}
	}
}

// lastVerdict is the verdict of the last recorded event that decides
// anything (keepWaiting when none does).
func lastVerdict(evs []ctrEvent, decide func(ctrEvent, healthKnown) verdict, health healthKnown) verdict {
	last := keepWaiting
	for _, ev := range evs {
		if v := decide(ev, health); v != keepWaiting {
			last = v
		}
	}
	return last
}

// watch fails when the container stops running or turns unhealthy within
// dur; it follows events and inspects only when one may mean that.
func (f *follower) watch(ctx context.Context, dur time.Duration) error {
	if dur <= 0 {
		return nil
	}
	timer := time.NewTimer(dur)
	defer timer.Stop()
	check := func() error {
		ins, err := f.d.cli.ContainerInspect(ctx, f.ref)
		if err != nil {
			return fmt.Errorf("monitor %s: inspect: %w", f.ref, err)
		}
		if reason := failedWhileUp(ins); reason != "" {
			name := strings.TrimPrefix(ins.Name, "/")
			return fault.New(fault.Retryable, fault.Unhealthy, name, fmt.Errorf("monitor %s: %s within %s of becoming ready", name, reason, dur))
		}
		return nil
	}
	for {
		select {
		case ev := <-f.sub.ch:
			if monitorVerdict(ev, f.health) == inspectNow {
				if err := check(); err != nil {
					return err
				}
			}
		case <-f.sub.resync:
			if err := check(); err != nil {
				return err
			}
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
	return d.waitFor(ctx, id, timeout, "recovery", recoveredVerdict, recoveredState)
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
	return d.waitFor(ctx, id, timeout, "exit", exitVerdict, exitState)
}

func (d *Docker) waitFor(ctx context.Context, id string, timeout time.Duration, what string, decide func(ctrEvent, healthKnown) verdict, judge func(container.InspectResponse) (waitState, string)) (err error) {
	defer classified(&err)
	f, err := d.follow(ctx, id, timeout, what)
	if err != nil {
		return err
	}
	defer f.close()
	return f.until(decide, judge)
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
