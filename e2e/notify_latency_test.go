package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// stallingSink is a generic-webhook endpoint that answers after delay
// (never, when delay is negative) or once release is closed, whichever
// comes first; it records what it was sent in rec.
type stallingSink struct {
	delay    time.Duration
	release  chan struct{}
	requests atomic.Int64
	rec      sinkRecorder
}

func (s *stallingSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	var after <-chan time.Time
	if s.delay >= 0 {
		after = time.After(s.delay)
	}
	select {
	case <-after:
	case <-s.release:
	case <-r.Context().Done():
		return
	}
	s.rec.ServeHTTP(w, r)
}

// TestNotifySlowSinkLatency is issue 18's figure: a slow or dead
// notification sink never delays reconciliation. Three daemons in turn, each
// with one generic-webhook sink: (a) healthy, (b) answering after 30s,
// (c) never answering. Each follows a fleet of one health-checked replica
// through 5 pushes (a VERSION change each, then the webhook) and the test
// measures webhook -> the commit applied in /v1/status (polled every 20ms).
// Every commit makes notifications (rollout started/succeeded, revision
// applied), which a stalled sink keeps queued; the slow runs must apply
// every commit, their worst latency within 5s of the healthy run's (a
// reconcile waiting on the sink would wait at least the webhook client's
// 10s timeout, which cuts the 30s answer short).
//
// About 50s on the project's machine; docs/performance.md ("Notifications
// and reconcile latency") has the figures.
func TestNotifySlowSinkLatency(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	const pushes = 5
	runs := []struct {
		name  string
		delay time.Duration
	}{{"healthy", 0}, {"30s", 30 * time.Second}, {"never", -1}}
	// One repository and fleet for the three daemons in turn: they share
	// the test's instance and its state, so the history goes on.
	fleet := dockertest.Name(t, "notelat")
	s := svcSpec{fleet: fleet, image: ref, replicas: 1, env: []string{"VERSION: n0"},
		update: "{monitor: 0s}", probeEvery: time.Second}
	g := newGitServer(t)
	c := g.commit("", "n0", map[string]string{fleet + "/compose.yaml": s.compose()})
	version := "n0"
	lat := make([][]time.Duration, len(runs))
	for r, run := range runs {
		sink := &stallingSink{delay: run.delay, release: make(chan struct{})}
		srv := httptest.NewServer(sink)
		t.Cleanup(srv.Close)
		d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h", webhook: true,
			extra: fmt.Sprintf("notify: {webhooks: [{url: %q}]}\n", srv.URL+"/fleetd")})
		// Let the stalled requests go before the daemon stops, so that its
		// flush ends at once (cleanups run last in, first out).
		release := sync.OnceFunc(func() { close(sink.release) })
		t.Cleanup(release)
		waitConverged(t, d, cli, fleet, version, c, 1, 2*time.Minute)
		for i := 1; i <= pushes; i++ {
			version = fmt.Sprintf("n%d", r*pushes+i)
			s.env = []string{"VERSION: " + version}
			c = g.commit("", version, map[string]string{fleet + "/compose.yaml": s.compose()})
			sent := time.Now()
			d.push()
			var applied string
			for deadline := sent.Add(45 * time.Second); applied != c; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("sink %s, push %d: commit %s not applied after 45s (applied %q)", run.name, i, c[:12], applied)
				}
				applied = appliedOf(d.status(), fleet)
			}
			lat[r] = append(lat[r], time.Since(sent))
			waitConverged(t, d, cli, fleet, version, c, 1, time.Minute)
		}
		if run.delay == 0 {
			// The healthy sink hears of every commit: the runs do notify.
			waitFor(t, 15*time.Second, "revision-applied delivered to the healthy sink", func() (bool, string) {
				n := sink.rec.count("revision-applied", fleet)
				return n >= pushes, fmt.Sprintf("%d revision-applied messages, want %d", n, pushes)
			})
		} else if sink.requests.Load() == 0 {
			t.Errorf("sink %s: no request reached it, so it held nothing up", run.name)
		}
		t.Logf("sink %s: %d requests received, dropped %v, dead letters %v", run.name, sink.requests.Load(),
			d.metric("fleetd_notifications_dropped_total"), d.metric("fleetd_notify_dead_letters_total"))
		release()
		d.stop()
		srv.Close()
	}
	var row []string
	for r, run := range runs {
		sorted := slices.Sorted(slices.Values(lat[r]))
		row = append(row, fmt.Sprintf("%s p50 %s max %s", run.name,
			sorted[len(sorted)/2].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond)))
	}
	t.Logf("webhook -> applied over %d pushes: %s", pushes, strings.Join(row, " | "))
	limit := slices.Max(lat[0]) + 5*time.Second
	for r, run := range runs[1:] {
		if worst := slices.Max(lat[r+1]); worst > limit {
			t.Errorf("sink %s: worst push %s, want under the healthy sink's worst + 5s = %s (%v)", run.name,
				worst.Round(time.Millisecond), limit.Round(time.Millisecond), lat[r+1])
		}
	}
}
