package engine_test

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/versions"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// setup returns the raw client (for setup and checks fleetd must not do)
// and an engine on the same daemon; every object is swept after the test.
func setup(t testing.TB) (*client.Client, *engine.Docker) {
	t.Helper()
	cli := dockertest.Client(t)
	dockertest.Cleanup(t, cli)
	d, err := engine.New(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return cli, d
}

// instance is a replica of service in fleet as the planner would make it,
// attached to the given networks with the service name as alias.
func instance(fleet, service string, slot int, ref string, nets ...string) fleets.Instance {
	name := fmt.Sprintf("%s-%s-%d", fleet, service, slot)
	spec := fleets.Spec{Image: ref, Restart: "no", StopGracePeriod: time.Second}
	for _, n := range nets {
		spec.Networks = append(spec.Networks, fleets.NetworkAttachment{Network: n, Aliases: []string{service}})
	}
	return fleets.Instance{
		Name: name, Fleet: fleet, Service: service, Slot: slot, Spec: spec,
		Labels: map[string]string{
			fleets.LabelManaged:        "true",
			fleets.LabelFleet:          fleet,
			fleets.LabelService:        service,
			fleets.LabelSlot:           strconv.Itoa(slot),
			fleets.LabelComposeProject: fleet,
			fleets.LabelComposeService: service,
			fleets.LabelComposeNumber:  strconv.Itoa(slot),
		},
	}
}

func ensureNetwork(t testing.TB, d *engine.Docker, fleet, key string) string {
	t.Helper()
	name := fleet + "_" + key
	if err := d.EnsureNetwork(t.Context(), fleet, fleets.Network{Key: key, Name: name}); err != nil {
		t.Fatal(err)
	}
	return name
}

func create(t testing.TB, d *engine.Docker, inst fleets.Instance) string {
	t.Helper()
	id, err := d.CreateContainer(t.Context(), inst)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func createStarted(t testing.TB, d *engine.Docker, inst fleets.Instance) string {
	t.Helper()
	id := create(t, d, inst)
	if err := d.StartContainer(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	return id
}

func findContainer(t *testing.T, obs drift.Observed, name string) drift.Container {
	t.Helper()
	for _, c := range obs.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("observed no container %s", name)
	return drift.Container{}
}

func inspects(calls map[string]int) int {
	n := 0
	for op, c := range calls {
		if strings.HasSuffix(op, "}/json") {
			n += c
		}
	}
	return n
}

func TestNewWrongAddress(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	_, err := engine.New(t.Context(), engine.WithPingTimeout(2*time.Second))
	if err == nil {
		t.Fatal("New with a missing socket: no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "unix:///nonexistent.sock") || !strings.Contains(msg, "not reachable") || strings.Contains(msg, "\n") {
		t.Errorf("error should be one line naming the address and the cause, got %q", msg)
	}
	if !errors.Is(err, engine.ErrUnreachable) {
		t.Errorf("error does not wrap ErrUnreachable: %v", err)
	}
	t.Log(msg)
}

func TestObserveFleet(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ctx := t.Context()
	ref, imageID := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "observe")
	back := ensureNetwork(t, d, fleet, "back")
	if err := d.EnsureVolume(ctx, fleet, fleets.Volume{Key: "data", Name: fleet + "_data"}); err != nil {
		t.Fatal(err)
	}
	web := instance(fleet, "web", 1, ref, back)
	web.Spec.Mounts = []fleets.Mount{{Type: "volume", Source: fleet + "_data", Target: "/data"}}
	webID := createStarted(t, d, web)
	sick := instance(fleet, "sick", 1, ref, back)
	sick.Spec.Environment = map[string]string{"HEALTHY": "false"}
	createStarted(t, d, sick)
	idle := instance(fleet, "idle", 1, ref, back)
	create(t, d, idle)
	dockertest.WaitHealth(t, cli, webID, "healthy", 30*time.Second)
	dockertest.WaitHealth(t, cli, sick.Name, "unhealthy", 30*time.Second)

	d.ResetCalls()
	obs, err := d.Observe(ctx, drift.ObserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := findContainer(t, obs, web.Name)
	if c.State != "running" || c.Health != "healthy" || c.ImageID != imageID || !slices.Equal(c.Networks, []string{back}) {
		t.Errorf("web: state %q health %q image %s networks %v", c.State, c.Health, c.ImageID, c.Networks)
	}
	if c.Labels[fleets.LabelFleet] != fleet || c.Labels[fleets.LabelService] != "web" || c.Inspected != nil {
		t.Errorf("web: labels %v, inspected %+v (in sync: want no inspect)", c.Labels, c.Inspected)
	}
	s := findContainer(t, obs, sick.Name)
	if s.Health != "unhealthy" || s.Inspected == nil || s.Inspected.HealthLog == "" {
		t.Errorf("sick: health %q inspected %+v; want unhealthy with a health log", s.Health, s.Inspected)
	}
	if i := findContainer(t, obs, idle.Name); i.State != "created" || i.Inspected != nil {
		t.Errorf("idle: state %q inspected %+v", i.State, i.Inspected)
	}
	if obs.Images[ref] != imageID {
		t.Errorf("Images[%s] = %q, want %s", ref, obs.Images[ref], imageID)
	}
	if !hasNetwork(obs, back) || !hasVolume(obs, fleet+"_data") {
		t.Errorf("observed networks/volumes lack %s / %s_data", back, fleet)
	}
	in, err := d.InspectContainer(ctx, webID)
	if err != nil || in.Name != web.Name || in.Health != "healthy" || in.ImageID != imageID ||
		!slices.Equal(in.Networks, []string{back}) || in.Inspected == nil || in.Inspected.StartedAt.IsZero() {
		t.Errorf("InspectContainer(web) = %+v, %v", in, err)
	}
	d.ResetCalls()
	obs, err = d.Observe(ctx, drift.ObserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Inspected: the unhealthy container, and whatever other tests on this
	// daemon left unsettled; never the in-sync ones.
	if n, want := inspects(d.Calls()), unsettled(obs); n != want {
		t.Errorf("inspects = %d, want %d (managed containers not settled by the list)", n, want)
	}
}

// unsettled counts the managed containers whose list entry does not settle
// their state: the ones Observe must inspect, and only those.
func unsettled(obs drift.Observed) int {
	n := 0
	for _, c := range obs.Containers {
		if c.Labels[fleets.LabelManaged] != "true" {
			continue
		}
		if c.Health == "unhealthy" || c.State == "exited" || c.State == "dead" || c.State == "restarting" {
			n++
		}
	}
	return n
}

func hasNetwork(obs drift.Observed, name string) bool {
	return slices.ContainsFunc(obs.Networks, func(n drift.Network) bool { return n.Name == name && n.Labels[fleets.LabelManaged] == "true" })
}

func hasVolume(obs drift.Observed, name string) bool {
	return slices.ContainsFunc(obs.Volumes, func(v drift.Volume) bool { return v.Name == name && v.Labels[fleets.LabelManaged] == "true" })
}

// An in-sync fleet costs the four list calls and nothing else.
func TestObserveInSyncCallCount(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "insync")
	net := ensureNetwork(t, d, fleet, "default")
	for slot := 1; slot <= 3; slot++ {
		createStarted(t, d, instance(fleet, "web", slot, ref, net))
	}
	d.ResetCalls()
	obs, err := d.Observe(t.Context(), drift.ObserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Other tests on this daemon may leave containers that need an inspect.
	want := map[string]int{"GET /containers/json": 1, "GET /networks": 1, "GET /volumes": 1, "GET /images/json": 1}
	if n := unsettled(obs); n > 0 {
		want["GET /containers/{id}/json"] = n
	}
	if got := d.Calls(); !mapsEqual(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}

	d.ResetCalls()
	obs, err = d.Observe(t.Context(), drift.ObserveOptions{InspectAll: true})
	if err != nil {
		t.Fatal(err)
	}
	managed := 0
	for _, c := range obs.Containers {
		if c.Labels[fleets.LabelManaged] == "true" {
			managed++
		}
		if c.Labels[fleets.LabelFleet] == fleet && (c.Inspected == nil || c.Inspected.RestartPolicy != "no") {
			t.Errorf("InspectAll: %s inspected %+v", c.Name, c.Inspected)
		}
	}
	if n := inspects(d.Calls()); n != managed {
		t.Errorf("InspectAll: %d inspects for %d managed containers", n, managed)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// On API < 1.44 the container is created on one network and connected to
// the other before start; both carry the service alias and the name.
func TestCreateTwoNetworks(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "twonets")
	front, back := ensureNetwork(t, d, fleet, "front"), ensureNetwork(t, d, fleet, "back")
	inst := instance(fleet, "api", 1, ref, front, back)
	d.ResetCalls()
	id := createStarted(t, d, inst)
	if d.APIVersion() < "1.44" && d.Calls()["POST /networks/{id}/connect"] != 1 {
		t.Errorf("API %s: want one network connect, calls %v", d.APIVersion(), d.Calls())
	}
	ctr, err := cli.ContainerInspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{front, back} {
		ep := ctr.NetworkSettings.Networks[n]
		if ep == nil {
			t.Errorf("not attached to %s: %v", n, ctr.NetworkSettings.Networks)
			continue
		}
		if !slices.Contains(ep.Aliases, "api") || !slices.Contains(ep.Aliases, inst.Name) {
			t.Errorf("%s aliases = %v, want api and %s", n, ep.Aliases, inst.Name)
		}
	}
	nw, err := cli.NetworkInspect(t.Context(), front, network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if nw.Labels[fleets.LabelManaged] != "true" || nw.Labels[fleets.LabelComposeNetwork] != "front" || nw.Labels[fleets.LabelComposeProject] != fleet {
		t.Errorf("network labels = %v", nw.Labels)
	}
}

func TestSecretsCopiedIn(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "secrets")
	src := filepath.Join(t.TempDir(), "db_password")
	if err := os.WriteFile(src, []byte("hunter2"), 0o600); err != nil {
		t.Fatal(err)
	}
	net := ensureNetwork(t, d, fleet, "default")
	inst := instance(fleet, "db", 1, ref, net)
	inst.Spec.Secrets = []fleets.FileRef{{Name: "db_password", Target: "/run/secrets/db_password", Mode: 0o400, Source: src}}
	inst.Spec.Configs = []fleets.FileRef{{Name: "conf", Target: "/etc/app/app.conf", Source: src}}
	id := create(t, d, inst)
	for target, mode := range map[string]int64{"/run/secrets/db_password": 0o400, "/etc/app/app.conf": 0o444} {
		data, gotMode := copyOut(t, cli, id, target)
		if data != "hunter2" || gotMode != mode {
			t.Errorf("%s: %q mode %o, want the secret with mode %o", target, data, gotMode, mode)
		}
	}
	createStarted(t, d, instance(fleet, "db", 2, ref, net)) // and the image still starts

	// Docker refuses to copy into a read-only rootfs: the file is bound.
	ro := instance(fleet, "db", 3, ref, net)
	ro.Spec.ReadOnly = true
	ro.Spec.Secrets = inst.Spec.Secrets
	roID := createStarted(t, d, ro)
	if data, _ := copyOut(t, cli, roID, "/run/secrets/db_password"); data != "hunter2" {
		t.Errorf("read-only rootfs: secret = %q", data)
	}
}

func copyOut(t *testing.T, cli *client.Client, id, path string) (string, int64) {
	t.Helper()
	rc, _, err := cli.CopyFromContainer(t.Context(), id, path)
	if err != nil {
		t.Fatalf("copy %s out: %v", path, err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	hdr, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(tr)
	return string(data), hdr.Mode & 0o7777
}

// runUnmanaged creates and starts a container without fleetd's labels, as a
// user would, on a network of its own (not the default bridge).
func runUnmanaged(t *testing.T, cli *client.Client, d *engine.Docker, name, ref string) string {
	t.Helper()
	net := ensureNetwork(t, d, name, "raw")
	labels := map[string]string{dockertest.LabelTestRun: dockertest.RunID()}
	created, err := cli.ContainerCreate(t.Context(), &container.Config{Image: ref, Labels: labels},
		&container.HostConfig{NetworkMode: container.NetworkMode(net)}, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ContainerStart(t.Context(), created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	return created.ID
}

// fleetd refuses to change a container it did not create and leaves it as
// it was.
func TestUnmanagedContainerRefused(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ctx := t.Context()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	name := dockertest.Name(t, "unmanaged")
	id := runUnmanaged(t, cli, d, name, ref)

	ops := map[string]func() error{
		"stop":    func() error { return d.StopContainer(ctx, id, time.Second) },
		"restart": func() error { return d.RestartContainer(ctx, id, time.Second) },
		"remove":  func() error { return d.RemoveContainer(ctx, id) },
		"rename":  func() error { return d.RenameContainer(ctx, id, name+"-x") },
		"unpause": func() error { return d.UnpauseContainer(ctx, id) },
		"pause":   func() error { return d.PauseContainer(ctx, id) },
		"kill":    func() error { return d.KillContainer(ctx, id, "SIGKILL") },
		"update":  func() error { return d.UpdateResources(ctx, id, fleets.Spec{Restart: "always"}) },
		"connect": func() error {
			return d.ConnectNetwork(ctx, id, fleets.NetworkAttachment{Network: "bridge"}, name)
		},
	}
	for op, f := range ops {
		if err := f(); !errors.Is(err, engine.ErrNotManaged) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want ErrNotManaged naming %s", op, err, name)
		}
	}
	ctr, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !ctr.State.Running || ctr.State.Paused || ctr.Name != "/"+name || ctr.RestartCount != 0 || ctr.HostConfig.RestartPolicy.Name == "always" {
		t.Errorf("unmanaged container was touched: %+v, name %s", ctr.State, ctr.Name)
	}

	// Its name is a conflict for a managed container that wants it.
	inst := instance("x", "y", 1, ref)
	inst.Name = name
	if _, err := d.CreateContainer(ctx, inst); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("create over an unmanaged name: err = %v, want ErrConflict", err)
	}
	obs, err := d.Observe(ctx, drift.ObserveOptions{InspectAll: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := findContainer(t, obs, name); c.Inspected != nil {
		t.Errorf("unmanaged container was inspected")
	}
}

func TestUnmanagedNetworkRefused(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ctx := t.Context()
	name := dockertest.Name(t, "rawnet")
	if _, err := cli.NetworkCreate(ctx, name, network.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := d.EnsureNetwork(ctx, "f", fleets.Network{Key: "n", Name: name}); !errors.Is(err, engine.ErrConflict) {
		t.Errorf("ensure over an unmanaged network: err = %v, want ErrConflict", err)
	}
	if err := d.EnsureNetwork(ctx, "f", fleets.Network{Key: "n", Name: name, External: true}); err != nil {
		t.Errorf("external network that exists: %v", err)
	}
	if err := d.EnsureNetwork(ctx, "f", fleets.Network{Key: "n", Name: name + "-none", External: true}); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("missing external network: err = %v, want ErrNotFound", err)
	}
	if err := d.RemoveNetwork(ctx, name); !errors.Is(err, engine.ErrNotManaged) {
		t.Errorf("remove unmanaged network: err = %v, want ErrNotManaged", err)
	}
	if _, err := cli.NetworkInspect(ctx, name, network.InspectOptions{}); err != nil {
		t.Errorf("unmanaged network is gone: %v", err)
	}
	managed := ensureNetwork(t, d, dockertest.Name(t, "netfleet"), "default")
	if err := d.RemoveNetwork(ctx, managed); err != nil {
		t.Errorf("remove managed network: %v", err)
	}
}

func TestLifecycle(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ctx := t.Context()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "life")
	inst := instance(fleet, "web", 1, ref, ensureNetwork(t, d, fleet, "default"))
	id := createStarted(t, d, inst)
	steps := []struct {
		name string
		op   func() error
		want string
	}{
		{"pause", func() error { return d.PauseContainer(ctx, id) }, "paused"},
		{"unpause", func() error { return d.UnpauseContainer(ctx, id) }, "running"},
		{"restart", func() error { return d.RestartContainer(ctx, id, time.Second) }, "running"},
		{"kill", func() error { return d.KillContainer(ctx, id, "SIGKILL") }, "exited"},
		{"start", func() error { return d.StartContainer(ctx, id) }, "running"},
		{"stop", func() error { return d.StopContainer(ctx, id, time.Second) }, "exited"},
		{"rename", func() error { return d.RenameContainer(ctx, id, inst.Name+"-old") }, "exited"},
	}
	for _, s := range steps {
		if err := s.op(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		dockertest.WaitState(t, cli, id, s.want, 10*time.Second)
	}
	obs, err := d.Observe(ctx, drift.ObserveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := findContainer(t, obs, inst.Name+"-old")
	if c.Inspected == nil || c.Inspected.FinishedAt.IsZero() || c.Inspected.RestartPolicy != "no" {
		t.Errorf("exited container: inspected %+v, want exit details", c.Inspected)
	}
	// Remove stops a running container first and keeps its volumes.
	if err := d.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, id); !client.IsErrNotFound(err) {
		t.Errorf("container still there after remove: %v", err)
	}
	if err := d.RemoveContainer(ctx, id); err != nil {
		t.Errorf("removing a removed container: %v", err)
	}
}

func TestUpdateResources(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ctx := t.Context()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "update")
	inst := instance(fleet, "web", 1, ref, ensureNetwork(t, d, fleet, "default"))
	inst.Spec.Resources = fleets.Resources{Memory: 64 << 20, NanoCPUs: 5e8, PidsLimit: 50}
	id := createStarted(t, d, inst)

	// Raising memory above the current swap limit (2 x 64 MiB) works.
	spec := inst.Spec
	spec.Restart = "on-failure:3"
	spec.Resources = fleets.Resources{Memory: 256 << 20, MemoryReservation: 128 << 20, NanoCPUs: 1e9, CPUShares: 512, PidsLimit: 100}
	if err := d.UpdateResources(ctx, id, spec); err != nil {
		t.Fatal(err)
	}
	obs, err := d.Observe(ctx, drift.ObserveOptions{Inspect: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	got := findContainer(t, obs, inst.Name).Inspected
	want := drift.Inspected{Memory: 256 << 20, MemoryReservation: 128 << 20, NanoCPUs: 1e9, CPUShares: 512, PidsLimit: 100, RestartPolicy: "on-failure:3"}
	if got == nil || got.Memory != want.Memory || got.MemoryReservation != want.MemoryReservation || got.NanoCPUs != want.NanoCPUs ||
		got.CPUShares != want.CPUShares || got.PidsLimit != want.PidsLimit || got.RestartPolicy != want.RestartPolicy {
		t.Errorf("after update: %+v, want %+v", got, want)
	}
	spec.Resources = fleets.Resources{Memory: 32 << 20, MemoryReservation: 16 << 20, NanoCPUs: 2e8, CPUShares: 256}
	if err := d.UpdateResources(ctx, id, spec); err != nil {
		t.Errorf("lowering limits: %v", err)
	}
	if ctr, err := cli.ContainerInspect(ctx, id); err != nil || ctr.HostConfig.Memory != 32<<20 || pids(ctr.HostConfig.PidsLimit) != 0 {
		t.Errorf("after lowering: %v, memory %d pids %d", err, ctr.HostConfig.Memory, pids(ctr.HostConfig.PidsLimit))
	}
	// Removing a limit is something docker update cannot do.
	if err := d.UpdateResources(ctx, id, fleets.Spec{Restart: "no"}); !errors.Is(err, engine.ErrUpdateUnsupported) {
		t.Errorf("removing limits: err = %v, want ErrUpdateUnsupported", err)
	}
}

func pids(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

func TestPullFromLocalRegistry(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ctx := t.Context()
	_, id := dockertest.TestImage(t, cli, "v1")
	registry := dockertest.StartRegistry(t)
	ref := dockertest.Push(t, cli, id, registry, dockertest.Name(t, "pulled")+":v1")
	if _, err := cli.ImageRemove(ctx, ref, image.RemoveOptions{}); err != nil { // untag only
		t.Fatal(err)
	}
	got, err := d.PullImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Errorf("pulled %s, want %s", got, id)
	}
	missing := registry + "/" + dockertest.Name(t, "pulled") + ":nope"
	_, err = d.PullImage(ctx, missing)
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "from "+registry) {
		t.Errorf("pull of a missing tag: err = %v, want one naming %s and %s", err, missing, registry)
	}
	t.Log(err)
}

func TestBuild(t *testing.T) {
	cli, d := setup(t)
	pruneBuildCache(t, cli)
	t.Parallel()
	ctx := t.Context()
	dir := t.TempDir()
	writeFile(t, dir, "Dockerfile", "FROM scratch\nARG GREETING\nCOPY hello.txt /hello.txt\nLABEL greeting=$GREETING\n")
	writeFile(t, dir, "hello.txt", "hello")
	writeFile(t, dir, ".dockerignore", "*.log\n")
	writeFile(t, dir, "big.log", "ignored")
	ref := dockertest.Name(t, "built") + ":1"
	id, err := d.BuildImage(ctx, fleets.Build{Context: dir, ContextDir: "app", Args: map[string]string{"GREETING": "hi"}}, ref, nil)
	if err != nil {
		t.Fatal(err)
	}
	img, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != id || img.Config.Labels[fleets.LabelManaged] != "true" || img.Config.Labels["greeting"] != "hi" {
		t.Errorf("built %s: id %s labels %v", id, img.ID, img.Config.Labels)
	}

	writeFile(t, dir, "Dockerfile", "FROM scratch\nCOPY big.log /big.log\n")
	_, err = d.BuildImage(ctx, fleets.Build{Context: dir, ContextDir: "app"}, dockertest.Name(t, "broken")+":1", nil)
	if err == nil || !strings.Contains(err.Error(), "big.log") {
		t.Errorf("build copying an ignored file: err = %v, want the daemon's message naming big.log", err)
	}
	t.Log(err)
}

func writeFile(t *testing.T, dir, name, data string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestEvents(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "events")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	events, errs := d.Events(ctx)
	raw := dockertest.Name(t, "events-raw")
	runUnmanaged(t, cli, d, raw, ref) // shows up, as unmanaged
	id := createStarted(t, d, instance(fleet, "web", 1, ref, ensureNetwork(t, d, fleet, "default")))
	if err := d.StopContainer(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 3 {
		select {
		case ev := <-events:
			if ev.Name == raw && (ev.Managed || ev.Fleet != "") {
				t.Errorf("event of an unmanaged container marked managed: %+v", ev)
			}
			if ev.Fleet != fleet {
				continue // another test's fleet
			}
			if ev.ContainerID != id || ev.Service != "web" || !ev.Managed || ev.Type != "container" || ev.Time.IsZero() {
				t.Errorf("event %+v", ev)
			}
			got = append(got, ev.Action)
		case err := <-errs:
			t.Fatalf("events: %v (got %v)", err, got)
		}
	}
	if want := []string{"start", "die", "stop"}; !slices.Equal(got, want) {
		t.Errorf("actions = %v, want %v", got, want)
	}
}

// Namespaces and cgroup settings reach the engine, and the engine runs
// the container with them; a runtime the engine does not have is a clear
// error naming it.
func TestCreateNamespacesAndCgroups(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "ns")
	inst := instance(fleet, "web", 1, ref)
	sp := &inst.Spec
	sp.Pid, sp.Ipc, sp.CPUSet, sp.OomScoreAdj, sp.DNSOpt = "host", "shareable", "0", 500, []string{"ndots:2"}
	id := createStarted(t, d, inst)
	ins, err := cli.ContainerInspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	h := ins.HostConfig
	if h.PidMode != "host" || h.IpcMode != "shareable" || h.CpusetCpus != "0" || h.OomScoreAdj != 500 || len(h.DNSOptions) != 1 {
		t.Errorf("host config %+v", h)
	}
	if !ins.State.Running {
		t.Errorf("the container does not run: %+v", ins.State)
	}

	bad := instance(fleet, "odd", 1, ref)
	bad.Spec.Runtime = "no-such-runtime"
	_, err = d.CreateContainer(t.Context(), bad)
	if err == nil || !strings.Contains(err.Error(), "no-such-runtime") {
		t.Errorf("an unknown runtime: %v, want an error naming it", err)
	}
}

// TestCreatePeersAndDevices creates containers that join another service's
// namespaces and volumes, as docker compose resolves service:<name>, and
// checks what this engine cannot run fails with an error naming it.
func TestCreatePeersAndDevices(t *testing.T) {
	cli, d := setup(t)
	t.Parallel()
	ctx := t.Context()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "peers")
	db := instance(fleet, "db", 1, ref, ensureNetwork(t, d, fleet, "default"))
	db.Spec.Platform = "linux/amd64"
	dbID := createStarted(t, d, db)

	side := instance(fleet, "side", 1, ref)
	side.Spec.NetworkMode, side.Spec.Pid, side.Spec.VolumesFrom = "service:db", "service:db", []string{"service:db:ro"}
	side.Spec.Environment = map[string]string{"PORT": "9090"} // db listens on 8080 in the same namespace
	sideID := createStarted(t, d, side)
	ins, err := cli.ContainerInspect(ctx, sideID)
	if err != nil {
		t.Fatal(err)
	}
	h := ins.HostConfig
	if string(h.NetworkMode) != "container:"+dbID || string(h.PidMode) != "container:"+dbID || !slices.Equal(h.VolumesFrom, []string{dbID + ":ro"}) {
		t.Errorf("joined %q, pid %q, volumes from %q; want db's container %s", h.NetworkMode, h.PidMode, h.VolumesFrom, dbID)
	}
	if got := ins.Config.Labels[fleets.LabelPeers]; got != "db="+dbID {
		t.Errorf("peers label %q, want db=%s", got, dbID)
	}
	if !ins.State.Running {
		t.Errorf("the joining container does not run: %+v", ins.State)
	}

	lonely := instance(fleet, "lonely", 1, ref)
	lonely.Spec.NetworkMode = "service:nobody"
	if _, err := d.CreateContainer(ctx, lonely); err == nil || !strings.Contains(err.Error(), "no running container of service nobody") {
		t.Errorf("no peer running: err = %v", err)
	}

	gpu := instance(fleet, "gpu", 1, ref)
	gpu.Spec.DeviceRequests = []fleets.DeviceRequest{{Count: -1, Capabilities: []string{"gpu"}}}
	id, err := d.CreateContainer(ctx, gpu)
	if err == nil {
		err = d.StartContainer(ctx, id)
	}
	if err == nil {
		t.Log("this engine has a GPU driver: the device request was honoured")
	} else if !strings.Contains(err.Error(), "gpu") || !strings.Contains(err.Error(), gpu.Name) {
		t.Errorf("GPU request on an engine without a GPU driver: err = %v, want one naming the container and gpu", err)
	}

	arm := instance(fleet, "arm", 1, ref)
	arm.Spec.Platform = "linux/arm64"
	if _, err := d.CreateContainer(ctx, arm); err == nil || !strings.Contains(err.Error(), "platform") {
		t.Errorf("an image for another platform: err = %v, want one naming the platform", err)
	}

	ann := instance(fleet, "ann", 1, ref)
	ann.Spec.Annotations = map[string]string{"com.example.team": "shop"}
	_, err = d.CreateContainer(ctx, ann)
	if versions.LessThan(cli.ClientVersion(), "1.43") {
		if err == nil || !strings.Contains(err.Error(), "annotations") || !fault.IsPermanent(err) {
			t.Errorf("annotations on API %s: err = %v, want a permanent error naming annotations", cli.ClientVersion(), err)
		}
	} else if err != nil {
		t.Errorf("annotations on API %s: %v", cli.ClientVersion(), err)
	}
}
