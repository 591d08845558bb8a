package enginetest_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

func testFleet(t *testing.T) fleets.Fleet {
	spec := fleets.Spec{
		Image:       "app:v1",
		Environment: map[string]string{"A": "1"},
		Networks:    []fleets.NetworkAttachment{{Network: "web_default", Aliases: []string{"api"}}},
		Restart:     "always",
		Resources:   fleets.Resources{Memory: 64 << 20},
		Healthcheck: &fleets.Healthcheck{Test: []string{"CMD", "true"}},
	}
	hash, err := fleets.HashSpec(fleets.HashVersion, spec)
	if err != nil {
		t.Fatal(err)
	}
	return fleets.Fleet{
		Name: "web", Targets: true,
		Services: []fleets.Service{{Name: "api", Spec: spec, Hash: hash, Replicas: 2, Targets: true}},
		Networks: []fleets.Network{{Key: "default", Name: "web_default"}},
	}
}

// instance is what the planner hands CreateContainer for a slot.
func instance(t *testing.T, f fleets.Fleet, svc fleets.Service, slot int) fleets.Instance {
	spec, err := fleets.EncodeSpec(svc.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return fleets.Instance{
		Name: drift.ContainerName(f.Name, svc, slot), Fleet: f.Name, Service: svc.Name, Slot: slot, Spec: svc.Spec,
		Labels: map[string]string{
			fleets.LabelManaged: "true", fleets.LabelFleet: f.Name, fleets.LabelService: svc.Name,
			fleets.LabelSlot: strconv.Itoa(slot), fleets.LabelSpecHash: svc.Hash,
			fleets.LabelHashVersion: fleets.HashVersion, fleets.LabelSpec: spec,
		},
	}
}

// converge applies what a plan for an empty host would, and returns the
// container IDs by slot.
func converge(t *testing.T, e *enginetest.Fake, f fleets.Fleet) []string {
	ctx := t.Context()
	e.AddRemoteImage("app:v1", "sha256:1111111111111111")
	must(t, e.EnsureNetwork(ctx, f.Name, f.Networks[0]))
	if _, err := e.PullImage(ctx, "app:v1"); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for slot := 1; slot <= f.Services[0].Replicas; slot++ {
		id, err := e.CreateContainer(ctx, instance(t, f, f.Services[0], slot))
		must(t, err)
		must(t, e.StartContainer(ctx, id))
		ids = append(ids, id)
	}
	return ids
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func diff(t *testing.T, e *enginetest.Fake, f fleets.Fleet, opts drift.ObserveOptions) string {
	t.Helper()
	obs, err := e.Observe(t.Context(), opts)
	must(t, err)
	var b strings.Builder
	for _, it := range drift.Diff([]fleets.Fleet{f}, obs) {
		b.WriteString(it.Container + " " + string(it.Kind))
		for _, fd := range it.Fields {
			b.WriteString(" " + fd.Field + "=" + fd.Have + "→" + fd.Want)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func TestConvergedFakeIsInSync(t *testing.T) {
	e := enginetest.New(t)
	f := testFleet(t)
	converge(t, e, f)
	if got := diff(t, e, f, drift.ObserveOptions{InspectAll: true}); got != "" {
		t.Fatalf("drift after converging:\n%s", got)
	}
	want := []string{
		"EnsureNetwork web_default", "PullImage app:v1",
		"CreateContainer web-api-1", "StartContainer web-api-1",
		"CreateContainer web-api-2", "StartContainer web-api-2",
		"Observe",
	}
	if got := e.Calls(); !slices.Equal(got, want) {
		t.Errorf("Calls = %q, want %q", got, want)
	}
}

func TestOutOfBandChangesShowAsDrift(t *testing.T) {
	f := testFleet(t)
	tests := []struct {
		name   string
		change func(e *enginetest.Fake)
		want   string
	}{
		{"stop", func(e *enginetest.Fake) { e.Stop("web-api-1") }, "web-api-1 stopped\n"},
		{"oom", func(e *enginetest.Fake) { e.OOMKill("web-api-1") }, "web-api-1 stopped\n"},
		{"pause", func(e *enginetest.Fake) { e.Pause("web-api-2") }, "web-api-2 paused\n"},
		{"unhealthy", func(e *enginetest.Fake) { e.SetHealth("web-api-2", "unhealthy", "boom") }, "web-api-2 unhealthy\n"},
		{"rename", func(e *enginetest.Fake) { e.Rename("web-api-2", "x") }, "web-api-2 modified name=x→web-api-2\n"},
		{"disconnect", func(e *enginetest.Fake) { e.Disconnect("web-api-1", "web_default") },
			"web-api-1 modified networks.web_default=disconnected→connected\n"},
		{"docker update", func(e *enginetest.Fake) {
			e.SetResources("web-api-1", fleets.Resources{Memory: 1 << 30})
			e.SetRestart("web-api-1", "no")
		}, "web-api-1 modified resources.memory=1073741824→67108864 restart=no→always\n"},
		{"docker rm and squat", func(e *enginetest.Fake) {
			e.Remove("web-api-1")
			e.AddUnmanaged("web-api-1", nil)
		}, "web-api-1 missing\nweb-api-1 conflict\n"},
		{"tag moved", func(e *enginetest.Fake) { e.AddImage("app:v1", "sha256:feedfacefeedface") },
			"web-api-1 image image_id=111111111111→feedfacefeed\nweb-api-2 image image_id=111111111111→feedfacefeed\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := enginetest.New(t)
			converge(t, e, f)
			tt.change(e)
			got := diff(t, e, f, drift.ObserveOptions{InspectAll: true})
			if got != tt.want {
				t.Errorf("drift:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestHealing(t *testing.T) {
	ctx := t.Context()
	e := enginetest.New(t)
	f := testFleet(t)
	ids := converge(t, e, f)
	e.Stop("web-api-1")
	e.Pause("web-api-2")
	e.Disconnect("web-api-2", "web_default")
	must(t, e.StartContainer(ctx, ids[0]))
	must(t, e.UnpauseContainer(ctx, ids[1]))
	must(t, e.ConnectNetwork(ctx, ids[1], f.Services[0].Spec.Networks[0], "web-api-2"))
	if got := diff(t, e, f, drift.ObserveOptions{InspectAll: true}); got != "" {
		t.Fatalf("drift after healing:\n%s", got)
	}
}

func TestDockerRules(t *testing.T) {
	ctx := t.Context()
	e := enginetest.New(t)
	f := testFleet(t)
	ids := converge(t, e, f)
	svc := f.Services[0]
	squatter := e.AddUnmanaged("squatter", map[string]string{"x": "y"})

	check := func(name string, err, target error) {
		t.Helper()
		if target == nil && err == nil {
			t.Errorf("%s: no error", name)
		} else if target != nil && !errors.Is(err, target) {
			t.Errorf("%s: err = %v, want %v", name, err, target)
		}
	}
	_, err := e.CreateContainer(ctx, instance(t, f, svc, 1))
	check("create with a managed name in use", err, nil)
	inst := instance(t, f, svc, 3)
	inst.Name = "squatter"
	_, err = e.CreateContainer(ctx, inst)
	check("create over an unmanaged container", err, enginetest.ErrConflict)
	inst = instance(t, f, svc, 3)
	inst.Spec.Image = "app:absent"
	_, err = e.CreateContainer(ctx, inst)
	check("create without the image", err, enginetest.ErrNotFound)
	inst = instance(t, f, svc, 3)
	inst.Spec.Networks = []fleets.NetworkAttachment{{Network: "nope"}}
	_, err = e.CreateContainer(ctx, inst)
	check("create on a missing network", err, enginetest.ErrNotFound)

	check("remove running", e.RemoveContainer(ctx, ids[0]), nil)
	check("rename onto unmanaged", e.RenameContainer(ctx, ids[0], "squatter"), enginetest.ErrConflict)
	check("rename onto managed", e.RenameContainer(ctx, ids[0], "web-api-2"), nil)
	check("unpause running", e.UnpauseContainer(ctx, ids[0]), nil)
	check("connect twice", e.ConnectNetwork(ctx, ids[0], svc.Spec.Networks[0], "web-api-1"), nil)
	for _, op := range []func() error{
		func() error { return e.StartContainer(ctx, squatter) },
		func() error { return e.StopContainer(ctx, "squatter", time.Second) },
		func() error { return e.RestartContainer(ctx, squatter, time.Second) },
		func() error { return e.RemoveContainer(ctx, squatter) },
		func() error { return e.RenameContainer(ctx, squatter, "mine") },
		func() error { return e.UnpauseContainer(ctx, squatter) },
		func() error { return e.UpdateResources(ctx, squatter, svc.Spec) },
		func() error { return e.ConnectNetwork(ctx, squatter, svc.Spec.Networks[0], "squatter") },
	} {
		check("change an unmanaged container", op(), enginetest.ErrNotManaged)
	}
	check("remove a network in use", e.RemoveNetwork(ctx, "web_default"), enginetest.ErrInUse)
	e.AddUnmanagedNetwork("theirs")
	check("remove an unmanaged network", e.RemoveNetwork(ctx, "theirs"), enginetest.ErrNotManaged)
	check("ensure over an unmanaged network", e.EnsureNetwork(ctx, "web", fleets.Network{Name: "theirs"}), enginetest.ErrConflict)
	check("ensure a missing external network", e.EnsureNetwork(ctx, "web", fleets.Network{Name: "ext", External: true}), enginetest.ErrNotFound)
	_, err = e.PullImage(ctx, "app:unpushed")
	check("pull an unknown ref", err, enginetest.ErrNotFound)
	check("unset a limit with update", e.UpdateResources(ctx, ids[0], fleets.Spec{}), enginetest.ErrUpdateUnsupported)

	// Stop, remove, remove again; then the network can go.
	for _, id := range ids {
		must(t, e.StopContainer(ctx, id, time.Second))
		must(t, e.RemoveContainer(ctx, id))
		must(t, e.RemoveContainer(ctx, id))
	}
	must(t, e.RemoveNetwork(ctx, "web_default"))
	must(t, e.RemoveNetwork(ctx, "web_default"))
	if got := e.Names(); !slices.Equal(got, []string{"squatter"}) {
		t.Errorf("Names = %q", got)
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	b := fleets.Build{ContextHash: "abc", Dockerfile: "Dockerfile", Args: map[string]string{"V": "1"}}
	id1, err := enginetest.New(t).BuildImage(t.Context(), b, "web-api:abc", nil)
	must(t, err)
	id2, err := enginetest.New(t).BuildImage(t.Context(), b, "web-api:abc", nil)
	must(t, err)
	b.Args["V"] = "2"
	id3, err := enginetest.New(t).BuildImage(t.Context(), b, "web-api:abc", nil)
	must(t, err)
	if id1 != id2 || id1 == id3 || !strings.HasPrefix(id1, "sha256:") {
		t.Errorf("build IDs %s %s %s", id1, id2, id3)
	}
}

func TestFailureInjection(t *testing.T) {
	ctx := t.Context()
	e := enginetest.New(t)
	f := testFleet(t)
	ids := converge(t, e, f)
	e.ResetCalls()
	boom := errors.New("boom")
	e.FailOnce("StopContainer", "web-api-2", boom)
	e.FailOn("PullImage", "app:v2", boom)

	if err := e.StopContainer(ctx, ids[1], time.Second); !errors.Is(err, boom) {
		t.Fatalf("first stop: err = %v", err)
	}
	if c, _ := e.Container("web-api-2"); c.State != "running" {
		t.Errorf("a failed stop changed the state to %s", c.State)
	}
	must(t, e.StopContainer(ctx, ids[1], time.Second))
	for range 2 {
		if _, err := e.PullImage(ctx, "app:v2"); !errors.Is(err, boom) {
			t.Fatalf("pull: err = %v", err)
		}
	}
	e.ClearFailures()
	e.AddRemoteImage("app:v2", "")
	_, err := e.PullImage(ctx, "app:v2")
	must(t, err)
	want := []string{
		"StopContainer web-api-2 -> error: stop container web-api-2: boom",
		"StopContainer web-api-2",
		"PullImage app:v2 -> error: pull app:v2: boom",
		"PullImage app:v2 -> error: pull app:v2: boom",
		"PullImage app:v2",
	}
	if got := e.Calls(); !slices.Equal(got, want) {
		t.Errorf("Calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestObserveInspectsOnlyUnsettled(t *testing.T) {
	e := enginetest.New(t)
	converge(t, e, testFleet(t))
	e.AddUnmanaged("other", nil)
	e.Kill("web-api-2", 137)
	inspected := func(opts drift.ObserveOptions) []string {
		obs, err := e.Observe(t.Context(), opts)
		must(t, err)
		var out []string
		for _, c := range obs.Containers {
			if c.Inspected != nil {
				out = append(out, c.Name+":"+c.Status)
			}
		}
		return out
	}
	if got := inspected(drift.ObserveOptions{}); !slices.Equal(got, []string{"web-api-2:Exited (137)"}) {
		t.Errorf("default observe inspected %q", got)
	}
	if got := inspected(drift.ObserveOptions{InspectAll: true}); !slices.Equal(got, []string{"web-api-1:Up (healthy)", "web-api-2:Exited (137)"}) {
		t.Errorf("InspectAll inspected %q", got)
	}
}

func TestOnStartAndWaits(t *testing.T) {
	ctx := t.Context()
	e := enginetest.New(t)
	f := testFleet(t)
	e.OnStart(func(c *drift.Container) {
		if c.Name == "web-api-2" {
			c.Health = "unhealthy"
		}
	})
	ids := converge(t, e, f)
	must(t, e.WaitHealthy(ctx, ids[0], time.Second))
	if err := e.WaitHealthy(ctx, ids[1], time.Second); err == nil {
		t.Error("WaitHealthy of an unhealthy container succeeded")
	}
	e.SetHealth("web-api-1", "starting", "")
	if err := e.WaitHealthy(ctx, ids[0], 20*time.Millisecond); !errors.Is(err, enginetest.ErrTimeout) {
		t.Errorf("WaitHealthy of a starting container: err = %v", err)
	}
	go func() {
		time.Sleep(10 * time.Millisecond)
		e.Stop("web-api-1")
	}()
	must(t, e.WaitExit(ctx, ids[0], time.Second))
	e.Kill("web-api-2", 3)
	if err := e.WaitExit(ctx, ids[1], time.Second); err == nil || !strings.Contains(err.Error(), "code 3") {
		t.Errorf("WaitExit of a failed container: err = %v", err)
	}
}

// What the conformance suite does not undo: an outage ends with
// SetDown(false) (a failure injected meanwhile still waits for its call),
// a held port is free again after ReleasePort, and a port held on the
// wildcard address blocks a specific one.
func TestDownAndReleasedPort(t *testing.T) {
	ctx := t.Context()
	e := enginetest.New(t)
	f := testFleet(t)
	ids := converge(t, e, f)
	e.SetDown(true)
	e.FailOnce("StopContainer", "", errors.New("boom"))
	if err := e.StopContainer(ctx, ids[0], time.Second); !errors.Is(err, enginetest.ErrUnreachable) {
		t.Errorf("stop while down: err = %v, want ErrUnreachable", err)
	}
	e.SetDown(false)
	if err := e.StopContainer(ctx, ids[0], time.Second); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("stop after the outage: err = %v, want the injected failure", err)
	}
	must(t, e.StopContainer(ctx, ids[0], time.Second))

	e.HoldPort("0.0.0.0:8080")
	inst := instance(t, f, f.Services[0], 3)
	inst.Spec.Ports = []fleets.Port{{Target: 80, Published: "8080", HostIP: "127.0.0.1"}}
	id, err := e.CreateContainer(ctx, inst)
	must(t, err)
	err = e.StartContainer(ctx, id)
	if ft := fault.Of(err); err == nil || ft.Reason != fault.PortAllocated || ft.Object != "127.0.0.1:8080" {
		t.Errorf("start on a held port: err = %v, want PortAllocated 127.0.0.1:8080", err)
	}
	e.ReleasePort("0.0.0.0:8080")
	must(t, e.StartContainer(ctx, id))
}
