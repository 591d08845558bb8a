package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

// testFlap is the default flapping policy: 3 incidents in 10m, updates at
// most every 30s.
var testFlap = flapPolicy{window: 10 * time.Minute, threshold: 3, updateEvery: 30 * time.Second}

// newMessages are the messages that are not in-place updates.
func newMessages(ms []Message) []Message {
	var out []Message
	for _, m := range ms {
		if !m.Update {
			out = append(out, m)
		}
	}
	return out
}

// TestDedupFlapping: a container going down and up 20 times in a minute
// is reported twice (detected, resolved), then flaps at the third
// incident: one flapping message, then only in-place updates; a window
// after it settles, one flap-resolved message with the total count.
// (Before flapping was a state, this test expected the 19 flaps after the
// first to be swallowed until the quiet period.)
func TestDedupFlapping(t *testing.T) {
	c := newClock()
	d := newDedup(time.Hour, testFlap)
	var sent []Message
	admit := func(e reconcile.Event) {
		if m, ok := d.admit(e, c.Now()); ok {
			sent = append(sent, m)
		}
	}
	for range 20 {
		admit(driftEvent("web", stopped("web-app-1")))
		c.Advance(1500 * time.Millisecond)
		admit(resolvedEvent("web"))
		c.Advance(1500 * time.Millisecond)
	}
	if got := kinds(newMessages(sent)); got != "drift-detected drift-resolved drift-detected drift-resolved flapping" {
		t.Fatalf("20 flaps in a minute sent %q", got)
	}
	flap := newMessages(sent)[4]
	if flap.Flap == nil || flap.Flap.Count != 3 || SeverityOf(flap.Kind) != Warning || SeverityOf(KindFlapResolved) != Info {
		t.Fatalf("flapping message %+v", flap)
	}
	if !strings.Contains(flap.Message, "web-app-1 in fleet web: 3 incidents in 10m0s") || !strings.Contains(flap.Message, "10s") {
		t.Errorf("flapping text %q", flap.Message)
	}
	// 38 changes in 54s after the flapping began, updates at most every 30s.
	updates := len(sent) - 5
	if updates < 1 || updates > 2 {
		t.Errorf("%d updates during the flapping, want 1 or 2", updates)
	}
	for _, m := range sent[5:] {
		if m.Flap == nil || m.Flap.ID != flap.Flap.ID || m.Kind != KindFlapping {
			t.Errorf("update %+v is not of the flapping", m)
		}
	}
	var due []Message
	for range 25 { // 12.5 minutes, ticking every 30s
		c.Advance(30 * time.Second)
		due = append(due, d.due(c.Now())...)
	}
	got := newMessages(due)
	if len(got) != 1 || got[0].Kind != KindFlapResolved || got[0].Flap.Count != 20 || got[0].Flap.ID != flap.Flap.ID {
		t.Fatalf("after the calm: %+v, want one flap-resolved with 20 incidents", got)
	}
	if len(d.flaps) != 0 || len(d.open) != 0 {
		t.Errorf("state left: %d flaps, %d open", len(d.flaps), len(d.open))
	}
	// A new incident after that is a new incident: reported.
	admit(driftEvent("web", stopped("web-app-1")))
	if m := sent[len(sent)-1]; m.Kind != reconcile.EventDriftDetected || m.Update {
		t.Fatalf("incident after the flapping ended: %+v", m)
	}
}

// TestDedupFlappingEndsDown: a container that flaps and stays down stays
// flapping: no flap-resolved, a reminder a quiet period after the
// flapping message; its resolution is an update, and a window later the
// flapping ends.
func TestDedupFlappingEndsDown(t *testing.T) {
	c := newClock()
	d := newDedup(time.Hour, testFlap)
	var sent []Message
	for i := range 20 {
		if m, ok := d.admit(driftEvent("web", stopped("web-app-1")), c.Now()); ok {
			sent = append(sent, m)
		}
		c.Advance(time.Second)
		if i < 19 {
			if m, ok := d.admit(resolvedEvent("web"), c.Now()); ok {
				sent = append(sent, m)
			}
		}
		c.Advance(time.Second)
	}
	if got := kinds(newMessages(sent)); got != "drift-detected drift-resolved drift-detected drift-resolved flapping" {
		t.Fatalf("during the flapping: %q", got)
	}
	var due []Message
	tick := func(d2 time.Duration) {
		for end := c.Now().Add(d2); c.Now().Before(end); {
			c.Advance(30 * time.Second)
			due = append(due, newMessages(d.due(c.Now()))...)
		}
	}
	tick(59 * time.Minute)
	if len(due) != 0 {
		t.Fatalf("still down, inside the quiet period: %v", kinds(due))
	}
	tick(2 * time.Minute)
	if len(due) != 1 || due[0].Kind != reconcile.EventDriftDetected || !due[0].Repeat {
		t.Fatalf("after the quiet period: %+v, want one reminder", due)
	}
	if m, ok := d.admit(resolvedEvent("web"), c.Now()); !ok || !m.Update || m.Kind != KindFlapping {
		t.Fatalf("the resolution while flapping: %v %+v, want an update", ok, m)
	}
	due = nil
	tick(11 * time.Minute)
	if got := kinds(due); got != "flap-resolved" {
		t.Fatalf("a window after the resolution: %q", got)
	}
}

