package notify

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/reconcile"
)

// flapSim drives a dedup the way the Dispatcher does: events at their
// times, and due on a ticker in between.
type flapSim struct {
	d        *dedup
	now      time.Time
	tick     time.Duration
	nextTick time.Time
	got      []Message
	trace    []string
}

func newFlapSim(quiet time.Duration, p flapPolicy, tick time.Duration) *flapSim {
	start := newClock().Now()
	return &flapSim{d: newDedup(quiet, p), now: start, tick: tick, nextTick: start.Add(tick)}
}

// wait runs the ticks up to now+gap.
func (s *flapSim) wait(gap time.Duration) {
	to := s.now.Add(gap)
	for !s.nextTick.After(to) {
		s.now = s.nextTick
		for _, m := range s.d.due(s.now) {
			s.record(m)
		}
		s.nextTick = s.nextTick.Add(s.tick)
	}
	s.now = to
}

// event is an incident (bad) or a resolution of the one key under test.
func (s *flapSim) event(bad bool) {
	e := resolvedEvent("web")
	if bad {
		e = driftEvent("web", stopped("web-app-1"))
	}
	s.trace = append(s.trace, fmt.Sprintf("%s %s", s.now.Format("15:04:05"), e.Kind))
	if m, ok := s.d.admit(e, s.now); ok {
		s.record(m)
	}
}

func (s *flapSim) record(m Message) {
	s.got = append(s.got, m)
	upd := ""
	if m.Update {
		upd = " (update)"
	}
	s.trace = append(s.trace, fmt.Sprintf("%s   -> %s%s", s.now.Format("15:04:05"), m.Kind, upd))
}

// TestFlapBurstBound: for any burst on one key (incidents and resolutions,
// starting with an incident and ending healthy) followed by calm, from
// any state the deduplicator was left in by a random history:
//   - at least one new message (not an in-place update) is sent;
//   - a burst within one flap window sends at most 6 new messages
//     (2·(threshold−1) incidents and resolutions, the flapping message,
//     the flap-resolved message), and a longer one at most 6 per window
//     it spans (its incidents are then partly separate incidents);
//   - every flapping message is followed by exactly one flap-resolved
//     once calm, updates belong to the flapping in progress, and nothing
//     flaps any more.
func TestFlapBurstBound(t *testing.T) {
	const (
		quiet = time.Hour
		w     = 10 * time.Minute
		tick  = 30 * time.Second // the Dispatcher's default CheckEvery
	)
	p := flapPolicy{window: w, threshold: 3, updateEvery: 30 * time.Second}
	rng := rand.New(rand.NewPCG(18, 1))
	// randGap is a gap of the burst: from 0 to 2W (as in the issue), or
	// bursts packed tighter, so that both shapes are common.
	scales := []time.Duration{2 * w, w / 10, 5 * time.Second}
	within, longer := 0, 0
	for iter := range 5000 {
		s := newFlapSim(quiet, p, tick)
		// A random history: the key open or not, flapping or not,
		// incidents in the window, a reminder due or not.
		for range rng.IntN(16) {
			s.wait(time.Duration(rng.Int64N(int64(2 * w))))
			if rng.IntN(8) == 0 {
				s.wait(time.Duration(rng.Int64N(int64(2 * quiet))))
			}
			s.event(rng.IntN(2) == 0)
		}
		s.wait(time.Duration(rng.Int64N(int64(2 * w))))
		before := len(s.got)
		scale := scales[rng.IntN(len(scales))]
		n := 1 + rng.IntN(30)
		start := s.now
		for i := range n {
			if i > 0 {
				s.wait(time.Duration(rng.Int64N(int64(scale) + 1)))
			}
			s.event(i == 0 || (i < n-1 && rng.IntN(2) == 0))
		}
		if n == 1 {
			s.wait(time.Duration(rng.Int64N(int64(scale) + 1)))
			s.event(false)
		}
		span := s.now.Sub(start)
		s.wait(w + 2*tick + p.updateEvery)

		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("iteration %d: %s\n%s", iter, fmt.Sprintf(format, args...), strings.Join(s.trace, "\n"))
		}
		fresh := len(newMessages(s.got[before:]))
		limit := 6 * (int(span/w) + 1)
		if span < w {
			within++
		} else {
			longer++
		}
		if fresh < 1 || fresh > limit {
			fail("burst over %v sent %d new messages, want 1..%d", span, fresh, limit)
		}
		flapping := ""
		for _, m := range s.got {
			switch {
			case m.Kind == KindFlapping && !m.Update:
				if flapping != "" {
					fail("a second flapping before the first was resolved")
				}
				flapping = m.Flap.ID
			case m.Kind == KindFlapping:
				if m.Flap.ID != flapping {
					fail("update of %q while %q flaps", m.Flap.ID, flapping)
				}
			case m.Kind == KindFlapResolved:
				if m.Flap.ID != flapping {
					fail("flap-resolved %q while %q flaps", m.Flap.ID, flapping)
				}
				flapping = ""
			}
		}
		if flapping != "" {
			fail("flapping %q never resolved", flapping)
		}
		for key, fs := range s.d.flaps {
			if fs.flapping {
				fail("key %q still flapping after the calm", key)
			}
		}
	}
	t.Logf("bursts within one window: %d, longer: %d", within, longer)
	if within < 1000 || longer < 1000 {
		t.Fatalf("the generator is lopsided: %d within a window, %d longer", within, longer)
	}
}

// flapScenario is a table case: events (true: an incident) at offsets;
// the messages of the first history events are not counted.
type flapScenario struct {
	name    string
	history int
	events  []flapStep
}

