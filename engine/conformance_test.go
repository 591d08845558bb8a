package engine_test

import (
	"context"
	"net"
	"path"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/engine/conformance"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// TestConformance holds engine.Docker to the suite the fake passes too.
// Every case gets an engine of its own fleetd instance, so that cases, and
// other tests, never see each other's objects as their own.
func TestConformance(t *testing.T) {
	cli := dockertest.Client(t)
	ref, _ := dockertest.TestImage(t, cli, "v1") // built once, before the cases
	registry := dockertest.StartRegistry(t)
	t.Parallel()
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		dockertest.Cleanup(t, cli)
		instance := dockertest.Name(t, "conf-"+path.Base(t.Name()))
		d, err := engine.New(t.Context(), engine.WithInstance(instance))
		if err != nil {
			t.Fatal(err)
		}
		h := &dockerHarness{t: t, cli: cli, d: d, ref: ref, registry: registry, instance: instance}
		t.Cleanup(h.removeContainers) // before the run's sweep, which waits for the last test
		t.Cleanup(func() { _ = d.Close() })
		return h
	})
}

// dockerHarness works on the engine the environment names, with the raw
// client as the out-of-band hands.
type dockerHarness struct {
	t         *testing.T
	cli       *client.Client
	d         *engine.Docker
	ref       string
	registry  string
	instance  string
	squatters []string
}

// removeContainers removes the case's containers as soon as it ends: the
// test image probes its health every second, and a host full of finished
// cases' containers slows every case after them.
func (h *dockerHarness) removeContainers() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := h.squatters
	own, err := h.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", fleets.LabelInstance+"="+h.instance))})
	if err != nil {
		h.t.Logf("list the case's containers (the run's sweep removes them): %v", err)
	}
	for _, c := range own {
		ids = append(ids, c.ID)
	}
	for _, id := range ids {
		if err := h.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			h.t.Logf("remove %s (the run's sweep removes it): %v", id, err)
		}
	}
}

func (h *dockerHarness) Engine() reconcile.Engine { return h.d }

func (h *dockerHarness) Unreachable() reconcile.Engine {
	d, err := engine.New(h.t.Context(), engine.WithHost("unix:///nonexistent/docker.sock"), engine.WithPingTimeout(0))
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = d.Close() })
	return d
}

func (h *dockerHarness) Image() string { return h.ref }

// MissingImage names a repository the test registry never had.
func (h *dockerHarness) MissingImage() string {
	return h.registry + "/" + h.Name("missing") + ":v1"
}

func (h *dockerHarness) Name(base string) string { return dockertest.Name(h.t, "conf-"+base) }

// Crash makes the test application exit with code 3 right after it starts
// (CRASH_AFTER=0s would never fire: the application ignores a zero delay).
func (h *dockerHarness) Crash(inst *fleets.Instance) {
	inst.Spec.Environment = map[string]string{"CRASH_AFTER": "1ms"}
}

func (h *dockerHarness) SquatContainer(name string) {
	h.squatters = append(h.squatters, dockertest.Run(h.t, h.cli, name, h.ref))
}

func (h *dockerHarness) SquatNetwork(name string) {
	labels := map[string]string{dockertest.LabelTestRun: dockertest.RunID()}
	if _, err := h.cli.NetworkCreate(h.t.Context(), name, network.CreateOptions{Labels: labels}); err != nil {
		h.t.Fatalf("squat network %s: %v", name, err)
	}
}

// HoldPort listens on a free host port, as a process on the host would:
// Docker's userland proxy (on by default) then cannot bind it, and the
// daemon says "listen tcp4 0.0.0.0:PORT: bind: address already in use".
// The other case, a port another container publishes, gets the daemon's
// "Bind for 0.0.0.0:PORT failed: port is already allocated".
func (h *dockerHarness) HoldPort() string {
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		h.t.Fatalf("hold a port: %v", err)
	}
	h.t.Cleanup(func() { _ = ln.Close() })
	return ln.Addr().String()
}

// StopContainer is `docker stop -t 1`: a container stopped right after its
// start may not handle SIGTERM yet, and need not hold a case up for long.
func (h *dockerHarness) StopContainer(name string) {
	timeout := 1
	if err := h.cli.ContainerStop(h.t.Context(), name, container.StopOptions{Timeout: &timeout}); err != nil {
		h.t.Fatalf("docker stop %s: %v", name, err)
	}
}

func (h *dockerHarness) RemoveContainer(name string) {
	if err := h.cli.ContainerRemove(h.t.Context(), name, container.RemoveOptions{Force: true}); err != nil {
		h.t.Fatalf("docker rm -f %s: %v", name, err)
	}
}
