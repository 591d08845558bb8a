package conformance

import (
	"testing"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// Harness plugs an engine into Run. Run makes one per case, in the case's
// test and before that case runs in parallel with the others; a harness
// registers its own cleanup with t.Cleanup.
type Harness interface {
	// Engine is the engine under test. Its managed objects are this
	// harness's alone: no other harness sees them as its own.
	Engine() reconcile.Engine
	// Unreachable is an engine of the same kind whose daemon cannot be
	// reached.
	Unreachable() reconcile.Engine
	// Image is a reference present locally. Its containers run until they
	// are stopped, listening on port 8080.
	Image() string
	// MissingImage is a reference that is neither present locally nor
	// pullable from its registry (which answers).
	MissingImage() string
	// Name returns a valid container, network and volume name for base
	// that no other test uses; Run gives every case bases of its own.
	Name(base string) string
	// Crash adjusts inst so that its container exits as soon as it starts.
	Crash(inst *fleets.Instance)

	// The out-of-band hands change the host as a person with the docker
	// CLI would, whatever fleetd's labels say.

	// SquatContainer runs an unmanaged container named name.
	SquatContainer(name string)
	// SquatNetwork creates an unmanaged network named name.
	SquatNetwork(name string)
	// HoldPort takes a free TCP host port with something unmanaged and
	// returns the address held, "0.0.0.0:PORT".
	HoldPort() string
	// StopContainer stops the named container (docker stop); it may kill
	// a container that has not yet set up its signal handling.
	StopContainer(name string)
	// RemoveContainer removes the named container whatever its state
	// (docker rm -f).
	RemoveContainer(name string)
}

// Run runs every case of the suite, in parallel, each as a subtest of t
// with a harness of its own from newHarness.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			t.Parallel()
			c.run(t, h)
		})
	}
}

// cases is the suite; every case uses Harness.Name bases no other case
// uses, so that cases can share a host.
var cases = []struct {
	name string
	run  func(t *testing.T, h Harness)
}{
	{"running container observed", testRunning},
	{"stopped out of band", testStoppedOutOfBand},
	{"remove a removed container", testRemoveRemoved},
	{"volumes outlive containers", testVolumesKept},
	{"create over a squatted name", testNameSquatted},
	{"unmanaged container refused", testContainerNotManaged},
	{"ensure over a squatted network", testNetworkSquatted},
	{"external network and volume missing", testExternalMissing},
	{"create with a missing image", testCreateMissingImage},
	{"pull a missing image", testPullMissingImage},
	{"create on a missing network", testCreateMissingNetwork},
	{"start on a held port", testPortHeld},
	{"start on a port another container publishes", testPortPublished},
	{"wait on a crashing container", testCrash},
	{"engine unreachable", testUnreachable},
}
