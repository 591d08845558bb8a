// Package ingress is the adapter that runs fleetd's ingress on a host: it
// builds the ingress image from the fleetd binary, keeps the one ingress
// container of the host (labelled, published, joined to the networks of
// the services it serves, healed), and sends it the routing table the
// pure ingress.Build makes. It implements reconcile.Router. It decides
// nothing itself.
package ingress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/ingress"
	"github.com/fleetd/fleetd/ingress/proxy"
	"github.com/fleetd/fleetd/reconcile"
)

// Labels of the ingress container.
const (
	// EngineIngress is the io.fleetd.engine label of the ingress
	// container: the docker engine adapter leaves it alone (it belongs to
	// no fleet), this adapter owns it.
	EngineIngress = "ingress"
	// LabelPorts records the listeners the container publishes, so that a
	// change of them recreates it.
	LabelPorts = "io.fleetd.ingress-ports"
	// stateMount is where the ingress keeps its table and control socket.
	stateMount = "/state"
	// metricsTimeout bounds a scrape of the ingress's metrics.
	metricsTimeout = 2 * time.Second
)

// Options configure the adapter.
type Options struct {
	Instance string // the fleetd agent's instance name
	// StateDir is the host directory the ingress keeps its state in (its
	// last table and its control socket); it is bind-mounted into it.
	StateDir string
	// Binary is the fleetd executable the image is built from (default:
	// this process's).
	Binary string
	// AccessLog turns the ingress's access log on.
	AccessLog bool
	Log       *slog.Logger
	// PushTimeout bounds the wait for a fresh ingress to answer (default
	// 15 s).
	PushTimeout time.Duration
}

// Router runs the host's ingress: reconcile.Router.
type Router struct {
	cli  *client.Client
	opts Options

	mu       sync.Mutex
	desired  []fleets.Fleet
	pool     ingress.Pool
	last     ingress.Table // the last table the ingress took
	absent   bool          // known: no ingress container and none needed
	image    string        // built image reference
	version  uint64
	imageErr error
}

var _ reconcile.Router = (*Router)(nil)

// New returns the router of the host cli talks to.
func New(cli *client.Client, opts Options) *Router {
	if opts.Instance == "" {
		opts.Instance = fleets.DefaultInstance
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.PushTimeout == 0 {
		opts.PushTimeout = 15 * time.Second
	}
	return &Router{cli: cli, opts: opts, pool: ingress.Pool{Routed: map[string]bool{}, Draining: map[string]bool{}}}
}

// ContainerName is the name of a host's ingress container: fleetd-ingress
// for the default agent, <instance>-ingress for another.
func ContainerName(instance string) string {
	if instance == "" || instance == fleets.DefaultInstance {
		return "fleetd-ingress"
	}
	return instance + "-ingress"
}

func (r *Router) name() string   { return ContainerName(r.opts.Instance) }
func (r *Router) dir() string    { return filepath.Join(r.opts.StateDir, "ingress") }
func (r *Router) socket() string { return filepath.Join(r.dir(), "control.sock") }

// Sync makes the ingress match desired and the host. With no service
// behind the ingress, the ingress container is removed (once; later
// calls cost nothing).
func (r *Router) Sync(ctx context.Context, desired []fleets.Fleet) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.desired = desired
	return r.sync(ctx)
}

// Route admits a new replica into its service's pool, once it passed its
// gate; it fails when the replica is not one the ingress can route to.
func (r *Router) Route(ctx context.Context, fleet, service, ctr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pool.Routed[ctr] = true
	if err := r.sync(ctx); err != nil {
		return err
	}
	if _, ok := find(r.last, ctr); !ok {
		return fault.New(fault.Retryable, fault.Timeout, ctr, fmt.Errorf("route %s/%s: replica %s is not up on the service's network", fleet, service, ctr))
	}
	return nil
}

