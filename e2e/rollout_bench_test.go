package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// BenchmarkRollingUpdate times fleetd apply rolling a 10-replica service
// from v1 to v2, 2 at a time, start-first, monitor 1s, against the floor
// that the policy itself imposes on this machine: ceil(10/2) batches, each
// at least as long as one new replica takes to turn healthy plus monitor.
// The time to healthy is measured by creating and starting single
// containers of the same image and healthcheck on the fleet's network and
// timing until Docker reports them healthy; the service and these
// containers share one healthcheck (healthcheckEvery). It reports wall-s and floor-s
// (seconds) and their ratio; docs/performance.md records a run.
//
//	go test -run '^$' -bench BenchmarkRollingUpdate -benchtime 1x ./e2e/
func BenchmarkRollingUpdate(b *testing.B) {
	const (
		replicas    = 10
		parallelism = 2
		monitor     = time.Second
		probes      = 3 // containers timed for the floor
		probeEvery  = time.Second
	)
	b.StopTimer() // only the rolling apply is timed
	cli := setup(b)
	v1, _ := dockertest.TestImage(b, cli, "v1")
	v2, _ := dockertest.TestImage(b, cli, "v2")
	s := svcSpec{fleet: dockertest.Name(b, "bench-roll"), replicas: replicas, probeEvery: probeEvery,
		update: fmt.Sprintf("{parallelism: %d, order: start-first, monitor: %s}", parallelism, monitor)}
	r := newRepo(b)

	var wall time.Duration
	for i := 0; i < b.N; i++ {
		// The initial deploy is not timed.
		for _, c := range containers(b, cli, s.fleet) {
			if err := cli.ContainerRemove(b.Context(), c.ID, container.RemoveOptions{Force: true}); err != nil {
				b.Fatal(err)
			}
		}
		s.image = v1
		deploy(b, cli, r, s)
		s.image = v2
		r.write(b, s.fleet, s.compose())

		b.StartTimer()
		start := time.Now()
		res := r.apply(b)
		took := time.Since(start)
		b.StopTimer()
		wall += took
		if n := len(lines(res.stdout, "rollout batch")); n != (replicas+parallelism-1)/parallelism || !strings.Contains(res.stdout, "rolled out") {
			b.Fatalf("want %d batches and rolled out\n%s", (replicas+parallelism-1)/parallelism, res)
		}
		wantContainers(b, cli, s.fleet, s.names()...)
		b.Logf("run %d: apply %s\n%s", i+1, took.Round(time.Millisecond), strings.Join(lines(res.stdout, "rollout "), "\n"))
	}

	var healthy time.Duration
	for i := range probes {
		d := timeToHealthy(b, cli, v2, s.fleet+"_default", fmt.Sprintf("probe%d", i), probeEvery)
		b.Logf("time to healthy %d: %s", i+1, d.Round(time.Millisecond))
		healthy += d
	}
	healthy /= probes
	batches := (replicas + parallelism - 1) / parallelism
	floor := time.Duration(batches) * (healthy + monitor)
	avg := wall / time.Duration(b.N)
	b.ReportMetric(avg.Seconds(), "wall-s")
	b.ReportMetric(floor.Seconds(), "floor-s")
	b.ReportMetric(healthy.Seconds(), "healthy-s")
	b.ReportMetric(avg.Seconds()/floor.Seconds(), "ratio")
}

// timeToHealthy creates and starts one container of ref with the service's
// healthcheck (probing every interval) on network net, and returns the time from the create
// call until Docker reports it healthy (followed on the events stream).
func timeToHealthy(b *testing.B, cli *client.Client, ref, net, base string, interval time.Duration) time.Duration {
	b.Helper()
	ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()
	name := dockertest.Name(b, "bench-"+base)
	msgs, errs := cli.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("container", name),
		filters.Arg("event", string(events.ActionHealthStatus)),
	)})
	cfg := &container.Config{
		Image:  ref,
		Labels: map[string]string{dockertest.LabelTestRun: dockertest.RunID()},
		Healthcheck: &container.HealthConfig{
			Test:     []string{"CMD", "/testapp", "-health"},
			Interval: interval, Timeout: healthTimeout, Retries: healthRetries, // as the service's
		},
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {}}}
	start := time.Now()
	created, err := cli.ContainerCreate(ctx, cfg, &container.HostConfig{NetworkMode: container.NetworkMode(net)}, netCfg, nil, name)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		// Stop, then remove: force-removing a running container on a
		// user network is how Docker 20.10 sometimes leaks an endpoint,
		// which then keeps the fleet's network from being removed.
		bg := context.WithoutCancel(ctx)
		timeout := 10
		_ = cli.ContainerStop(bg, created.ID, container.StopOptions{Timeout: &timeout})
		_ = cli.ContainerRemove(bg, created.ID, container.RemoveOptions{Force: true})
	}()
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		b.Fatal(err)
	}
	for {
		select {
		case m := <-msgs:
			switch m.Action {
			case events.ActionHealthStatusHealthy:
				return time.Since(start)
			case events.ActionHealthStatusUnhealthy:
				b.Fatalf("%s turned unhealthy", name)
			}
		case err := <-errs:
			b.Fatalf("events of %s: %v", name, err)
		}
	}
}