// TestDedupQuietPeriod: a persisting drift is reminded once per quiet
// period, its resolution reported once; an unreported detection's
// resolution is not.
func TestDedupQuietPeriod(t *testing.T) {
	c := newClock()
	d := newDedup(30*time.Minute, testFlap)
	start := c.Now()
	first, ok := d.admit(driftEvent("web", stopped("web-app-1"), stopped("web-app-2")), c.Now())
	if !ok || first.Repeat {
		t.Fatal("the first detection was not sent")
	}
	if _, ok := d.admit(driftEvent("web", stopped("web-app-2"), stopped("web-app-1")), c.Now().Add(time.Minute)); ok {
		t.Fatal("the same drift, in another order, was sent again")
	}
	c.Advance(30*time.Minute - time.Second)
	if got := d.due(c.Now()); len(got) != 0 {
		t.Fatalf("reminder before the quiet period: %v", got)
	}
	c.Advance(time.Second)
	got := d.due(c.Now())
	if len(got) != 1 || !got[0].Repeat || !got[0].Since.Equal(start) {
		t.Fatalf("reminder: %+v", got)
	}
	if got := d.due(c.Now().Add(time.Minute)); len(got) != 0 {
		t.Fatalf("second reminder within the quiet period: %v", got)
	}
	c.Advance(5 * time.Minute)
	res, ok := d.admit(resolvedEvent("web"), c.Now())
	if !ok || len(res.Drift) != 2 || res.Since.IsZero() {
		t.Fatalf("resolution: %v %+v", ok, res)
	}
	if _, ok := d.admit(resolvedEvent("web"), c.Now()); ok {
		t.Fatal("the resolution was reported twice")
	}
	if _, ok := d.admit(resolvedEvent("other"), c.Now()); ok {
		t.Fatal("a resolution without a detection was reported")
	}
	// What drifted is the key: another container is another alert.
	if _, ok := d.admit(driftEvent("web", stopped("web-app-3")), c.Now()); !ok {
		t.Fatal("a different drift was suppressed")
	}
}

// TestDedupRepeatable: a refused prune told on every pass is sent once per
// quiet period, with the count of repeats.
func TestDedupRepeatable(t *testing.T) {
	c := newClock()
	d := newDedup(time.Hour, testFlap)
	e := reconcile.Event{Kind: reconcile.EventPruneRefused, Host: "h1", Reason: "would remove 6 of 8 containers"}
	n := 0
	for range 12 { // every 5 minutes for an hour
		if _, ok := d.admit(e, c.Now()); ok {
			n++
		}
		c.Advance(5 * time.Minute)
	}
	m, ok := d.admit(e, c.Now())
	if n != 1 || !ok || m.Suppressed != 11 {
		t.Fatalf("sent %d in the hour, then %v with %d suppressed; want 1, then true with 11", n, ok, m.Suppressed)
	}
}

// TestDedupSourcePair: unreachable and recovered pair like drift.
func TestDedupSourcePair(t *testing.T) {
	c := newClock()
	d := newDedup(time.Hour, testFlap)
	down := reconcile.Event{Kind: reconcile.EventSourceUnreachable, Host: "h1", Reason: "dial tcp: timeout"}
	up := reconcile.Event{Kind: reconcile.EventSourceRecovered, Host: "h1"}
	var sent []Message
	for range 10 {
		for _, e := range []reconcile.Event{down, up} {
			if m, ok := d.admit(e, c.Now()); ok {
				sent = append(sent, m)
			}
			c.Advance(time.Minute)
		}
	}
	// Incidents a minute apart: the third flaps. (This used to expect the
	// second incident swallowed by the quiet period.)
	if got := kinds(newMessages(sent)); got != "source-unreachable source-recovered source-unreachable source-recovered flapping" {
		t.Fatalf("sent %q", got)
	}
	if m := newMessages(sent)[4]; !strings.Contains(m.Message, "the repository: 3 incidents in 10m0s") {
		t.Errorf("flapping text %q", m.Message)
	}
}

// TestDedupPassThrough: rollout and revision events are never held back.
func TestDedupPassThrough(t *testing.T) {
	d := newDedup(time.Hour, testFlap)
	now := newClock().Now()
	for _, k := range []reconcile.EventKind{reconcile.EventRolloutStarted, reconcile.EventRolloutBatch, reconcile.EventRevisionApplied, reconcile.EventDaemonStarted} {
		for range 3 {
			if _, ok := d.admit(reconcile.Event{Kind: k, Fleet: "web"}, now); !ok {
				t.Fatalf("%s was held back", k)
			}
		}
	}
}

func TestDriftKey(t *testing.T) {
	a := driftKey([]drift.Item{stopped("b"), stopped("a"), {Container: "a", Kind: drift.Modified}})
	b := driftKey([]drift.Item{{Container: "a", Kind: drift.Modified}, stopped("a"), stopped("b"), stopped("b")})
	if a != b || a != "a/modified,a/stopped,b/stopped" {
		t.Fatalf("keys %q and %q", a, b)
	}
}

func kinds(ms []Message) string {
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += " "
		}
		s += string(m.Kind)
	}
	return s
}
