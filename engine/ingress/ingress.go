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
	"net"
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

	mu sync.Mutex
	// models holds each fleet's model as its own apply last gave it: an
	// apply of one fleet never sets another's ports or networks.
	models map[string]fleets.Fleet
	pool   ingress.Pool
	// drainer names the fleet of each draining replica: a fleet's marks
	// end with its apply's pass.
	drainer  map[string]string
	seeded   bool          // the routed replicas read from the ingress's table
	synced   bool          // a sync ran since this agent started
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
	return &Router{cli: cli, opts: opts, models: map[string]fleets.Fleet{}, drainer: map[string]string{},
		pool: ingress.Pool{Routed: map[string]bool{}, Draining: map[string]bool{}}}
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

// Sync takes the models of the fleets in scope from desired (every fleet
// when scope is empty) and makes the ingress match the models and the
// host. The drains of those fleets are over (their pass ended): replicas
// still running take work again unless drained anew. With no service
// behind the ingress, the ingress container is removed (once; later calls
// cost nothing).
func (r *Router) Sync(ctx context.Context, desired []fleets.Fleet, scope []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	inScope := func(name string) bool { return len(scope) == 0 || slices.Contains(scope, name) }
	touched := false // the scope's fleets used or use the ingress
	for name, f := range r.models {
		if inScope(name) {
			touched = touched || f.UsesIngress()
			delete(r.models, name)
		}
	}
	for _, f := range desired {
		if inScope(f.Name) {
			r.models[f.Name] = f
			touched = touched || f.UsesIngress()
		}
	}
	for id, fleet := range r.drainer {
		if inScope(fleet) {
			delete(r.drainer, id)
			delete(r.pool.Draining, id)
		}
	}
	if r.synced && !touched {
		return nil // nothing the ingress serves changed: no Docker call
	}
	return r.sync(ctx, nil)
}

