package reconcile_test

import (
	"slices"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// TestImageUpdateRollsOutAndBack: a tag pulled at a new digest is image
// drift, rolled out through the service's health-gated rollout; when the
// new image fails its gate, the rollback runs the digest the old replicas
// ran (the spec names the same tag, which now names the new image), and
// the new image is not retried until a new commit or a manual sync.
func TestImageUpdateRollsOutAndBack(t *testing.T) {
	const (
		tag     = "127.0.0.1:5000/team/app:1"
		pinned  = "127.0.0.1:5000/team/app@sha256:1111111111111111111111111111111111111111111111111111111111111111"
		oldID   = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		newID   = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
		replica = 3
	)
	e := newFake(t)
	e.AddImage(tag, oldID)
	e.AddImage(pinned, oldID)
	update := fleets.Rollout{Parallelism: 1, Order: fleets.OrderStopFirst, FailureAction: fleets.FailureRollback}
	desired := []fleets.Fleet{rolling(replica, tag, update)}
	converge(t, e, desired...)

	e.AddImage(tag, newID) // the agent pulled the tag at its new digest
	e.OnStart(func(c *drift.Container) {
		if c.ImageID == newID {
			c.Health = "unhealthy"
		}
	})
	var rec recorder
	out, err := reconcile.Converge(t.Context(), e, desired, policy(), rec.opts())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"rollout-started", "rollout-batch", "rollout-failed", "rollout-batch", "rollout-rolled-back"}
	if got := rec.kinds(); !slices.Equal(got, want) {
		t.Fatalf("events = %v, want %v\nplans:\n%v", got, want, out.Plans)
	}
	obs := observe(t, e)
	n := 0
	for _, c := range obs.Containers {
		if c.Labels[fleets.LabelService] != "api" {
			continue
		}
		n++
		if c.ImageID != oldID || c.State != "running" {
			t.Errorf("after the rollback %s runs %s (%s), want the old image %s", c.Name, c.ImageID, c.State, oldID)
		}
	}
	if n != replica {
		t.Errorf("%d replicas after the rollback, want %d", n, replica)
	}
	again, err := reconcile.Converge(t.Context(), e, desired, reconcile.Policy{Now: now, Rollouts: out.Rollouts}, (&recorder{}).opts())
	if err != nil {
		t.Fatal(err)
	}
	if again.Passes != 0 {
		t.Errorf("the failed image was tried again without a new commit or a manual sync:\n%s", again.Last)
	}
}
