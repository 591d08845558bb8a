package drift_test

import (
	"fmt"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// BenchmarkDiff is a large host in sync: 2,000 fleets of 5 services, one
// replica each, fully inspected.
func BenchmarkDiff(b *testing.B) {
	var desired []fleets.Fleet
	for i := range 2000 {
		var svcs []fleets.Service
		for j := range 5 {
			svcs = append(svcs, service(fmt.Sprintf("svc%d", j), 1))
		}
		desired = append(desired, fleet(fmt.Sprintf("fleet%04d", i), svcs...))
	}
	obs := snapshot(desired)
	if items := drift.Diff(desired, obs); len(items) != 0 {
		b.Fatalf("not in sync: %d items", len(items))
	}
	b.ReportAllocs()
	for b.Loop() {
		drift.Diff(desired, obs)
	}
}