// Route admits a replica (name or ID) into its service's pool, once it
// passed its gate; it fails when the replica is not one the ingress can
// route to.
func (r *Router) Route(ctx context.Context, fleet, service, ctr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	replicas, id, err := r.resolve(ctx, fleet, service, ctr)
	if err != nil {
		return err
	}
	r.pool.Routed[id] = true
	// A retryable failure (the port still held by replicas this plan is
	// stopping, a network being joined) is tried again, for a while, on a
	// fresh list of the replicas.
	deadline := time.Now().Add(r.opts.PushTimeout)
	for {
		err := r.sync(ctx, replicas)
		replicas = nil
		if err == nil {
			if _, ok := find(r.last, id); ok {
				return nil
			}
			err = fault.New(fault.Retryable, fault.Timeout, ctr, fmt.Errorf("route %s/%s: replica %s is not up on the service's network", fleet, service, ctr))
		}
		if f := fault.Of(err); f != nil && f.Class == fault.Permanent || time.Now().After(deadline) {
			return err
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			r.mu.Lock()
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		r.mu.Lock()
	}
}

// Drain takes a replica out of its service's pool and waits until the
// ingress reports nothing in flight on it, or timeout passes (then the
// stop goes ahead: the drain is a bound, not a condition). A failed drain
// leaves the replica in the pool.
func (r *Router) Drain(ctx context.Context, fleet, service, ctr string, timeout time.Duration) error {
	r.mu.Lock()
	replicas, id, err := r.resolve(ctx, fleet, service, ctr)
	if err == nil && !r.serving(ctx, id) {
		r.mu.Unlock()
		return nil // not in the pool (never routed, or published its port itself): nothing to drain
	}
	if err == nil {
		r.pool.Draining[id], r.drainer[id] = true, fleet
		if err = r.sync(ctx, replicas); err != nil {
			delete(r.pool.Draining, id)
			delete(r.drainer, id)
		}
	}
	be, routed := find(r.last, id)
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

// serving reports whether the ingress may send work to replica id: it is
// in the last table pushed, or, before this agent pushed one, in the table
// the ingress serves.
func (r *Router) serving(ctx context.Context, id string) bool {
	if r.version > 0 {
		_, ok := find(r.last, id)
		return ok
	}
	st, err := proxy.Client{Socket: r.socket()}.State(ctx)
	if err != nil {
		return false // no ingress answers: nothing routes to it
	}
	b, ok := st.Backends[id]
	return ok && !b.Removed
}

// resolve lists the replicas and finds the ID of the one of fleet/service
// named or identified by ctr.
func (r *Router) resolve(ctx context.Context, fleet, service, ctr string) ([]ingress.Replica, string, error) {
	replicas, err := r.replicas(ctx)
	if err != nil {
		return nil, "", err
	}
	for _, rp := range replicas {
		if rp.Fleet == fleet && rp.Service == service && (rp.ID == ctr || rp.Name == ctr) {
			return replicas, rp.ID, nil
		}
	}
	return nil, "", fault.New(fault.Retryable, fault.NotFound, ctr, fmt.Errorf("%s/%s: no replica %s", fleet, service, ctr))
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
	return len(ingress.Bindings(desired)) > 0
}

// desired is the fleets' models, in name order.
func (r *Router) desired() []fleets.Fleet {
	var out []fleets.Fleet
	for _, name := range slices.Sorted(maps.Keys(r.models)) {
		out = append(out, r.models[name])
	}
	return out
}

// sync makes the ingress match the models and the host; replicas, when
// not nil, is a list of them just taken.
func (r *Router) sync(ctx context.Context, replicas []ingress.Replica) error {
	desired := r.desired()
	if !needed(desired) {
		if r.absent {
			return nil
		}
		if err := r.removeIngress(ctx); err != nil {
			return err
		}
		r.absent, r.synced = true, true
		return nil
	}
	r.absent = false
	id, on, err := r.ensure(ctx, desired)
	if err != nil {
		return err
	}
	r.seed(ctx)
	if replicas == nil {
		if replicas, err = r.replicas(ctx); err != nil {
			return err
		}
	}
	r.forget(replicas)
	joined, err := r.join(ctx, id, on, ingress.Networks(desired, replicas))
	if err != nil {
		return err
	}
	if err := r.writeTLS(desired); err != nil {
		return err
	}
	if err := r.push(ctx, ingress.Build(0, desired, replicas, r.pool, joined)); err != nil {
		return err
	}
	r.synced = true
	return nil
}

// seed takes the replicas the ingress routes to as routed, once: what an
// agent that stopped (or another command) admitted stays admitted.
func (r *Router) seed(ctx context.Context) {
	if r.seeded {
		return
	}
	st, err := proxy.Client{Socket: r.socket()}.State(ctx)
	if err != nil {
		return // a fresh ingress: nothing to keep
	}
	r.seeded = true
	for id, b := range st.Backends {
		if !b.Removed && !b.Draining {
			r.pool.Routed[id] = true
		}
	}
}

// forget drops the pool marks of containers that are gone.
func (r *Router) forget(replicas []ingress.Replica) {
	present := map[string]bool{}
	for _, rp := range replicas {
		present[rp.ID] = true
	}
	for _, m := range []map[string]bool{r.pool.Routed, r.pool.Draining} {
		maps.DeleteFunc(m, func(k string, _ bool) bool { return !present[k] })
	}
	maps.DeleteFunc(r.drainer, func(k string, _ string) bool { return !present[k] })
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
		name := strings.TrimPrefix(c.Names[0], "/")
		replaces := c.Labels[fleets.LabelReplaces]
		rp := ingress.Replica{ID: c.ID, Name: name, Fleet: c.Labels[fleets.LabelFleet], Service: c.Labels[fleets.LabelService],
			Running: c.State == "running", Health: engine.HealthFromStatus(c.Status), Temp: replaces != "" && name != replaces, IPs: map[string]string{}}
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
// fresh ingress gets a moment to open its socket. Versions only grow:
// after a refusal as stale, the next is above what the ingress serves.
func (r *Router) push(ctx context.Context, t ingress.Table) error {
	if r.version > 0 && reflect.DeepEqual(t.Listeners, r.last.Listeners) {
		return nil
	}
	c := proxy.Client{Socket: r.socket()}
	deadline := time.Now().Add(r.opts.PushTimeout)
	stale := r.version == 0
	for {
		if stale {
			if st, err := c.State(ctx); err == nil {
				r.version = max(r.version, st.Version)
			}
		}
		t.Version = max(r.version+1, uint64(time.Now().UnixMilli()))
		err := c.Push(ctx, t)
		switch {
		case err == nil:
			r.version, r.last = t.Version, t
			return nil
		case errors.Is(err, proxy.ErrBind):
			return fault.New(fault.Retryable, fault.PortAllocated, r.name(), fmt.Errorf("the ingress cannot listen: %w", err))
		case errors.Is(err, ingress.ErrInvalidTable):
			return fault.New(fault.Permanent, fault.InvalidSpec, r.name(), fmt.Errorf("the ingress refused the routing table: %w", err))
		}
		stale = errors.Is(err, proxy.ErrStale)
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

// writeTLS writes the certificates and keys the ingress serves into its
// state directory (0600, named by digest); a file there already is kept.
func (r *Router) writeTLS(desired []fleets.Fleet) error {
	files := ingress.TLSFiles(desired)
	if len(files) == 0 {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(r.dir(), ingress.TLSDir), 0o700); err != nil {
		return fmt.Errorf("ingress tls directory: %w", err)
	}
	for rel, ref := range files {
		path := filepath.Join(r.dir(), rel)
		if _, err := os.Stat(path); err == nil {
			continue
		}
		data, err := engine.FileContents(ref)
		if err != nil {
			return fault.New(fault.Permanent, fault.InvalidSpec, ref.Name, fmt.Errorf("ingress tls: %w", err))
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return fmt.Errorf("ingress tls: %w", err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("ingress tls: %w", err)
		}
	}
	return nil
}

// portsLabel is the canonical form of the bindings a container publishes.
func portsLabel(bs []ingress.Binding) string {
	var parts []string
	for _, b := range bs {
		port := strconv.Itoa(int(b.Port))
		if b.HostIP != "" {
			port = net.JoinHostPort(b.HostIP, port)
		}
		parts = append(parts, port)
	}
	return strings.Join(parts, ",")
}

// ensure makes the ingress container run the current image with the
// desired bindings published, and returns its ID and the networks it is on
// (from the inspect it made; none for a new container but the default
// bridge). A container with other
// bindings or another image is replaced, stopped gracefully first (the
// only time the ingress stops serving: a listen port added or removed, or
// fleetd upgraded).
func (r *Router) ensure(ctx context.Context, desired []fleets.Fleet) (_ string, _ map[string]bool, err error) {
	defer func() {
		err = engine.Classify(err)
		if f := fault.Of(err); f != nil && f.Reason == fault.PortAllocated {
			// Often the replicas this very plan is stopping (a service
			// moving onto the ingress): worth trying again.
			err = fault.New(fault.Retryable, fault.PortAllocated, f.Object, err)
		}
	}()
	image, err := r.ensureImage(ctx)
	if err != nil {
		return "", nil, err
	}
	bindings := ingress.Bindings(desired)
	want := portsLabel(bindings)
	c, err := r.cli.ContainerInspect(ctx, r.name())
	switch {
	case err == nil && !fleets.OwnedBy(c.Config.Labels, r.opts.Instance):
		return "", nil, fault.New(fault.Permanent, fault.Conflict, r.name(), fmt.Errorf("container %s exists and is not fleetd's", r.name()))
	case err == nil && c.Config.Image == image && c.Config.Labels[LabelPorts] == want:
		if !c.State.Running {
			if err := r.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
				return "", nil, fmt.Errorf("start %s: %w", r.name(), err)
			}
		}
		on := map[string]bool{}
		for n := range c.NetworkSettings.Networks {
			on[n] = true
		}
		return c.ID, on, nil
	case err == nil:
		r.opts.Log.Info("replacing the ingress container", "image", image, "ports", want, "had_image", c.Config.Image, "had_ports", c.Config.Labels[LabelPorts])
		if err := r.remove(ctx, c.ID); err != nil {
			return "", nil, err
		}
	case !client.IsErrNotFound(err):
		return "", nil, fmt.Errorf("inspect %s: %w", r.name(), err)
	}
	id, err := r.create(ctx, image, bindings, want)
	return id, map[string]bool{"bridge": true}, err
}

// stopGrace is how long a replaced ingress gets to finish its requests.
const stopGrace = 10

// remove stops the ingress container gracefully and removes it.
func (r *Router) remove(ctx context.Context, id string) error {
	grace := stopGrace
	if err := r.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &grace}); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("stop %s: %w", r.name(), err)
	}
	if err := r.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true}); err != nil && !client.IsErrNotFound(err) {
		return fmt.Errorf("remove %s: %w", r.name(), err)
	}
	r.last, r.version, r.seeded = ingress.Table{}, 0, false
	return nil
}

