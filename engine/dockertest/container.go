package dockertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
)

const pollInterval = 200 * time.Millisecond

// Run creates and starts a container named name from ref, with env added
// to its environment and the io.fleetd.test-run label. It has no network
// (network mode "none"): the healthcheck probes loopback, so nothing depends
// on the default bridge or on free host ports. It returns the container ID;
// Cleanup removes the container.
func Run(t testing.TB, cli *client.Client, name, ref string, env ...string) string {
	t.Helper()
	ctx := t.Context()
	cfg := &container.Config{Image: ref, Env: env, Labels: map[string]string{LabelTestRun: RunID()}}
	hostCfg := &container.HostConfig{NetworkMode: network.NetworkNone}
	created, err := cli.ContainerCreate(ctx, cfg, hostCfg, nil, nil, name)
	if err != nil {
		t.Fatalf("dockertest: create container %s: %v", name, err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("dockertest: start container %s: %v", name, err)
	}
	return created.ID
}

// WaitHealth polls the container until Docker reports its health status as
// want ("starting", "healthy" or "unhealthy") and fails the test with the
// container's state and last probe output if that does not happen within
// timeout.
func WaitHealth(t testing.TB, cli *client.Client, id, want string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var last string
	for {
		got, detail, err := health(ctx, cli, id)
		if err == nil && got == want {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("health %q, %s", got, detail)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("dockertest: container %.12s not %s after %s: %s", id, want, timeout, last)
		case <-time.After(pollInterval):
		}
	}
}

func health(ctx context.Context, cli *client.Client, id string) (status, detail string, err error) {
	ctr, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		return "", "", fmt.Errorf("inspect %s: %w", id, err)
	}
	st := ctr.State
	if st == nil {
		return "", "", errors.New("inspect: no state")
	}
	detail = fmt.Sprintf("state %s (exit %d)", st.Status, st.ExitCode)
	if st.Health == nil {
		return "", detail + ", no healthcheck", nil
	}
	if n := len(st.Health.Log); n > 0 {
		detail += fmt.Sprintf(", last probe exit %d: %q", st.Health.Log[n-1].ExitCode, strings.TrimSpace(st.Health.Log[n-1].Output))
	}
	return st.Health.Status, detail, nil
}

// WaitState polls the container until Docker reports its state as want
// ("running", "paused", "exited", …). The engine records some transitions
// from containerd's events after the API call has returned (an unpause on
// older engines), so a test reads the state this way rather than once.
func WaitState(t testing.TB, cli *client.Client, id, want string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	var last string
	for {
		ctr, err := cli.ContainerInspect(ctx, id)
		switch {
		case err != nil:
			last = err.Error()
		case ctr.State == nil:
			last = "no state"
		case ctr.State.Status == want:
			return
		default:
			last = "state " + ctr.State.Status
		}
		select {
		case <-ctx.Done():
			t.Fatalf("dockertest: container %.12s not %s after %s: %s", id, want, timeout, last)
		case <-time.After(pollInterval):
		}
	}
}

// WaitExit waits until the container is not running and returns its exit
// code, failing the test if that takes longer than timeout.
func WaitExit(t testing.TB, cli *client.Client, id string, timeout time.Duration) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	resC, errC := cli.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case res := <-resC:
		if res.Error != nil {
			t.Fatalf("dockertest: wait for %.12s: %s", id, res.Error.Message)
		}
		return int(res.StatusCode)
	case err := <-errC:
		t.Fatalf("dockertest: container %.12s still running after %s: %v", id, timeout, err)
	}
	return 0
}
