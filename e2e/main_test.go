package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// fleetd owns every container labelled io.fleetd.managed=true on its host:
// a managed container of a fleet that is not in the repository is an orphan,
// which diff reports and apply prunes. On a daemon shared with other test
// processes (engine tests, benchmarks, the quickstart) the e2e tests would
// see their containers as drift and prune them. So the tests run against a
// private dockerd of their own, started by TestMain, unless
// FLEETD_E2E_DOCKER=ambient says that DOCKER_HOST is a daemon nobody else uses.
const dockerModeEnv = "FLEETD_E2E_DOCKER"

// fleetdBin is the fleetd binary under test, built once by TestMain.
var fleetdBin string

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "fleetd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	fleetdBin = filepath.Join(dir, "fleetd")
	build := exec.Command("go", "build", "-o", fleetdBin, "github.com/fleetd/fleetd/cmd/fleetd")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build fleetd:", err)
		return 1
	}
	if os.Getenv(dockerModeEnv) != "ambient" {
		d, err := startDaemon()
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: FAILING: cannot start a private Docker daemon:", err)
			return 1
		}
		defer d.stop()
	}
	code := m.Run()
	lastResortSweep()
	return code
}

// lastResortSweep removes whatever this run left on the engine should a test
// have ended without its cleanups (dockertest.Cleanup normally does it).
func lastResortSweep() {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		return
	}
	if err := dockertest.Sweep(ctx, cli, dockertest.RunID()); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: final sweep:", err)
	}
}
