package notify

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetd/fleetd/reconcile"
)

// TestDispatcherFlappingBound: the flapping scenario through the whole
// dispatcher, to two sinks: two incidents with their resolutions, then
// one flapping message each (it used to be two messages: the incidents
// after the first were swallowed by the quiet period). Neither sink can
// update in place, so neither gets the updates.
func TestDispatcherFlappingBound(t *testing.T) {
	c := newClock()
	a, b := newRecordSink("a"), newRecordSink("b")
	d := New(Options{Routes: []Route{{Sink: a}, {Sink: b}}, Now: c.Now})
	for range 20 {
		d.Notify(driftEvent("web", stopped("web-app-1")))
		c.Advance(time.Second)
		d.Notify(resolvedEvent("web"))
		c.Advance(2 * time.Second)
	}
	closeDispatcher(t, d)
	for _, s := range []*recordSink{a, b} {
		if got := kinds(s.messages()); got != "drift-detected drift-resolved drift-detected drift-resolved flapping" {
			t.Errorf("%s got %q", s.name, got)
		}
	}
}

// TestDispatcherReminder: a drift still there a quiet period later is
// reminded, through the dispatcher's own check.
func TestDispatcherReminder(t *testing.T) {
	c := newClock()
	s := newRecordSink("s")
	d := New(Options{Routes: []Route{{Sink: s}}, Now: c.Now, QuietPeriod: time.Hour, CheckEvery: time.Millisecond})
	defer closeDispatcher(t, d)
	d.Notify(driftEvent("web", stopped("web-app-1")))
	if m := s.next(t); m.Kind != reconcile.EventDriftDetected || m.Repeat {
		t.Fatalf("first: %+v", m)
	}
	c.Advance(time.Hour)
	m := s.next(t)
	if m.Kind != reconcile.EventDriftDetected || !m.Repeat || !m.Time.Equal(c.Now()) {
		t.Fatalf("reminder: %+v", m)
	}
	if !containsAny(plainText(m), "Still: Drift detected") {
		t.Errorf("reminder text %q", plainText(m))
	}
}

// TestFilters: kinds and minimum severity per sink.
func TestFilters(t *testing.T) {
	all, errs, drifts := newRecordSink("all"), newRecordSink("errors"), newRecordSink("drift")
	d := New(Options{Routes: []Route{
		{Sink: all},
		{Sink: errs, Filter: Filter{MinSeverity: Error}},
		{Sink: drifts, Filter: Filter{Kinds: []reconcile.EventKind{reconcile.EventDriftDetected, reconcile.EventDriftResolved}}},
	}})
	d.Notify(reconcile.Event{Kind: reconcile.EventRolloutStarted, Fleet: "web", Service: "app"})
	d.Notify(reconcile.Event{Kind: reconcile.EventRolloutFailed, Fleet: "web", Service: "app", Reason: "unhealthy"})
	d.Notify(driftEvent("web", stopped("web-app-1")))
	d.Notify(resolvedEvent("web"))
	closeDispatcher(t, d)
	want := map[*recordSink]string{
		all:    "rollout-started rollout-failed drift-detected drift-resolved",
		errs:   "rollout-failed",
		drifts: "drift-detected drift-resolved",
	}
	for s, w := range want {
		if got := kinds(s.messages()); got != w {
			t.Errorf("%s got %q, want %q", s.name, got, w)
		}
	}
}

func TestSeverityOf(t *testing.T) {
	want := map[reconcile.EventKind]Severity{
		reconcile.EventDaemonStarted: Info, reconcile.EventRevisionApplied: Info, reconcile.EventRolloutStarted: Info,
		reconcile.EventRolloutBatch: Info, reconcile.EventRolloutSucceeded: Info, reconcile.EventDriftResolved: Info,
		reconcile.EventSourceRecovered: Info, reconcile.EventDriftDetected: Warning, reconcile.EventSourceUnreachable: Warning,
		reconcile.EventPruneRefused: Warning, reconcile.EventRolloutFailed: Error, reconcile.EventRolloutRolledBack: Error,
		reconcile.EventRolloutPaused: Error, reconcile.EventInvalidRevision: Error,
	}
	for k, s := range want {
		if got := SeverityOf(k); got != s {
			t.Errorf("%s: %s, want %s", k, got, s)
		}
	}
	for _, s := range []string{"info", "warning", "error"} {
		if v, err := ParseSeverity(s); err != nil || v.String() != s {
			t.Errorf("ParseSeverity(%q) = %v, %v", s, v, err)
		}
	}
	if _, err := ParseSeverity("loud"); err == nil {
		t.Error("ParseSeverity accepted loud")
	}
}

