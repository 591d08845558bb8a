package e2e

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// kindsSince returns the kinds of the payloads about fleet received after
// the first from of them.
func (s *sinkRecorder) kindsSince(fleet string, from int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.payloads {
		if p["fleet"] != fleet {
			continue
		}
		if from > 0 {
			from--
			continue
		}
		out = append(out, fmt.Sprint(p["kind"]))
	}
	return out
}

// loggedEvents counts the events of kind the agent produced for fleet
// (one log line each, whether or not a message followed).
func loggedEvents(log, kind, fleet string) int {
	n := 0
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "event="+kind+" ") && strings.Contains(line, "fleet="+fleet+" ") {
			n++
		}
	}
	return n
}

// TestDaemonFlapping is issue 18's operator test on the real daemon: the
// agent decides when drift-detected and drift-resolved happen (self-heal
// with its backoff, reconcile.DefaultHealBackoff), the notifier turns them
// into messages, and a generic webhook sink counts them. With
// notify.flap_window 20s:
//  1. one `docker stop`, healed: 2 messages (detected, resolved);
//  2. right after that resolved incident, 15 kills within 10s of the same
//     container (a kill while it is down, held back by the heal backoff,
//     is skipped), then calm until flap-resolved (at most 60s).
//
// The burst must send at least 1 and at most 6 new messages; when it makes
// 3 or more incidents within the window (counting the stop's), exactly one
// flapping message, and one flap-resolved after it. The t.Logf line of the
// sequence is the figure in docs/notifications.md ("Flapping"). About 70s.
func TestDaemonFlapping(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "flap")
	g := newGitServer(t)
	c1 := g.commit("", "v1", map[string]string{fleet + "/compose.yaml": quickCompose(fleet, ref, "v1", 1)})
	sink := &sinkRecorder{}
	srv := httptest.NewServer(sink)
	t.Cleanup(srv.Close)
	const window = 20 * time.Second
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h",
		extra: fmt.Sprintf("notify: {flap_window: %s, webhooks: [{url: %q}]}\n", window, srv.URL+"/fleetd")})
	ids := waitConverged(t, d, cli, fleet, "v1", c1, 1, 2*time.Minute)
	var name string
	for n := range ids {
		name = n
	}
	start := time.Now()

	// 1. One stop.
	before := len(sink.kindsSince(fleet, 0))
	docker(t, "stop", "-t", "1", name)
	untilHealthy(t, cli, name, time.Minute)
	waitFor(t, 30*time.Second, "drift-resolved after the stop", func() (bool, string) {
		got := sink.kindsSince(fleet, before)
		return len(got) > 0 && got[len(got)-1] == "drift-resolved", fmt.Sprintf("messages %v", got)
	})
	stop := sink.kindsSince(fleet, before)
	if len(stop) != 2 || stop[0] != "drift-detected" {
		t.Errorf("one stop: messages %v, want [drift-detected drift-resolved]", stop)
	}

	// 2. 15 kills within 10s, right after the resolved incident.
	burst := before + len(stop)
	logFrom := len(d.log.String())
	const kills, budget = 15, 10 * time.Second
	landed := 0
	t0 := time.Now()
	for i := range kills {
		if at := t0.Add(budget * time.Duration(i) / kills); time.Until(at) > 0 {
			time.Sleep(time.Until(at))
		}
		if time.Since(t0) >= budget {
			continue // the engine was slow: past the budget, skipped
		}
		ins, err := cli.ContainerInspect(t.Context(), name)
		if err != nil || ins.State == nil || !ins.State.Running {
			continue // down, its heal held back: skipped
		}
		if err := cli.ContainerKill(t.Context(), name, "SIGKILL"); err == nil {
			landed++
		}
	}
	killed := time.Since(t0)

	// Calm: until flap-resolved, or, when nothing flaps, the last message
	// a resolution a window ago; 60s at most.
	var last time.Time
	var lastLen int
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		got := sink.kindsSince(fleet, burst)
		if len(got) != lastLen {
			last, lastLen = time.Now(), len(got)
		}
		if n := len(got); n > 0 && got[n-1] == "flap-resolved" {
			break
		}
		if n := len(got); n > 0 && got[n-1] == "drift-resolved" && !slices.Contains(got, "flapping") && time.Since(last) > window+5*time.Second {
			break
		}
	}
	time.Sleep(2 * time.Second) // room for a straggler
	got := sink.kindsSince(fleet, burst)
	log := d.log.String()[logFrom:]
	incidents := loggedEvents(log, "drift-detected", fleet)
	flapping, resolved := indexes(got, "flapping"), indexes(got, "flap-resolved")
	end := "gone"
	if ins, err := cli.ContainerInspect(t.Context(), name); err == nil && ins.State != nil {
		end = ins.State.Status
	}
	t.Logf("flap figure (window %s): one stop: %d messages %v; 15 kill slots in 10s (loop %s), %d landed, %d skipped: %d incidents, %d resolutions, %d new messages %v (flapping %d, flap-resolved %d); container %s at the end; %s in all",
		window, len(stop), stop, killed.Round(100*time.Millisecond), landed, kills-landed, incidents,
		loggedEvents(log, "drift-resolved", fleet), len(got), got, len(flapping), len(resolved), end, time.Since(start).Round(time.Second))

	if landed == 0 {
		t.Fatalf("no kill landed: the container was never running during the burst")
	}
	if len(got) < 1 || len(got) > 6 {
		t.Errorf("burst: %d new messages %v, want 1 to 6", len(got), got)
	}
	// The stop's incident, resolved just before the burst, is in the window.
	if incidents+1 >= 3 {
		if len(flapping) != 1 || len(resolved) != 1 || resolved[0] < flapping[0] {
			t.Errorf("%d incidents in the window: messages %v, want exactly one flapping and one flap-resolved after it", incidents+1, got)
		}
	}
}

// indexes returns the positions of v in s.
func indexes(s []string, v string) []int {
	var out []int
	for i, x := range s {
		if x == v {
			out = append(out, i)
		}
	}
	return out
}