// Drain takes a replica out of its service's pool and waits until the
// ingress reports nothing in flight on it, or timeout passes (then the
// stop goes ahead: the drain is a bound, not a condition).
func (r *Router) Drain(ctx context.Context, fleet, service, ctr string, timeout time.Duration) error {
	r.mu.Lock()
	r.pool.Draining[ctr] = true
	err := r.sync(ctx)
	be, routed := find(r.last, ctr)
	r.mu.Unlock()
	if err != nil || !routed {
		return err
	}
	c := proxy.Client{Socket: r.socket()}
	deadline := time.Now().Add(timeout)
	for {
		st, err := c.State(ctx)
		if err == nil && st.Backends[be.ID].InFlight == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			r.opts.Log.Info("drain timed out; the replica stops with requests in flight", "container", be.Name, "drain", timeout)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// find looks a replica up among the table's backends by ID or name.
func find(t ingress.Table, ctr string) (ingress.Backend, bool) {
	for _, l := range t.Listeners {
		for _, rt := range l.Routes {
			for _, b := range rt.Backends {
				if b.ID == ctr || b.Name == ctr {
					return b, true
				}
			}
		}
	}
	return ingress.Backend{}, false
}

// needed reports whether some desired service goes through the ingress.
func needed(desired []fleets.Fleet) bool {
	return len(ingress.Build(0, desired, nil, ingress.Pool{}).Listeners) > 0
}

func (r *Router) sync(ctx context.Context) error {
	if !needed(r.desired) {
		if r.absent {
			return nil
		}
		if err := r.removeIngress(ctx); err != nil {
			return err
		}
		r.absent = true
		return nil
	}
	r.absent = false
	replicas, err := r.replicas(ctx)
	if err != nil {
		return err
	}
	r.forget(replicas)
	t := ingress.Build(0, r.desired, replicas, r.pool)
	id, err := r.ensure(ctx, t)
	if err != nil {
		return err
	}
	if err := r.join(ctx, id, ingress.Networks(r.desired)); err != nil {
		return err
	}
	return r.push(ctx, t)
}

// forget drops the pool marks of containers that are gone.
func (r *Router) forget(replicas []ingress.Replica) {
	present := map[string]bool{}
	for _, rp := range replicas {
		present[rp.ID], present[rp.Name] = true, true
	}
	for _, m := range []map[string]bool{r.pool.Routed, r.pool.Draining} {
		maps.DeleteFunc(m, func(k string, _ bool) bool { return !present[k] })
	}
}

// replicas lists the containers of this agent's fleets with their
// addresses: one list call.
func (r *Router) replicas(ctx context.Context) (_ []ingress.Replica, err error) {
	defer func() { err = engine.Classify(err) }()
	list, err := r.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", fleets.LabelManaged+"=true"), filters.Arg("label", fleets.LabelInstance+"="+r.opts.Instance))})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var out []ingress.Replica
	for _, c := range list {
		if c.Labels[fleets.LabelFleet] == "" || len(c.Names) == 0 {
			continue
		}
		rp := ingress.Replica{ID: c.ID, Name: strings.TrimPrefix(c.Names[0], "/"), Fleet: c.Labels[fleets.LabelFleet],
			Service: c.Labels[fleets.LabelService], Running: c.State == "running", Health: engine.HealthFromStatus(c.Status), IPs: map[string]string{}}
		if c.NetworkSettings != nil {
			for name, n := range c.NetworkSettings.Networks {
				if n != nil && n.IPAddress != "" {
					rp.IPs[name] = n.IPAddress
				}
			}
		}
		out = append(out, rp)
	}
	return out, nil
}

// push sends t to the ingress unless it routes as the last one did; a
// fresh ingress gets a moment to open its socket.
func (r *Router) push(ctx context.Context, t ingress.Table) error {
	if r.version > 0 && reflect.DeepEqual(t.Listeners, r.last.Listeners) {
		return nil
	}
	c := proxy.Client{Socket: r.socket()}
	deadline := time.Now().Add(r.opts.PushTimeout)
	for {
		if r.version == 0 { // first push of this agent: above what the ingress serves
			if st, err := c.State(ctx); err == nil {
				r.version = st.Version
			}
		}
		t.Version = max(r.version+1, uint64(time.Now().UnixMilli()))
		err := c.Push(ctx, t)
		if err == nil {
			r.version, r.last = t.Version, t
			return nil
		}
		if errors.Is(err, ingress.ErrInvalidTable) {
			return fault.New(fault.Permanent, fault.InvalidSpec, r.name(), fmt.Errorf("ingress refused the routing table: %w", err))
		}
		if time.Now().After(deadline) {
			return fault.New(fault.Retryable, fault.Timeout, r.name(), fmt.Errorf("push the routing table to %s: %w", r.name(), err))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// portsLabel is the canonical form of the listeners a container publishes.
func portsLabel(t ingress.Table) string {
	var parts []string
	for _, l := range t.Listeners {
		parts = append(parts, net(l.HostIP)+strconv.Itoa(int(l.Port)))
	}
	return strings.Join(parts, ",")
}

func net(hostIP string) string {
	if hostIP == "" {
		return ""
	}
	if ip, err := netip.ParseAddr(hostIP); err == nil && ip.Is6() {
		return "[" + hostIP + "]:"
	}
	return hostIP + ":"
}

// ensure makes the ingress container run the current image with the
// table's ports published, and returns its ID. A container with other
// ports or another image is replaced (the only time the ingress stops
// serving: a listen port added or removed, or fleetd upgraded).
func (r *Router) ensure(ctx context.Context, t ingress.Table) (_ string, err error) {
	defer func() { err = engine.Classify(err) }()
	image, err := r.ensureImage(ctx)
	if err != nil {
		return "", err
	}
	want := portsLabel(t)
	c, err := r.cli.ContainerInspect(ctx, r.name())
	switch {
	case err == nil && !fleets.OwnedBy(c.Config.Labels, r.opts.Instance):
		return "", fault.New(fault.Permanent, fault.Conflict, r.name(), fmt.Errorf("container %s exists and is not fleetd's", r.name()))
	case err == nil && c.Config.Image == image && c.Config.Labels[LabelPorts] == want:
		if !c.State.Running {
			if err := r.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
				return "", fmt.Errorf("start %s: %w", r.name(), err)
			}
		}
		return c.ID, nil
	case err == nil:
		r.opts.Log.Info("replacing the ingress container", "image", image, "ports", want, "had_image", c.Config.Image, "had_ports", c.Config.Labels[LabelPorts])
		if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
			return "", fmt.Errorf("remove %s: %w", r.name(), err)
		}
	case !client.IsErrNotFound(err):
		return "", fmt.Errorf("inspect %s: %w", r.name(), err)
	}
	return r.create(ctx, image, t, want)
}

func (r *Router) create(ctx context.Context, image string, t ingress.Table, ports string) (string, error) {
	if err := os.MkdirAll(r.dir(), 0o700); err != nil {
		return "", fmt.Errorf("ingress state directory: %w", err)
	}
	exposed, bindings := nat.PortSet{}, nat.PortMap{}
	for _, l := range t.Listeners {
		p := nat.Port(strconv.Itoa(int(l.Port)) + "/tcp")
		exposed[p] = struct{}{}
		bindings[p] = []nat.PortBinding{{HostIP: l.HostIP, HostPort: strconv.Itoa(int(l.Port))}}
	}
	cmd := []string{"ingress", "--state", stateMount}
	if r.opts.AccessLog {
		cmd = append(cmd, "--access-log")
	}
	labels := map[string]string{fleets.LabelManaged: "true", fleets.LabelInstance: r.opts.Instance,
		fleets.LabelEngine: EngineIngress, LabelPorts: ports}
	cfg := &container.Config{Image: image, Cmd: cmd, Labels: labels, ExposedPorts: exposed, StopSignal: "SIGTERM"}
	host := &container.HostConfig{
		PortBindings:  bindings,
		Binds:         []string{r.dir() + ":" + stateMount},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Init:          nil,
	}
	created, err := r.cli.ContainerCreate(ctx, cfg, host, &network.NetworkingConfig{}, nil, r.name())
	if err != nil {
		return "", fmt.Errorf("create %s: %w", r.name(), err)
	}
	if err := r.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("start %s: %w", r.name(), err)
	}
	r.last, r.version = ingress.Table{}, 0 // a new ingress serves what its state directory held
	return created.ID, nil
}

// join connects the ingress to the networks it must reach replicas on,
// and disconnects it from the fleets' networks it no longer needs (so that
// a fleet's network can be removed).
func (r *Router) join(ctx context.Context, id string, nets []string) (err error) {
	defer func() { err = engine.Classify(err) }()
	c, err := r.cli.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", r.name(), err)
	}
	for _, n := range nets {
		if _, ok := c.NetworkSettings.Networks[n]; !ok {
			err := r.cli.NetworkConnect(ctx, n, id, nil)
			if err != nil && !client.IsErrNotFound(err) { // not created yet: the sync after the pass joins it
				return fmt.Errorf("connect %s to network %s: %w", r.name(), n, err)
			}
		}
	}
	for n := range c.NetworkSettings.Networks {
		if n != "bridge" && !slices.Contains(nets, n) {
			if err := r.cli.NetworkDisconnect(ctx, n, id, false); err != nil {
				return fmt.Errorf("disconnect %s from network %s: %w", r.name(), n, err)
			}
		}
	}
	return nil
}

// removeIngress removes the ingress container, if there is one of this
// agent's.
func (r *Router) removeIngress(ctx context.Context) (err error) {
	defer func() { err = engine.Classify(err) }()
	c, err := r.cli.ContainerInspect(ctx, r.name())
	if client.IsErrNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", r.name(), err)
	}
	if !fleets.OwnedBy(c.Config.Labels, r.opts.Instance) || c.Config.Labels[fleets.LabelEngine] != EngineIngress {
		return nil // not ours: left alone
	}
	r.opts.Log.Info("removing the ingress: no service goes through it")
	if err := r.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil {
		return fmt.Errorf("remove %s: %w", r.name(), err)
	}
	r.last, r.version = ingress.Table{}, 0
	return nil
}