type flapStep struct {
	after time.Duration
	bad   bool
}

// Figures for the closing note (t.Logf prints them; defaults: W
// 10m, threshold 3, updates every 30s, quiet period 1h):
//   - one stop: 2 new messages (drift-detected, drift-resolved);
//   - 15 kills in 10s, a minute after a resolved incident: 4 new messages
//     (detected, resolved, flapping, flap-resolved) and 1 update (the
//     final count, for Slack with a bot token); the same 15 kills with no
//     incident in the window before: 6 (two incidents reported with their
//     resolutions, then flapping, flap-resolved) and 1 update;
//   - a crash loop for 10 minutes (heal backoff 10s doubling to 5m, the
//     container dies 2s after each heal): 6 new messages (the third
//     incident, 36s in, flaps) and 7 updates.
func TestFlapScenarios(t *testing.T) {
	kills := func(pre []flapStep) []flapStep {
		out := append([]flapStep(nil), pre...)
		for i := range 15 {
			gap := 10 * time.Second / 30
			if i == 0 {
				gap = time.Minute
			}
			out = append(out, flapStep{gap, true}, flapStep{10 * time.Second / 30, false})
		}
		return out
	}
	// The crash loop: a heal waits the backoff (10s doubling to 5m), the
	// container dies 2s after; after 10 minutes a fix keeps it up.
	var loop []flapStep
	elapsed, wait := time.Duration(0), reconcile.DefaultHealBackoff
	for elapsed < 10*time.Minute {
		loop = append(loop, flapStep{2 * time.Second, true}, flapStep{wait, false})
		elapsed += 2*time.Second + wait
		wait = min(2*wait, reconcile.DefaultHealBackoffMax)
	}
	cases := []struct {
		flapScenario
		want, updates int
	}{
		{flapScenario{"one stop", 0, []flapStep{{0, true}, {30 * time.Second, false}}}, 2, 0},
		{flapScenario{"15 kills in 10s after a resolved incident", 2, kills([]flapStep{{0, true}, {20 * time.Second, false}})}, 4, 1},
		{flapScenario{"15 kills in 10s, nothing before", 0, kills(nil)}, 6, 1},
		{flapScenario{"crash loop for 10 minutes", 0, loop}, 6, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newFlapSim(time.Hour, testFlap, 30*time.Second)
			before := 0
			for i, st := range c.events {
				s.wait(st.after)
				if i == c.history {
					before = len(s.got)
				}
				s.event(st.bad)
			}
			s.wait(time.Hour)
			got := s.got[before:]
			fresh := newMessages(got)
			t.Logf("%s: %d new messages (%s), %d updates", c.name, len(fresh), kinds(fresh), len(got)-len(fresh))
			if len(fresh) != c.want || len(got)-len(fresh) != c.updates {
				t.Errorf("%d new messages and %d updates, want %d and %d\n%s", len(fresh), len(got)-len(fresh), c.want, c.updates, strings.Join(s.trace, "\n"))
			}
			if last := fresh[len(fresh)-1]; len(fresh) > 2 && (last.Kind != KindFlapResolved || !strings.Contains(last.Message, "stable again")) {
				t.Errorf("the last message %s %q, want flap-resolved", last.Kind, last.Message)
			}
		})
	}
}

// updaterSink is a recordSink that can update in place.
type updaterSink struct{ *recordSink }

func (updaterSink) CanUpdate() bool { return true }

// TestFlapUpdatesOnlyToUpdaters: in-place updates reach only the sinks
// that can update; every sink gets the flapping and flap-resolved
// messages, the generic webhook with its flap fields.
func TestFlapUpdatesOnlyToUpdaters(t *testing.T) {
	c := newClock()
	plain, upd := newRecordSink("plain"), updaterSink{newRecordSink("updater")}
	h := newHookServer(t)
	hook, err := NewWebhook(WebhookConfig{URL: h.URL, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	d := New(Options{Routes: []Route{{Sink: plain}, {Sink: upd}, {Sink: hook}}, Now: c.Now, StatusURL: "https://fleetd.example.com/status"})
	for range 5 {
		d.Notify(driftEvent("web", stopped("web-app-1")))
		c.Advance(20 * time.Second)
		d.Notify(resolvedEvent("web"))
		c.Advance(20 * time.Second)
	}
	c.Advance(10 * time.Minute)
	d.checkReminders() // the ticker's work, at a known time
	closeDispatcher(t, d)
	want := "drift-detected drift-resolved drift-detected drift-resolved flapping flap-resolved"
	if got := kinds(plain.messages()); got != want {
		t.Errorf("plain sink got %q, want %q", got, want)
	}
	var updates int
	for _, m := range upd.messages() {
		if m.Update {
			updates++
		}
	}
	if got := kinds(newMessages(upd.messages())); got != want || updates == 0 {
		t.Errorf("updater got %q and %d updates, want %q and some", got, updates, want)
	}
	var last Payload
	for range 6 {
		if err := json.Unmarshal(h.next(t).body, &last); err != nil {
			t.Fatal(err)
		}
		if last.Kind == string(KindFlapping) {
			if f := last.Flap; f == nil || f.Count != 3 || f.WindowSeconds != 600 || f.StatusURL != "https://fleetd.example.com/status" {
				t.Errorf("flapping payload flap %+v", f)
			}
		}
	}
	f := last.Flap
	if last.Kind != string(KindFlapResolved) || last.Version != PayloadVersion || f == nil || f.Count != 5 ||
		!f.First.Equal(newClock().Now()) || !f.Last.Equal(newClock().Now().Add(180*time.Second)) {
		t.Errorf("flap-resolved payload %+v flap %+v", last, f)
	}
}
