package conformance

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// waitTimeout bounds every wait a case makes; the real engine's test image
// is healthy within a second or two.
const waitTimeout = 30 * time.Second

// instance is replica slot of service in fleet as the planner makes it:
// fleetd's and Compose's labels (the engine adds io.fleetd.instance), the
// harness's image. It has no network (network mode "none", which spares
// the real engine the cost of a bridge endpoint): cases that need one
// attach it.
func instance(h Harness, fleet, service string, slot int) fleets.Instance {
	n := strconv.Itoa(slot)
	labels := map[string]string{
		fleets.LabelManaged: "true", fleets.LabelFleet: fleet, fleets.LabelService: service, fleets.LabelSlot: n,
		fleets.LabelComposeProject: fleet, fleets.LabelComposeService: service, fleets.LabelComposeNumber: n,
	}
	return fleets.Instance{
		Name:    fmt.Sprintf("%s-%s-%d", fleet, service, slot),
		Fleet:   fleet,
		Service: service,
		Slot:    slot,
		Spec:    fleets.Spec{Image: h.Image(), Restart: "no", StopGracePeriod: time.Second, NetworkMode: "none"},
		Labels:  labels,
	}
}

// publish makes inst publish container port 8080 on host port port, from
// the default bridge network.
func publish(inst *fleets.Instance, port string) {
	inst.Spec.NetworkMode = ""
	inst.Spec.Ports = []fleets.Port{{Target: 8080, Published: port, Protocol: "tcp"}}
}

// FreePort returns a TCP port that nothing on this host listens on now,
// for a harness's HoldPort.
func FreePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func create(t *testing.T, e reconcile.Engine, inst fleets.Instance) string {
	t.Helper()
	id, err := e.CreateContainer(t.Context(), inst)
	if err != nil {
		t.Fatalf("create %s: %v", inst.Name, err)
	}
	return id
}

func createStarted(t *testing.T, e reconcile.Engine, inst fleets.Instance) string {
	t.Helper()
	id := create(t, e, inst)
	if err := e.StartContainer(t.Context(), id); err != nil {
		t.Fatalf("start %s: %v", inst.Name, err)
	}
	return id
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func observe(t *testing.T, e reconcile.Engine) drift.Observed {
	t.Helper()
	obs, err := e.Observe(t.Context(), drift.ObserveOptions{})
	if err != nil {
		t.Fatalf("observe: %v", err)
	}
	return obs
}

// lookup observes e and returns the container named name, if any.
func lookup(t *testing.T, e reconcile.Engine, name string) (drift.Container, bool) {
	t.Helper()
	for _, c := range observe(t, e).Containers {
		if c.Name == name {
			return c, true
		}
	}
	return drift.Container{}, false
}

// mustLookup is lookup of a container that must exist.
func mustLookup(t *testing.T, e reconcile.Engine, name string) drift.Container {
	t.Helper()
	c, ok := lookup(t, e, name)
	if !ok {
		t.Fatalf("observed no container %s", name)
	}
	return c
}

// classified is how a failure must be classified (package fault).
type classified struct {
	class  fault.Class
	reason fault.Reason
	object string
}

func permanent(r fault.Reason, object string) classified {
	return classified{fault.Permanent, r, object}
}

func retryable(r fault.Reason, object string) classified {
	return classified{fault.Retryable, r, object}
}

func (c classified) String() string {
	return fmt.Sprintf("%s %s (object %q)", c.class, c.reason, c.object)
}

// wantFault fails t unless err is a failure classified as want.
func wantFault(t *testing.T, what string, err error, want classified) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error, want %s", what, want)
		return
	}
	f := fault.Of(err)
	if got := (classified{f.Class, f.Reason, f.Object}); got != want {
		t.Errorf("%s: %s, want %s\n\terror: %v", what, got, want, err)
	}
}