func (r *Router) create(ctx context.Context, image string, bindings []ingress.Binding, ports string) (string, error) {
	if err := os.MkdirAll(r.dir(), 0o700); err != nil {
		return "", fmt.Errorf("ingress state directory: %w", err)
	}
	exposed, published := nat.PortSet{}, nat.PortMap{}
	for _, b := range bindings {
		p := nat.Port(strconv.Itoa(int(b.Port)) + "/tcp")
		exposed[p] = struct{}{}
		published[p] = append(published[p], nat.PortBinding{HostIP: b.HostIP, HostPort: strconv.Itoa(int(b.Port))})
	}
	cmd := []string{"ingress", "--state", stateMount}
	if r.opts.AccessLog {
		cmd = append(cmd, "--access-log")
	}
	labels := map[string]string{fleets.LabelManaged: "true", fleets.LabelInstance: r.opts.Instance,
		fleets.LabelEngine: EngineIngress, LabelPorts: ports}
	cfg := &container.Config{Image: image, Cmd: cmd, Labels: labels, ExposedPorts: exposed, StopSignal: "SIGTERM"}
	host := &container.HostConfig{
		PortBindings:  published,
		Binds:         []string{r.dir() + ":" + stateMount},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
	}
	created, err := r.cli.ContainerCreate(ctx, cfg, host, &network.NetworkingConfig{}, nil, r.name())
	if err != nil {
		return "", fmt.Errorf("create %s: %w", r.name(), err)
	}
	if err := r.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		// Left created, not running: the next sync starts it once the
		// port is free (ensure finds it with the right bindings).
		return "", fmt.Errorf("start %s: %w", r.name(), err)
	}
	r.last, r.version, r.seeded = ingress.Table{}, 0, false // a new ingress serves what its state directory held
	return created.ID, nil
}

// join connects the ingress (on the networks in on) to the networks it
// must reach replicas on, and disconnects it from the fleets' networks it
// no longer needs (so that a fleet's network can be removed); it returns
// the networks it is on.
func (r *Router) join(ctx context.Context, id string, on map[string]bool, nets []string) (_ []string, err error) {
	defer func() { err = engine.Classify(err) }()
	var joined []string
	for _, n := range nets {
		if on[n] {
			joined = append(joined, n)
			continue
		}
		err := r.cli.NetworkConnect(ctx, n, id, nil)
		switch {
		case err == nil:
			joined = append(joined, n)
		case !client.IsErrNotFound(err): // not created yet: the sync after the pass joins it
			return nil, fmt.Errorf("connect %s to network %s: %w", r.name(), n, err)
		}
	}
	for n := range on {
		if n != "bridge" && !slices.Contains(nets, n) {
			if err := r.cli.NetworkDisconnect(ctx, n, id, false); err != nil && !client.IsErrNotFound(err) {
				return nil, fmt.Errorf("disconnect %s from network %s: %w", r.name(), n, err)
			}
		}
	}
	return joined, nil
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
	return r.remove(ctx, c.ID)
}
