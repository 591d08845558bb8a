package enginetest_test

import (
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/conformance"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// crashLabel marks an instance whose container the OnStart hook makes
// exit as it starts.
const crashLabel = "conformance.crash"

// TestConformance holds the fake to the suite engine.Docker passes.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T) conformance.Harness {
		e := enginetest.New(t)
		h := &fakeHarness{t: t, e: e}
		e.AddImage(h.Image(), "")
		e.OnStart(func(c *drift.Container) {
			if c.Labels[crashLabel] == "true" {
				c.State = "exited"
			}
		})
		return h
	})
}

// fakeHarness gives each case a fake of its own, so names need no prefix.
type fakeHarness struct {
	t *testing.T
	e *enginetest.Fake
}

func (h *fakeHarness) Engine() reconcile.Engine { return h.e }

func (h *fakeHarness) Unreachable() reconcile.Engine {
	e := enginetest.New(h.t)
	e.SetDown(true)
	return e
}

func (h *fakeHarness) Image() string               { return "app:v1" }
func (h *fakeHarness) MissingImage() string        { return "registry.test/app:missing" }
func (h *fakeHarness) Name(base string) string     { return base }
func (h *fakeHarness) Crash(inst *fleets.Instance) { inst.Labels[crashLabel] = "true" }
func (h *fakeHarness) SquatContainer(name string)  { h.e.AddUnmanaged(name, nil) }
func (h *fakeHarness) SquatNetwork(name string)    { h.e.AddUnmanagedNetwork(name) }
func (h *fakeHarness) StopContainer(name string)   { h.e.Stop(name) }
func (h *fakeHarness) RemoveContainer(name string) { h.e.Remove(name) }

func (h *fakeHarness) HoldPort() string {
	addr := "0.0.0.0:18080"
	h.e.HoldPort(addr)
	return addr
}
