package notify

import (
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

// TestDedupFlapping: a container going down and up 20 times in a minute
// costs two messages (the first detection and its resolution); the flaps
// after are counted, and the count rides on the next alert of that key.
func TestDedupFlapping(t *testing.T) {
	c := newClock()
	d := newDedup(time.Hour)
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
	if got := kinds(sent); got != "drift-detected drift-resolved" {
		t.Fatalf("20 flaps in a minute sent %q, want one detection and one resolution", got)
	}
	if len(d.due(c.Now())) != 0 {
		t.Fatal("a reminder while nothing is open")
	}
	// An hour after the first alert it drifts again: one alert, which says
	// how many flaps were held back.
	c.Advance(time.Hour)
	admit(driftEvent("web", stopped("web-app-1")))
	if len(sent) != 3 || sent[2].Suppressed != 19 {
		t.Fatalf("after the quiet period: %d messages, suppressed %d; want 3 and 19", len(sent), sent[len(sent)-1].Suppressed)
	}
}

// TestDedupFlappingEndsDown: a container that flaps and stays down is
// reported once the quiet period since the last alert has passed, with the
// count of flaps.
func TestDedupFlappingEndsDown(t *testing.T) {
	c := newClock()
	d := newDedup(time.Hour)
	n := 0
	for i := range 20 {
		if _, ok := d.admit(driftEvent("web", stopped("web-app-1")), c.Now()); ok {
			n++
		}
		c.Advance(time.Second)
		if i < 19 {
			if _, ok := d.admit(resolvedEvent("web"), c.Now()); ok {
				n++
			}
		}
		c.Advance(time.Second)
	}
	if n != 2 {
		t.Fatalf("%d messages during the flapping, want 2", n)
	}
	if got := d.due(c.Now()); len(got) != 0 {
		t.Fatalf("reminder inside the quiet period: %v", got)
	}
	c.Advance(time.Hour)
	got := d.due(c.Now())
	if len(got) != 1 || got[0].Kind != reconcile.EventDriftDetected || got[0].Repeat || got[0].Suppressed != 19 {
		t.Fatalf("after the quiet period: %+v, want one first alert with 19 suppressed", got)
	}
	if m, ok := d.admit(resolvedEvent("web"), c.Now()); !ok || len(m.Drift) != 1 {
		t.Fatalf("the resolution of a reported alert: %v %+v", ok, m)
	}
}

// TestDedupQuietPeriod: a persisting drift is reminded once per quiet
// period, its resolution reported once; an unreported detection's
// resolution is not.
func TestDedupQuietPeriod(t *testing.T) {
	c := newClock()
	d := newDedup(30 * time.Minute)
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
	d := newDedup(time.Hour)
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
	d := newDedup(time.Hour)
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
	if got := kinds(sent); got != "source-unreachable source-recovered" {
		t.Fatalf("sent %q", got)
	}
}

// TestDedupPassThrough: rollout and revision events are never held back.
func TestDedupPassThrough(t *testing.T) {
	d := newDedup(time.Hour)
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
