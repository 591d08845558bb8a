package e2e

import (
	"testing"
	"time"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// idleCalls counts the engine calls the daemon made from since, but the
// event stream it keeps open.
func idleCalls(p *dockerProxy, since time.Time) []dockerCall {
	var out []dockerCall
	for _, c := range p.since(since) {
		if c.Path != "/events" {
			out = append(out, c)
		}
	}
	return out
}

// TestDaemonIdleCostsNoEngineCall: with the Git head unmoved and no engine
// event, polls cost no Docker API request at all; events carry the rest.
func TestDaemonIdleCostsNoEngineCall(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	g := newGitServer(t)
	files := map[string]string{}
	var names []string
	for _, base := range []string{"idle-a", "idle-b"} {
		f := dockertest.Name(t, base)
		names = append(names, f)
		files[f+"/compose.yaml"] = quickCompose(f, ref, "v1", 1)
	}
	c := g.commit("", "two fleets", files)
	proxy := newDockerProxy(t)
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1s", proxy: proxy})
	for _, f := range names {
		waitConverged(t, d, cli, f, "v1", c, 1, 2*time.Minute)
	}
	time.Sleep(3 * time.Second) // the converge's own aftermath: health events and the passes they cause
	g.take()
	fetches0 := d.metric("fleetd_git_fetch_duration_seconds_count")
	from := time.Now()
	time.Sleep(6 * time.Second)
	polls := d.metric("fleetd_git_fetch_duration_seconds_count") - fetches0
	calls := idleCalls(proxy, from)
	t.Logf("idle for 6s: %v polls, %d engine calls", polls, len(calls))
	if polls < 3 {
		t.Errorf("only %v polls in 6s with a 1s interval", polls)
	}
	if len(calls) > 0 {
		t.Errorf("%d engine calls while idle (want 0): %v", len(calls), calls)
	}
	d.stop()
}
