package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// benchFleet is a fleet of services×replicas containers of the test image
// without a healthcheck (so that 200 of them idle cheaply on two cores).
func benchFleet(b *testing.B, name, ref string, services, replicas int) fleets.Fleet {
	f := fleets.Fleet{
		Name: name, Targets: true,
		Policy:   fleets.Policy{SelfHeal: true, Prune: true},
		Networks: []fleets.Network{{Key: "default", Name: name + "_default"}},
	}
	for i := 1; i <= services; i++ {
		svc := fleets.Service{
			Name: fmt.Sprintf("svc%02d", i), Replicas: replicas, Targets: true, PullPolicy: "never",
			Spec: fleets.Spec{
				Image:           ref,
				Environment:     map[string]string{"VERSION": "bench"},
				Networks:        []fleets.NetworkAttachment{{Network: name + "_default", Aliases: []string{fmt.Sprintf("svc%02d", i)}}},
				Healthcheck:     &fleets.Healthcheck{Disable: true},
				Restart:         "no",
				StopGracePeriod: time.Second,
			},
		}
		h, err := fleets.HashSpec(fleets.HashVersion, svc.Spec)
		if err != nil {
			b.Fatal(err)
		}
		svc.Hash = h
		f.Services = append(f.Services, svc)
	}
	return f
}

// converge plans and executes once and fails the benchmark on any failure.
func converge(b *testing.B, d *engine.Docker, desired []fleets.Fleet, parallelism int) reconcile.ActionPlan {
	obs, err := d.Observe(b.Context(), drift.ObserveOptions{})
	if err != nil {
		b.Fatal(err)
	}
	p := reconcile.Plan(desired, obs, reconcile.Policy{Now: time.Now()})
	rep := reconcile.Execute(b.Context(), d, p, reconcile.ExecOptions{Parallelism: parallelism})
	for _, r := range rep.Failed() {
		b.Fatalf("%s %s: %s", r.Action.Op, r.Action.Target, r.Error)
	}
	return p
}

func newDocker(b *testing.B) *engine.Docker {
	d, err := engine.New(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	return d
}

// BenchmarkApplyNoop is one reconcile cycle (observe, plan, execute) on a
// host whose 200 managed containers are in sync: it must make list calls
// only and execute nothing.
func BenchmarkApplyNoop(b *testing.B) {
	cli := dockertest.Client(b)
	dockertest.Cleanup(b, cli)
	ref, _ := dockertest.TestImage(b, cli, "v1")
	d := newDocker(b)
	desired := []fleets.Fleet{benchFleet(b, dockertest.Name(b, "noop"), ref, 20, 10)}
	converge(b, d, desired, 8)
	d.ResetCalls()
	b.ResetTimer()
	for b.Loop() {
		if p := converge(b, d, desired, 8); !p.Empty() {
			b.Fatalf("in-sync host planned actions:\n%s", p)
		}
	}
	b.StopTimer()
	reportCalls(b, d)
}

// BenchmarkColdApply deploys 50 containers from nothing, one action at a
// time versus with parallelism; each iteration removes them afterwards
// (untimed).
func BenchmarkColdApply(b *testing.B) {
	cli := dockertest.Client(b)
	dockertest.Cleanup(b, cli)
	ref, _ := dockertest.TestImage(b, cli, "v1")
	d := newDocker(b)
	for _, par := range []int{1, 4} {
		b.Run(fmt.Sprintf("parallelism=%d", par), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				name := dockertest.Name(b, fmt.Sprintf("cold%d-%d", par, i))
				desired := []fleets.Fleet{benchFleet(b, name, ref, 5, 10)}
				b.StartTimer()
				converge(b, d, desired, par)
				b.StopTimer()
				// Tear down through fleetd itself: the fleet leaving the
				// spec is a prune, allowed explicitly.
				obs, err := d.Observe(b.Context(), drift.ObserveOptions{})
				if err != nil {
					b.Fatal(err)
				}
				p := reconcile.Plan(nil, obs, reconcile.Policy{Now: time.Now(), AllowMassPrune: true})
				reconcile.Execute(b.Context(), d, onlyFleet(p, name), reconcile.ExecOptions{Parallelism: 8})
			}
		})
	}
}

// onlyFleet keeps the actions of one fleet, so that tearing down a benchmark
// fleet never touches another test's containers.
func onlyFleet(p reconcile.ActionPlan, fleet string) reconcile.ActionPlan {
	keep := map[int]int{}
	var out reconcile.ActionPlan
	for _, a := range p.Actions {
		if a.Fleet != fleet {
			continue
		}
		keep[a.ID] = len(out.Actions) + 1
		out.Actions = append(out.Actions, a)
	}
	for i := range out.Actions {
		a := &out.Actions[i]
		a.ID = keep[a.ID]
		var after []int
		for _, dep := range a.After {
			if n, ok := keep[dep]; ok {
				after = append(after, n)
			}
		}
		a.After = after
	}
	return out
}

func reportCalls(b *testing.B, d *engine.Docker) {
	total, ops := 0, float64(b.N)
	for _, n := range d.Calls() {
		total += n
	}
	b.ReportMetric(float64(total)/ops, "calls/op")
	b.ReportMetric(float64(inspects(d.Calls()))/ops, "inspects/op")
}
