package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
	eingress "github.com/fleetd/fleetd/engine/ingress"
)

// fleetd owns the managed containers of its instance: a managed container
// of a fleet that is not in the repository is an orphan, which diff reports
// and apply prunes. The Docker engine is shared with other test processes
// (engine tests, benchmarks, a quickstart someone ran), so every test runs
// fleetd as an instance of its own (FLEETD_INSTANCE, see instanceFor): the
// others' containers are then not its to report or prune.

// fleetdBin is the fleetd binary under test, built once by TestMain;
// stateRoot holds the state directories of the fleetd runs.
var fleetdBin, stateRoot string

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
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // static: the ingress image is built from it
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build fleetd:", err)
		return 1
	}
	stateRoot = filepath.Join(dir, "state")
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
	// The ingress image the tests' agents built from fleetdBin.
	if ref, err := eingress.ImageRef(fleetdBin); err == nil {
		_, _ = cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: true, PruneChildren: true})
	}
}
