package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
)

// TestDaemonEngineOutage stops the daemon's engine (a dockerd of the
// test's own) and starts it again: the agent reports the fleet Degraded
// with EngineUnreachable and the engine down, reconnects with backoff,
// resubscribes and resyncs, and the fleet ends with one container per
// slot, healthy.
func TestDaemonEngineOutage(t *testing.T) {
	main := setup(t)
	t.Parallel()
	eng := dockertest.StartEngine(t)
	cli := eng.Client(t)
	ref, _ := dockertest.TestImage(t, main, "v1")
	eng.LoadImage(t, main, ref)
	g := newGitServer(t)
	f := dockertest.Name(t, "outage")
	c := g.commit("", "one fleet", map[string]string{f + "/compose.yaml": quickCompose(f, ref, "v1", 2)})
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h", docker: eng.Host()})
	waitConverged(t, d, cli, f, "v1", c, 2, 2*time.Minute)

	eng.Stop()
	down := time.Now()
	waitFor(t, time.Minute, "the outage reported", func() (bool, string) {
		st := d.status()
		deg := fleetOf(st, f).Condition(agent.Degraded)
		return !st.Engine.Up && deg.Reason == "EngineUnreachable", fmt.Sprintf("engine %+v, degraded %+v", st.Engine, deg)
	})
	reported := time.Since(down)
	time.Sleep(3 * time.Second) // reconnects fail meanwhile, with backoff
	eng.Start()
	up := time.Now()
	// The engine stopped the containers on its way down (restart policy
	// "no"): the agent starts them again.
	waitConverged(t, d, cli, f, "v1", c, 2, 2*time.Minute)
	recovered := time.Since(up)
	waitFor(t, 30*time.Second, "status back to normal", func() (bool, string) {
		st := d.status()
		return st.Engine.Up && fleetOf(st, f).Condition(agent.Ready).Status == "True", fmt.Sprintf("%+v", st.Engine)
	})
	list, err := cli.ContainerList(t.Context(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", fleets.LabelFleet+"="+f))})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("%d containers after the outage, want 2", len(list))
	}
	log := d.log.String()
	if n := strings.Count(log, "event=engine-unreachable"); n != 1 {
		t.Errorf("engine-unreachable told %d times, want once", n)
	}
	if !strings.Contains(log, "event=engine-recovered") {
		t.Errorf("the recovery is not told")
	}
	t.Logf("engine stopped -> reported %s; engine started -> fleet healthy again %s", secs(reported), secs(recovered))
	d.stop()
}
