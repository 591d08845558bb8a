package reconcile_test

import (
	"fmt"
	"testing"

	"github.com/fleetd/fleetd/reconcile"
)

// BenchmarkPlan is the steady state of a host: 200 containers (40 fleets
// of 5 one-replica services) in sync, fully inspected. Plan is pure, so
// this is all the CPU a resync costs besides observing.
func BenchmarkPlan(b *testing.B) {
	e := newFake(b)
	var desired = fl()
	for i := range 40 {
		name := fmt.Sprintf("fleet%02d", i)
		f := fleet(name)
		for j := range 5 {
			f.Services = append(f.Services, service(name, fmt.Sprintf("svc%d", j), 1))
		}
		desired = append(desired, f)
	}
	converge(b, e, desired...)
	obs := observe(b, e)
	if len(obs.Containers) != 200 {
		b.Fatalf("%d containers, want 200", len(obs.Containers))
	}
	pol := policy()
	b.ReportAllocs()
	for b.Loop() {
		if p := reconcile.Plan(desired, obs, pol); !p.Empty() {
			b.Fatal("plan not empty")
		}
	}
}
