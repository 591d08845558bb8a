package engine_test

import (
	"strings"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
)

// benchContainers is the size of the in-sync fleet BenchmarkObserve
// observes.
const benchContainers = 200

// BenchmarkObserve observes a host with 200 managed containers in sync
// (created, never started: the list cost is the same and setup is fast).
// It reports Docker API calls and container inspects per observation.
func BenchmarkObserve(b *testing.B) {
	cli, d := setup(b)
	ref, _ := dockertest.TestImage(b, cli, "v1")
	fleet := dockertest.Name(b, "bench")
	net := ensureNetwork(b, d, fleet, "default")
	var g errgroup.Group
	g.SetLimit(16)
	for slot := 1; slot <= benchContainers; slot++ {
		g.Go(func() error {
			_, err := d.CreateContainer(b.Context(), instance(fleet, "web", slot, ref, net))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}

	d.ResetCalls()
	b.ResetTimer()
	for b.Loop() {
		obs, err := d.Observe(b.Context(), drift.ObserveOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if n := countFleet(obs, fleet); n != benchContainers {
			b.Fatalf("observed %d containers of %s, want %d", n, fleet, benchContainers)
		}
	}
	b.StopTimer()
	calls, ops := 0, float64(b.N)
	for _, n := range d.Calls() {
		calls += n
	}
	b.ReportMetric(float64(calls)/ops, "calls/op")
	b.ReportMetric(float64(inspects(d.Calls()))/ops, "inspects/op")
}

func countFleet(obs drift.Observed, fleet string) int {
	n := 0
	for _, c := range obs.Containers {
		if c.Labels[fleets.LabelFleet] == fleet && strings.HasPrefix(c.Name, fleet) {
			n++
		}
	}
	return n
}