// TestDeadSinkDoesNotBlock: a sink that never answers costs Notify nothing
// and does not delay the others.
func TestDeadSinkDoesNotBlock(t *testing.T) {
	dead := newRecordSink("dead")
	dead.gate = make(chan struct{}) // never opened
	live := newRecordSink("live")
	d := New(Options{Routes: []Route{{Sink: dead}, {Sink: live}}, QueueSize: 8})
	const n = 200
	took := make([]time.Duration, n)
	for i := range n {
		e := reconcile.Event{Kind: reconcile.EventRolloutBatch, Fleet: "web", Service: "app", Message: "batch"}
		e.Message += string(rune('a' + i%26))
		start := time.Now()
		d.Notify(e)
		took[i] = time.Since(start)
	}
	slices.Sort(took)
	median, slowest := took[n/2], took[n-1]
	t.Logf("Notify with a dead sink, %d calls: median %v, slowest %v", n, median, slowest)
	// The median is the cost; the slowest only guards against waiting on
	// the sink (which never answers), with room for a loaded machine.
	if median > 100*time.Microsecond || slowest > 500*time.Millisecond {
		t.Errorf("Notify took median %v, slowest %v", median, slowest)
	}
	for range 8 { // at least the live sink's queue worth arrives
		live.next(t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := d.Close(ctx)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close with a dead sink: %v", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("close took %v past its bound", took)
	}
}

// TestQueueOverflow: a full queue drops, counts, calls OnDropped, and the
// sink's next message says how many it missed.
func TestQueueOverflow(t *testing.T) {
	s := newRecordSink("slow")
	s.gate = make(chan struct{})
	var dropped atomic.Int64
	d := New(Options{Routes: []Route{{Sink: s}}, QueueSize: 2, OnDropped: func(n int) { dropped.Add(int64(n)) }})
	ev := func(msg string) reconcile.Event {
		return reconcile.Event{Kind: reconcile.EventRevisionApplied, Fleet: "web", Message: msg}
	}
	d.Notify(ev("first")) // taken by the worker, held at the gate
	waitFor(t, func() bool { return s.entered.Load() == 1 })
	for i := range 10 {
		d.Notify(ev("burst " + string(rune('0'+i))))
	}
	if got := dropped.Load(); got != 8 {
		t.Fatalf("dropped %d, want 8 (queue of 2)", got)
	}
	close(s.gate)
	first, next, last := s.next(t), s.next(t), s.next(t)
	if first.Dropped != 0 || next.Dropped != 8 || last.Dropped != 0 {
		t.Fatalf("dropped counts %d, %d, %d; want 0, 8, 0: the first message after the drops reports them", first.Dropped, next.Dropped, last.Dropped)
	}
	if !containsAny(joinNotes(next), "8 earlier notifications were dropped") {
		t.Errorf("notes %q", joinNotes(next))
	}
	closeDispatcher(t, d)
}

// TestFailedDeliveryCounts: a message lost after the retries counts as
// dropped for the next one.
func TestFailedDeliveryCounts(t *testing.T) {
	s := newRecordSink("flaky")
	s.fail = errors.New("boom")
	var dropped atomic.Int64
	d := New(Options{Routes: []Route{{Sink: s}}, OnDropped: func(n int) { dropped.Add(int64(n)) }, Log: slog.New(slog.DiscardHandler)})
	d.Notify(reconcile.Event{Kind: reconcile.EventRevisionApplied, Fleet: "web", Message: "lost"})
	waitFor(t, func() bool { return dropped.Load() == 1 })
	s.mu.Lock()
	s.fail = nil
	s.mu.Unlock()
	d.Notify(reconcile.Event{Kind: reconcile.EventRevisionApplied, Fleet: "web", Message: "kept"})
	if m := s.next(t); m.Dropped != 1 {
		t.Fatalf("dropped %d, want 1", m.Dropped)
	}
	closeDispatcher(t, d)
}

func TestNotifyAfterClose(t *testing.T) {
	s := newRecordSink("s")
	d := New(Options{Routes: []Route{{Sink: s}}})
	closeDispatcher(t, d)
	d.Notify(reconcile.Event{Kind: reconcile.EventDaemonStarted})
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(s.messages()) != 0 {
		t.Fatal("a message after Close")
	}
}

func TestDispatcherTest(t *testing.T) {
	ok := newRecordSink("ok")
	bad := newRecordSink("bad")
	bad.fail = errors.New("post https://hooks.example.com/services/T0/B0/sekritpath: 404")
	d := New(Options{Routes: []Route{{Sink: ok, Filter: Filter{MinSeverity: Error}}, {Sink: bad}}, Secrets: []string{"https://hooks.example.com/services/T0/B0/sekritpath"}})
	defer closeDispatcher(t, d)
	res := d.Test(t.Context(), "h1")
	if len(res) != 2 || res[0].Sink != "ok" || res[0].Err != nil || res[1].Err == nil {
		t.Fatalf("results %+v", res)
	}
	if containsAny(res[1].Err.Error(), "sekritpath") {
		t.Errorf("the error leaks the webhook URL: %v", res[1].Err)
	}
	if m := ok.messages(); len(m) != 1 || m[0].Kind != KindTest || m[0].Host != "h1" {
		t.Errorf("test message %+v", m)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met")
		}
		time.Sleep(time.Millisecond)
	}
}

func joinNotes(m Message) string {
	s := ""
	for _, n := range notes(m) {
		s += n + "\n"
	}
	return s
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if len(sub) > 0 && len(s) >= len(sub) {
			for i := 0; i+len(sub) <= len(s); i++ {
				if s[i:i+len(sub)] == sub {
					return true
				}
			}
		}
	}
	return false
}
