package dockertest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// pingTimeout bounds how long a missing daemon can delay a test run.
const pingTimeout = 5 * time.Second

// Client returns a Docker client configured from the environment, after a
// Ping with a short timeout. When Docker does not answer, the test fails under
// CI (CI=true: a skip there would hide a broken pipeline) and is skipped
// loudly otherwise. The client is closed when the test ends.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := connect(t.Context(), pingTimeout)
	if err == nil {
		t.Cleanup(func() { _ = cli.Close() })
		return cli
	}
	Unavailable(t, "Docker engine", err, "set DOCKER_HOST or start dockerd")
	return nil
}

// Unavailable ends a test that needs what this machine lacks (what: the
// Docker engine, chromium, …; hint: how to get it): it fails under CI
// (CI=true: a skip there would hide a broken pipeline) and is skipped
// loudly otherwise.
func Unavailable(t testing.TB, what string, err error, hint string) {
	t.Helper()
	if inCI() {
		t.Fatalf("dockertest: %s required in CI but unavailable: %v (%s)", what, err, hint)
	}
	t.Skipf("dockertest: SKIPPING %s - NO %s: %v (%s; with CI=true this fails)", t.Name(), strings.ToUpper(what), err, hint)
}

func connect(ctx context.Context, timeout time.Duration) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("ping docker at %s: %w", cli.DaemonHost(), err)
	}
	return cli, nil
}

func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}
