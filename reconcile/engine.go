package reconcile

import (
	"context"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// Engine is what reconcile needs from a container engine. engine.Docker
// implements it against the Docker API; enginetest.Fake in memory.
// Operations that change or remove an object refuse objects that lack
// fleetd's io.fleetd.managed label (ErrNotManaged in the implementation).
// Router is fleetd's ingress as plans drive it (engine/ingress). Sync
// takes the models of the fleets in scope (all when scope is empty) from
// desired, the ones an apply acts on, and makes the ingress match them and
// the host: it runs while some service goes through it, and routes to the
// replicas routed and up. Route puts one replica (a container name or ID)
// into its service's pool; Drain takes it out and returns once its
// requests and connections have finished, or timeout passed.
type Router interface {
	Sync(ctx context.Context, desired []fleets.Fleet, scope []string) error
	Route(ctx context.Context, fleet, service, container string) error
	Drain(ctx context.Context, fleet, service, container string, timeout time.Duration) error
}

type Engine interface {
	Observe(ctx context.Context, opts drift.ObserveOptions) (drift.Observed, error)

	EnsureNetwork(ctx context.Context, fleet string, n fleets.Network) error
	RemoveNetwork(ctx context.Context, name string) error
	EnsureVolume(ctx context.Context, fleet string, v fleets.Volume) error

	// PullImage pulls ref and returns its image ID.
	PullImage(ctx context.Context, ref string) (string, error)
	// BuildImage builds b and tags it ref; it returns the image ID. It
	// hands the build's output to logf line by line as it comes (logf may
	// be nil).
	BuildImage(ctx context.Context, b fleets.Build, ref string, logf func(line string)) (string, error)

	// CreateContainer creates (does not start) the container and connects
	// it to every network in its spec with its aliases; it returns its ID.
	CreateContainer(ctx context.Context, inst fleets.Instance) (string, error)
	StartContainer(ctx context.Context, id string) error
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	RestartContainer(ctx context.Context, id string, timeout time.Duration) error
	RemoveContainer(ctx context.Context, id string) error
	RenameContainer(ctx context.Context, id, name string) error
	UnpauseContainer(ctx context.Context, id string) error
	// ConnectNetwork reattaches a container to a network it was
	// disconnected from, with its aliases.
	ConnectNetwork(ctx context.Context, id string, att fleets.NetworkAttachment, containerName string) error
	// UpdateResources resets the limits and restart policy `docker update`
	// can change to the spec's.
	UpdateResources(ctx context.Context, id string, spec fleets.Spec) error

	// WaitHealthy returns when the container is healthy (or, without a
	// healthcheck, running), and an error naming the reason when it exits,
	// turns unhealthy or the timeout passes first.
	WaitHealthy(ctx context.Context, id string, timeout time.Duration) error
	// WaitRecovered returns when the container is healthy again, tolerating
	// an "unhealthy" verdict until the timeout (after an unpause).
	WaitRecovered(ctx context.Context, id string, timeout time.Duration) error
	// WaitUp is a rollout's health gate: it returns once the container is
	// up (healthy with a healthcheck; else running for readiness) and
	// stayed up for monitor, and fails naming the reason otherwise.
	WaitUp(ctx context.Context, id string, readiness, monitor, timeout time.Duration) error
	// WaitExit returns when the container has exited with code 0, and an
	// error when it exits otherwise or the timeout passes first.
	WaitExit(ctx context.Context, id string, timeout time.Duration) error

	// ExecHook runs a lifecycle hook in the running container id with
	// exec, as docker compose runs post_start and pre_stop hooks, and
	// returns once it exited, or the timeout (0: none) passed. An exit
	// code other than 0 is an error naming the hook (name), the
	// container, the code and the tail of its output; a container that is
	// not running is an error wrapping ErrNotRunning.
	ExecHook(ctx context.Context, id, name string, hook fleets.Hook, timeout time.Duration) error
}
