package agent

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/fleets/fleetstest"
	"github.com/fleetd/fleetd/reconcile"
)

// t0 is the start of every simulated run.
var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// sim drives Next with a fake clock and remembers the effects, so that a
// test reads like what happened to the agent.
type sim struct {
	t     *testing.T
	rules Rules
	now   time.Time
	s     State
	fx    []Effect // effects of the last input
	all   []Effect
}

func newSim(t *testing.T) *sim {
	return &sim{t: t, now: t0, rules: Rules{Host: "h1", Version: "test", Poll: func(last time.Time) time.Time { return last.Add(time.Hour) }}}
}

func (s *sim) in(in Input) []Effect {
	s.t.Helper()
	s.s, s.fx = Next(s.s, in, s.now, s.rules)
	s.all = append(s.all, s.fx...)
	return s.fx
}

// after moves the clock and fires the timer when it is due.
func (s *sim) after(d time.Duration) []Effect {
	s.now = s.now.Add(d)
	return s.in(TimerFired{})
}

// boot starts the agent with the engine up and revision c1 of fleets.
func (s *sim) boot(fs ...fleets.Fleet) {
	s.t.Helper()
	s.in(Start{})
	s.in(EngineUp{})
	s.in(Fetched{Rev: rev("c1"), Changed: true, Loaded: true, Fleets: fs})
}

func rev(commit string) reconcile.Revision {
	return reconcile.Revision{Commit: commit, Dir: "/trees/" + commit}
}

func web(name string, replicas int) fleets.Fleet {
	return fleetstest.Fleet(name, fleetstest.Service(name, "web", replicas))
}

// applies returns the fleets of the Apply effects among fx, in order.
func applies(fx []Effect) []string {
	var out []string
	for _, e := range fx {
		if a, ok := e.(Apply); ok {
			out = append(out, a.Fleet)
		}
	}
	return out
}

func notifications(fx []Effect) []reconcile.EventKind {
	var out []reconcile.EventKind
	for _, e := range fx {
		if n, ok := e.(Notify); ok {
			out = append(out, n.Event.Kind)
		}
	}
	return out
}

func timerAt(fx []Effect) (time.Time, bool) {
	var at time.Time
	found := false
	for _, e := range fx {
		if a, ok := e.(ArmTimer); ok {
			at, found = a.At, true
		}
	}
	return at, found
}

func (s *sim) done(fleet string, faults ...Fault) []Effect {
	s.t.Helper()
	return s.in(ApplyDone{Fleet: fleet, Revision: s.s.Fleets[fleet].Rev.Commit, Faults: faults})
}

func (s *sim) cond(fleet, typ string) Condition {
	c, _ := findCondition(s.s.Fleets[fleet].Conditions, typ)
	return c
}

var (
	conflict = Fault{Class: fault.Permanent, Reason: fault.Conflict, Object: "a-web-1", Message: "service web: name conflict: an unmanaged container holds the name"}
	timeout  = Fault{Class: fault.Retryable, Reason: fault.Timeout, Message: "wait healthy for a-web-1: timed out after 1m0s"}
	downErr  = Fault{Class: fault.Retryable, Reason: fault.EngineUnreachable, Message: "observe: docker daemon unreachable"}
)

func TestStartSubscribesBeforeItApplies(t *testing.T) {
	s := newSim(t)
	fx := s.in(Start{})
	if !slices.ContainsFunc(fx, func(e Effect) bool { _, ok := e.(Watch); return ok }) {
		t.Errorf("start: no Watch in %v", fx)
	}
	if !slices.Contains(fx, Effect(Fetch{Load: true})) {
		t.Errorf("start: no Fetch{Load} in %v", fx)
	}
	if got := notifications(fx); !slices.Equal(got, []reconcile.EventKind{reconcile.EventDaemonStarted}) {
		t.Errorf("start told %v", got)
	}
	// The revision arrives before the engine is up: nothing is applied
	// until the subscription stands.
	if fx := s.in(Fetched{Rev: rev("c1"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 1)}}); len(applies(fx)) > 0 {
		t.Fatalf("applied before the engine was up: %v", applies(fx))
	}
	if got := applies(s.in(EngineUp{})); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("engine up: applies %v, want [a]", got)
	}
	if a := s.fx[0].(Apply); !a.Full || a.Revision.Commit != "c1" || len(a.Desired) != 1 {
		t.Errorf("first apply %+v: want a full resync of c1 with the whole desired state", a)
	}
}

// TestStalledFleetHoldsNobodyBack is the scenario: an unmanaged
// container squats a-web-1. a stalls on the conflict with no timer; b is
// healed at once, at every point of a's history; the squatter's removal
// wakes a.
func TestStalledFleetHoldsNobodyBack(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1), web("b", 1))
	if got := applies(s.fx); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("first applies %v, want both fleets at once", got)
	}
	// b-web-1 is stopped while a's apply runs: b's pass does not wait.
	s.done("b")
	if got := applies(s.in(EngineEvent{Type: "container", Action: "die", Name: "b-web-1", Fleet: "b"})); !slices.Equal(got, []string{"b"}) {
		t.Errorf("b's event during a's apply: applies %v, want [b]", got)
	}
	s.done("b")
	fx := s.done("a", conflict)
	if got := notifications(fx); !slices.Contains(got, reconcile.EventFleetStalled) {
		t.Errorf("stall told %v", got)
	}
	if c := s.cond("a", Stalled); c.Status != condTrue || c.Reason != "Conflict" {
		t.Errorf("a Stalled = %+v", c)
	}
	if !s.s.Fleets["a"].RetryAt.IsZero() {
		t.Errorf("a permanent fault armed a retry at %s", s.s.Fleets["a"].RetryAt)
	}
	// Hours pass: a is never retried by time.
	for range 10 {
		got := applies(s.after(17 * time.Minute))
		if slices.Contains(got, "a") {
			t.Fatalf("a retried by the clock at %s", s.now)
		}
		if slices.Contains(got, "b") {
			s.done("b") // b's periodic resync
		}
	}
	// b's drift is healed at once, every time.
	for range 3 {
		if got := applies(s.in(EngineEvent{Type: "container", Action: "stop", Name: "b-web-1", Fleet: "b"})); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("b's event with a stalled: applies %v", got)
		}
		s.done("b")
	}
	// An unrelated container's removal does not wake a; the squatter's does.
	if got := applies(s.in(EngineEvent{Type: "container", Action: "destroy", Name: "someone-else"})); len(got) > 0 {
		t.Errorf("an unrelated destroy woke %v", got)
	}
	if got := applies(s.in(EngineEvent{Type: "container", Action: "destroy", Name: "a-web-1"})); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("the squatter's removal: applies %v, want [a]", got)
	}
	fx = s.done("a")
	if got := notifications(fx); !slices.Contains(got, reconcile.EventFleetRecovered) {
		t.Errorf("recovery told %v", got)
	}
	if c := s.cond("a", Ready); c.Status != condTrue {
		t.Errorf("a Ready after recovery = %+v", c)
	}
}

func TestSquatterRenamedAwayWakesStalledFleet(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1))
	s.done("a", conflict)
	if got := applies(s.in(EngineEvent{Type: "container", Action: "rename", Name: "parked", OldName: "a-web-1"})); !slices.Equal(got, []string{"a"}) {
		t.Errorf("rename away: applies %v", got)
	}
}

func TestRetryableFaultBacksOffPerFleet(t *testing.T) {
	s := newSim(t)
	s.rules.Retry = Backoff{Floor: 10 * time.Second, Ceil: 40 * time.Second}
	s.boot(web("a", 1), web("b", 1))
	s.done("b")
	var waits []time.Duration
	for range 4 {
		fx := s.done("a", timeout)
		at := s.s.Fleets["a"].RetryAt
		if at.IsZero() {
			t.Fatal("a retryable fault armed no retry")
		}
		if tat, ok := timerAt(fx); !ok || !tat.Equal(at) {
			t.Errorf("timer armed at %v (%v), want %s", tat, ok, at)
		}
		waits = append(waits, at.Sub(s.now))
		// An event during the backoff is held, not lost.
		if got := applies(s.in(EngineEvent{Type: "container", Action: "die", Name: "a-web-1", Fleet: "a"})); len(got) > 0 {
			t.Fatalf("an event started a during its backoff: %v", got)
		}
		// b is not held back.
		if got := applies(s.in(EngineEvent{Type: "container", Action: "die", Name: "b-web-1", Fleet: "b"})); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("b held back by a's backoff: %v", got)
		}
		s.done("b")
		s.now = at
		if got := applies(s.in(TimerFired{})); !slices.Equal(got, []string{"a"}) {
			t.Fatalf("retry due: applies %v", got)
		}
	}
	for i, w := range waits {
		want := min(10*time.Second<<i, 40*time.Second)
		if w < want*9/10 || w > want*11/10 {
			t.Errorf("wait %d = %s, want %s ±10%%", i+1, w, want)
		}
	}
	if got := notifications(s.all); countKind(got, reconcile.EventFleetFailing) != 1 {
		t.Errorf("failing told %d times, want once", countKind(got, reconcile.EventFleetFailing))
	}
	// A new revision for a ends its backoff at once.
	s.done("a", timeout)
	fx := s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 2), web("b", 1)}})
	if got := applies(fx); !slices.Equal(got, []string{"a"}) {
		t.Errorf("new revision during a's backoff: applies %v, want [a] (b did not change)", got)
	}
}

func countKind(ks []reconcile.EventKind, k reconcile.EventKind) int {
	n := 0
	for _, x := range ks {
		if x == k {
			n++
		}
	}
	return n
}

func TestTriggerDuringApplyCausesOneMorePass(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1))
	for range 5 {
		if got := applies(s.in(EngineEvent{Type: "container", Action: "die", Name: "a-web-1", Fleet: "a"})); len(got) > 0 {
			t.Fatalf("second apply of a while one runs: %v", got)
		}
	}
	s.in(SyncRequested{})
	// The events and the sync ask for one more pass; a heal does not wait
	// for the sync's fetch.
	if got := applies(s.done("a")); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("after the apply: applies %v, want exactly one more of a", got)
	}
	for _, e := range s.fx {
		if ap, ok := e.(Apply); ok && !ap.Retry {
			t.Errorf("the pass after a manual sync does not retry rollouts: %+v", ap)
		}
	}
	if got := applies(s.in(Fetched{Rev: rev("c1")})); len(got) > 0 {
		t.Fatalf("the fetch brought nothing new, yet applies %v", got)
	}
	if got := applies(s.done("a")); len(got) > 0 {
		t.Errorf("a third pass: %v", got)
	}
}

func TestInvalidFleetKeepsItsModelOthersMoveOn(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1), web("b", 1))
	s.done("a")
	s.done("b")
	bad := []fleets.Problem{{File: "a/compose.yaml", Line: 3, Fleet: "a", Message: "services.web.image: required"}}
	fx := s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("b", 3)}, Problems: bad})
	if got := applies(fx); !slices.Equal(got, []string{"b"}) {
		t.Errorf("applies %v, want b only (a keeps c1, and is not pruned)", got)
	}
	if a := s.s.Fleets["a"]; a.Model == nil || a.Gone || a.Rev.Commit != "c1" {
		t.Errorf("a after an invalid revision: model %v gone %v rev %s; want c1 kept", a.Model != nil, a.Gone, a.Rev.Commit)
	}
	if c := s.cond("a", Stalled); c.Status != condTrue || c.Reason != "InvalidSpec" || !strings.Contains(c.Message, "image: required") {
		t.Errorf("a Stalled = %+v", c)
	}
	if got := notifications(fx); countKind(got, reconcile.EventInvalidRevision) != 1 {
		t.Errorf("told %v, want one invalid-revision", got)
	}
	// a is still healed from its last good model.
	if got := applies(s.in(EngineEvent{Type: "container", Action: "die", Name: "a-web-1", Fleet: "a"})); !slices.Equal(got, []string{"a"}) {
		t.Errorf("a not healed while its newest revision is invalid: %v", got)
	}
	if ap := s.fx[0].(Apply); ap.Revision.Commit != "c1" {
		t.Errorf("a healed at %s, want its last good c1", ap.Revision.Commit)
	}
	// A fixed revision clears the stall.
	s.done("a")
	s.done("b")
	s.in(Fetched{Rev: rev("c3"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 2), web("b", 3)}})
	if c := s.cond("a", Stalled); c.Status != condFalse {
		t.Errorf("a Stalled after the fix = %+v", c)
	}
}

func TestRevisionWithProblemsPrunesNothing(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1), web("b", 1))
	s.done("a")
	s.done("b")
	// b's directory no longer names b (its name: field broke), and a
	// problem is reported under another name: b must not be pruned.
	bad := []fleets.Problem{{File: "b/compose.yaml", Fleet: "b-typo", Message: "bad"}}
	fx := s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 1)}, Problems: bad})
	if got := applies(fx); len(got) > 0 {
		t.Errorf("applies %v: nothing changed that may be acted on", got)
	}
	if b := s.s.Fleets["b"]; b.Gone || b.Model == nil {
		t.Errorf("b pruned on a revision with problems")
	}
	// A problem no fleet owns changes nothing at all.
	fx = s.in(Fetched{Rev: rev("c3"), Changed: true, Loaded: true, Problems: []fleets.Problem{{File: "x", Message: "unreadable"}}})
	if got := applies(fx); len(got) > 0 || s.s.Revision.Commit != "c2" || s.s.Invalid == "" {
		t.Errorf("a revision with a global problem: applies %v, revision %s, invalid %q", got, s.s.Revision.Commit, s.s.Invalid)
	}
}

func TestFleetThatLeftIsPrunedThenForgotten(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1), web("b", 1))
	s.done("a")
	s.done("b")
	fx := s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 1)}})
	if got := applies(fx); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("applies %v, want b (to prune it)", got)
	}
	var ap Apply
	for _, e := range fx {
		if a, ok := e.(Apply); ok {
			ap = a
		}
	}
	if ap.Model != nil || len(ap.Desired) != 1 || ap.Desired[0].Name != "a" {
		t.Errorf("prune apply %+v: want no model and a alone desired", ap)
	}
	s.done("b")
	if _, ok := s.s.Fleets["b"]; ok {
		t.Errorf("b still known after its prune")
	}
	// A refused prune stalls it instead, without a timer.
	s.in(Fetched{Rev: rev("c3"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{}})
	fx = s.done("a", Fault{Class: fault.Permanent, Reason: fault.PruneRefused, Message: "prune guard: ..."})
	if got := notifications(fx); !slices.Contains(got, reconcile.EventPruneRefused) {
		t.Errorf("refused prune told %v", got)
	}
	if a := s.s.Fleets["a"]; !a.Gone || !a.RetryAt.IsZero() {
		t.Errorf("a after a refused prune: gone %v retry %v", a.Gone, a.RetryAt)
	}
}

func TestStraysAreAdoptedForPruning(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1))
	fx := s.in(ApplyDone{Fleet: "a", Revision: "c1", Strays: []string{"old"}})
	if got := applies(fx); !slices.Equal(got, []string{"old"}) {
		t.Errorf("applies %v, want the stray fleet pruned", got)
	}
	// A managed container event of an unknown fleet too.
	s.done("old")
	fx = s.in(EngineEvent{Type: "container", Action: "start", Name: "older-web-1", Fleet: "older"})
	if got := applies(fx); !slices.Equal(got, []string{"older"}) {
		t.Errorf("applies %v, want older pruned", got)
	}
}

func TestEngineOutage(t *testing.T) {
	s := newSim(t)
	s.rules.EngineRetry = Backoff{Floor: time.Second, Ceil: 8 * time.Second}
	s.boot(web("a", 1), web("b", 1))
	s.done("b")
	fx := s.in(EngineLost{Err: "EOF"})
	if got := notifications(fx); !slices.Equal(got, []reconcile.EventKind{reconcile.EventEngineUnreachable}) {
		t.Errorf("lost told %v", got)
	}
	// a's apply fails because of it: not a failure of a's.
	s.done("a", downErr)
	if a := s.s.Fleets["a"]; a.Failures != 0 || a.Pending == 0 {
		t.Errorf("a after an engine-down fault: failures %d pending %v", a.Failures, a.Pending)
	}
	if c := s.cond("b", Degraded); c.Status != condTrue || c.Reason != "EngineUnreachable" {
		t.Errorf("b Degraded while the engine is down = %+v", c)
	}
	if got := applies(s.in(EngineEvent{Type: "container", Action: "die", Name: "b-web-1", Fleet: "b"})); len(got) > 0 {
		t.Errorf("applied while the engine is down: %v", got)
	}
	// Reconnects with backoff: each Watch waits longer.
	var watches []time.Time
	for range 3 {
		at := s.s.Engine.RetryAt
		s.now = at
		fx := s.in(TimerFired{})
		if !slices.ContainsFunc(fx, func(e Effect) bool { _, ok := e.(Watch); return ok }) {
			t.Fatalf("no Watch at %s", at)
		}
		watches = append(watches, at)
		s.in(EngineLost{Err: "connection refused"})
	}
	if d1, d2 := watches[1].Sub(watches[0]), watches[2].Sub(watches[1]); d2 <= d1 {
		t.Errorf("reconnects not backing off: %s then %s", d1, d2)
	}
	if got := notifications(s.all); countKind(got, reconcile.EventEngineUnreachable) != 1 {
		t.Errorf("engine unreachable told %d times", countKind(got, reconcile.EventEngineUnreachable))
	}
	// A daemon on its way down still answers the ping: up, then the
	// resync fails. While the watch says up, that is each fleet's own
	// retryable fault (backoff, told as nothing new); the watch's stream
	// breaking is what declares the outage again.
	s.now = s.s.Engine.RetryAt
	s.in(TimerFired{})
	s.in(EngineUp{})
	s.done("a", downErr)
	s.done("b", downErr)
	if a := s.s.Fleets["a"]; a.RetryAt.IsZero() {
		t.Errorf("an engine fault with the watch up armed no retry for a")
	}
	s.in(EngineLost{Err: "EOF"})
	s.now = s.s.Engine.RetryAt
	s.in(TimerFired{})
	fx = s.in(EngineUp{})
	if got := applies(fx); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("engine back: applies %v, want every fleet", got)
	}
	for _, e := range fx {
		if ap, ok := e.(Apply); ok && !ap.Full {
			t.Errorf("resync after the engine came back is not full: %+v", ap)
		}
	}
	if got := notifications(fx); slices.Contains(got, reconcile.EventEngineRecovered) {
		t.Errorf("recovery told before anything got through: %v", got)
	}
	if got := notifications(s.done("a")); !slices.Contains(got, reconcile.EventEngineRecovered) {
		t.Errorf("recovery not told after an apply got through: %v", got)
	}
	all := notifications(s.all)
	if countKind(all, reconcile.EventEngineUnreachable) != 1 || countKind(all, reconcile.EventEngineRecovered) != 1 {
		t.Errorf("told %v: want the outage and its end once each", all)
	}
}

func TestParallelBound(t *testing.T) {
	s := newSim(t)
	s.rules.Parallel = 2
	var fs []fleets.Fleet
	for i := range 5 {
		fs = append(fs, web(fmt.Sprintf("f%d", i), 1))
	}
	s.boot(fs...)
	if got := applies(s.fx); len(got) != 2 {
		t.Fatalf("applies %v, want 2 (the bound)", got)
	}
	started := 2
	for started < 5 {
		running := ""
		for name, f := range s.s.Fleets {
			if f.Running {
				running = name
				break
			}
		}
		started += len(applies(s.done(running)))
		if s.s.Running > 2 {
			t.Fatalf("%d applies in flight", s.s.Running)
		}
	}
}

func TestSourceOutageKeepsServingAndBacksOff(t *testing.T) {
	s := newSim(t)
	s.rules.SourceRetry = Backoff{Floor: time.Second, Ceil: time.Minute}
	s.boot(web("a", 1))
	s.done("a")
	s.in(FetchRequested{})
	fx := s.in(FetchFailed{Err: "dial tcp 127.0.0.1:1: connection refused"})
	if got := notifications(fx); !slices.Equal(got, []reconcile.EventKind{reconcile.EventSourceUnreachable}) {
		t.Errorf("told %v", got)
	}
	// Webhooks during the backoff wait for it; heals go on.
	if fx := s.in(FetchRequested{}); slices.ContainsFunc(fx, isFetch) {
		t.Errorf("fetched during the backoff")
	}
	if got := applies(s.in(EngineEvent{Type: "container", Action: "die", Name: "a-web-1", Fleet: "a"})); !slices.Equal(got, []string{"a"}) {
		t.Errorf("heal with the source down: %v", got)
	}
	s.done("a")
	s.now = s.s.Source.RetryAt
	if fx := s.in(TimerFired{}); !slices.ContainsFunc(fx, isFetch) {
		t.Errorf("no fetch when the backoff ended: %v", fx)
	}
	s.in(FetchFailed{Err: "refused"})
	// A manual sync skips the backoff.
	if fx := s.in(SyncRequested{}); !slices.ContainsFunc(fx, isFetch) {
		t.Errorf("a manual sync waited for the backoff")
	}
	fx = s.in(Fetched{Rev: rev("c1")})
	if got := notifications(fx); !slices.Contains(got, reconcile.EventSourceRecovered) {
		t.Errorf("recovery told %v", got)
	}
	if got := notifications(s.all); countKind(got, reconcile.EventSourceUnreachable) != 1 {
		t.Errorf("unreachable told %d times", countKind(got, reconcile.EventSourceUnreachable))
	}
}

func isFetch(e Effect) bool { _, ok := e.(Fetch); return ok }

func TestRestartOnInvalidHeadResumesSavedModels(t *testing.T) {
	s := newSim(t)
	s.in(Start{Fleets: map[string]SavedFleet{"a": {Commit: "good", Applied: "good"}, "b": {Commit: "good", Applied: "good"}}})
	s.in(EngineUp{})
	fx := s.in(Fetched{Rev: rev("bad"), Changed: true, Loaded: true, Problems: []fleets.Problem{{File: "x", Message: "broken"}}})
	var resume Resume
	for _, e := range fx {
		if r, ok := e.(Resume); ok {
			resume = r
		}
	}
	if resume.Commit != "good" || !slices.Equal(resume.Fleets, []string{"a", "b"}) {
		t.Fatalf("resume %+v, want good for a and b", resume)
	}
	fx = s.in(Resumed{Rev: rev("good"), For: resume.Fleets, Fleets: []fleets.Fleet{web("a", 1), web("b", 1)}})
	if got := applies(fx); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("applies %v after resuming", got)
	}
	// The same with the source down at start.
	s2 := newSim(t)
	s2.in(Start{Fleets: map[string]SavedFleet{"a": {Commit: "good"}}})
	if fx := s2.in(FetchFailed{Err: "down"}); !slices.ContainsFunc(fx, func(e Effect) bool { _, ok := e.(Resume); return ok }) {
		t.Errorf("source down at start: no resume of the saved model")
	}
}

func TestWindowsReportOnly(t *testing.T) {
	s := newSim(t)
	s.rules.InWindow = func(t time.Time) bool { return t.Hour() == 3 }
	s.boot(web("a", 1))
	ap := s.fx[len(s.fx)-2]
	for _, e := range s.fx {
		if a, ok := e.(Apply); ok {
			ap = a
		}
	}
	if !ap.(Apply).ReportOnly {
		t.Errorf("apply outside the window is not report-only")
	}
}

func TestResyncSurveysOnceForAllFleets(t *testing.T) {
	s := newSim(t)
	s.rules.Resync = 5 * time.Minute
	s.boot(web("a", 1), web("b", 1), web("c", 1))
	s.done("a")
	s.done("b")
	s.done("c", conflict)
	fx := s.after(6 * time.Minute)
	var surveys []Survey
	for _, e := range fx {
		if sv, ok := e.(Survey); ok {
			surveys = append(surveys, sv)
		}
	}
	if len(surveys) != 1 || len(applies(fx)) != 0 {
		t.Fatalf("resync: %d surveys and applies %v; want one survey and no apply", len(surveys), applies(fx))
	}
	if got := len(surveys[0].Desired); got != 3 {
		t.Errorf("survey of %d fleets, want 3", got)
	}
	fx = s.in(Surveyed{Drifted: []string{"b", "c"}, Strays: []string{"gone"}})
	if got := applies(fx); !slices.Equal(got, []string{"b", "gone"}) {
		t.Errorf("after the survey: applies %v; want b (drifted) and gone (a stray), not c (stalled)", got)
	}
	for _, e := range fx {
		if ap, ok := e.(Apply); ok && ap.Fleet == "b" && !ap.Full {
			t.Errorf("b's resync apply is not full")
		}
	}
}

func TestStallWakesOnlyOnWhatCanChangeIt(t *testing.T) {
	for _, tc := range []struct {
		fault Fault
		wake  EngineEvent
		not   EngineEvent
	}{
		{Fault{Class: fault.Permanent, Reason: fault.ImageNotFound, Object: "app:v9"}, EngineEvent{Type: "image", Action: "pull", Name: "app:v9"}, EngineEvent{Type: "container", Action: "destroy", Name: "x"}},
		{Fault{Class: fault.Permanent, Reason: fault.PortAllocated, Object: "0.0.0.0:8080"}, EngineEvent{Type: "container", Action: "die", Name: "other-1"}, EngineEvent{Type: "image", Action: "tag", Name: "x:1"}},
		{Fault{Class: fault.Permanent, Reason: fault.NotFound}, EngineEvent{Type: "network", Action: "create", Name: "shared"}, EngineEvent{Type: "network", Action: "destroy", Name: "shared"}},
		{Fault{Class: fault.Permanent, Reason: fault.Conflict, Object: "a_default"}, EngineEvent{Type: "network", Action: "destroy", Name: "a_default"}, EngineEvent{Type: "network", Action: "destroy", Name: "b_default"}},
		{Fault{Class: fault.Permanent, Reason: fault.RolloutFailed}, EngineEvent{Type: "container", Action: "die", Name: "a-web-1", Fleet: "a"}, EngineEvent{Type: "image", Action: "pull", Name: "app:v2"}},
	} {
		s := newSim(t)
		s.boot(web("a", 1))
		s.done("a", tc.fault)
		if got := applies(s.in(tc.not)); len(got) > 0 {
			t.Errorf("%s stall woken by %+v", tc.fault.Reason, tc.not)
		}
		if got := applies(s.in(tc.wake)); !slices.Equal(got, []string{"a"}) {
			t.Errorf("%s stall not woken by %+v: %v", tc.fault.Reason, tc.wake, got)
		}
	}
}

func TestSyncAloneWaitsForItsFetch(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1))
	s.done("a")
	if got := applies(s.in(SyncRequested{})); len(got) > 0 {
		t.Fatalf("a sync applied %v before its fetch", got)
	}
	fx := s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 2)}})
	var ap Apply
	for _, e := range fx {
		if a, ok := e.(Apply); ok {
			ap = a
		}
	}
	if ap.Fleet != "a" || ap.Revision.Commit != "c2" || !ap.Retry {
		t.Errorf("after the fetch: %+v, want a at c2 retrying rollouts", ap)
	}
}

// Findings of a review, each held by a test.
func TestReviewFindings(t *testing.T) {
	t.Run("a timer that fires early is armed again", func(t *testing.T) {
		s := newSim(t)
		s.boot(web("a", 1))
		at := s.s.TimerAt
		s.now = at.Add(-time.Millisecond) // the wall clock stepped back
		if _, ok := timerAt(s.in(TimerFired{})); !ok {
			t.Errorf("no ArmTimer after an early fire: the timer is dead")
		}
	})
	t.Run("nothing is applied before the desired state is whole", func(t *testing.T) {
		s := newSim(t)
		s.in(Start{Fleets: map[string]SavedFleet{"a": {Commit: "c0"}, "b": {Gone: true}}})
		if got := applies(s.in(EngineUp{})); len(got) > 0 {
			t.Errorf("applied %v before any revision: b's prune would see no desired fleet", got)
		}
		fx := s.in(Fetched{Rev: rev("c1"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 1)}})
		if got := applies(fx); !slices.Equal(got, []string{"a", "b"}) {
			t.Errorf("after the revision: applies %v", got)
		}
	})
	t.Run("a fleet removed outside the sync windows is pruned when one opens", func(t *testing.T) {
		s := newSim(t)
		open := false
		s.rules.InWindow = func(time.Time) bool { return open }
		open = true
		s.boot(web("a", 1), web("b", 1))
		s.done("a")
		s.done("b")
		open = false
		s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 1)}})
		s.in(ApplyDone{Fleet: "b", Revision: "", ReportOnly: true, Left: []drift.Item{{Fleet: "b", Kind: drift.Orphan}}})
		if got := applies(s.after(time.Minute)); len(got) > 0 {
			t.Errorf("applied %v with the window closed", got)
		}
		open = true
		if got := applies(s.after(time.Minute)); !slices.Equal(got, []string{"b"}) {
			t.Errorf("the window opened: applies %v, want b's prune", got)
		}
	})
	t.Run("a stall with two reasons wakes on either", func(t *testing.T) {
		s := newSim(t)
		s.boot(web("a", 1))
		s.done("a", Fault{Class: fault.Permanent, Reason: fault.ImageNotFound, Object: "app:v9"},
			Fault{Class: fault.Permanent, Reason: fault.PortAllocated, Object: "0.0.0.0:80"})
		if got := applies(s.in(EngineEvent{Type: "container", Action: "die", Name: "other"})); !slices.Equal(got, []string{"a"}) {
			t.Errorf("the port holder stopped: applies %v", got)
		}
	})
	t.Run("a failing fleet fixed by a revision is told recovered", func(t *testing.T) {
		s := newSim(t)
		s.boot(web("a", 1))
		s.done("a", timeout)
		s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 2)}})
		if got := notifications(s.done("a")); !slices.Contains(got, reconcile.EventFleetRecovered) {
			t.Errorf("told %v", got)
		}
	})
	t.Run("conditions say since when", func(t *testing.T) {
		s := newSim(t)
		s.boot(web("a", 1))
		s.now = s.now.Add(time.Minute)
		s.done("a")
		if c := s.cond("a", Ready); !c.Since.Equal(s.now) {
			t.Errorf("Ready since %s, want %s", c.Since, s.now)
		}
	})
	t.Run("a commit that leaves a fleet as it was applies it too", func(t *testing.T) {
		s := newSim(t)
		s.boot(web("a", 1), web("b", 1))
		s.done("a")
		s.done("b")
		s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 1), web("b", 2)}})
		if a := s.s.Fleets["a"]; a.Applied != "c2" || s.cond("a", Ready).Status != condTrue {
			t.Errorf("a applied %s, Ready %+v", a.Applied, s.cond("a", Ready))
		}
	})
	t.Run("a resumed fleet keeps the newest revision's problems", func(t *testing.T) {
		s := newSim(t)
		s.in(Start{Fleets: map[string]SavedFleet{"a": {Commit: "good"}}})
		s.in(EngineUp{})
		s.in(Fetched{Rev: rev("bad"), Changed: true, Loaded: true, Problems: []fleets.Problem{{Fleet: "a", Message: "broken"}}})
		s.in(Resumed{Rev: rev("good"), For: []string{"a"}, Fleets: []fleets.Fleet{web("a", 1)}})
		if c := s.cond("a", Stalled); c.Reason != "InvalidSpec" {
			t.Errorf("a Stalled %+v after resuming on an invalid head", c)
		}
	})
	t.Run("a superseded rollout delay is dropped", func(t *testing.T) {
		s := newSim(t)
		s.boot(web("a", 1))
		s.in(ApplyDone{Fleet: "a", Revision: "c1", NextAt: s.now.Add(time.Hour)})
		s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 2)}})
		s.done("a")
		if a := s.s.Fleets["a"]; !a.Delay.IsZero() {
			t.Errorf("delay %s kept after an apply that set none", a.Delay)
		}
	})
}

// A swarm fleet on a standby agent: its apply does nothing and is no
// fault (no stall, no retry timer, no message); it is applied again when
// the agent takes the lease, and at each resync (the host's survey cannot
// see a swarm's services).
func TestSwarmFleetStandbyAndLeadership(t *testing.T) {
	s := newSim(t)
	s.rules.Resync = 5 * time.Minute
	sw := web("sw", 3)
	sw.Engine, sw.Targets = fleets.EngineSwarm, false
	s.boot(sw, web("a", 1))
	fx := s.in(ApplyDone{Fleet: "sw", Revision: "c1", Standby: "agent2"})
	if len(notifications(fx)) != 0 {
		t.Errorf("a standby apply told %v", notifications(fx))
	}
	if _, armed := timerAt(fx); armed && !s.s.Fleets["sw"].RetryAt.IsZero() {
		t.Error("a standby apply armed a retry")
	}
	if f := s.s.Fleets["sw"]; f.Stall != nil || len(f.Faults) > 0 || f.Applied != "" {
		t.Errorf("standby: stall %v, faults %v, applied %q; want none", f.Stall, f.Faults, f.Applied)
	}
	if c := s.cond("sw", Ready); c.Status != "Unknown" || c.Reason != "Standby" || !strings.Contains(c.Message, "agent2") {
		t.Errorf("Ready = %+v, want Unknown/Standby naming the active agent", c)
	}
	s.done("a")
	if got := applies(s.in(LeaderChanged{Leading: true})); !slices.Equal(got, []string{"sw"}) {
		t.Errorf("taking the lease applies %v, want the swarm fleet only", got)
	}
	s.in(ApplyDone{Fleet: "sw", Revision: "c1", Changes: "created 1 service"})
	if c := s.cond("sw", Ready); c.Status != condTrue {
		t.Errorf("after an apply as the active agent: Ready = %+v", c)
	}
	if got := applies(s.in(LeaderChanged{Leading: false})); len(got) != 0 {
		t.Errorf("losing the lease applies %v", got)
	}
	s.after(6 * time.Minute) // the resync's survey
	if got := applies(s.in(Surveyed{})); !slices.Equal(got, []string{"sw"}) {
		t.Errorf("a survey with no docker drift applies %v, want the swarm fleet", got)
	}
}

// A new commit wakes a swarm fleet even when its model is unchanged (its
// nodes.yaml may have changed); a docker fleet with an unchanged model
// stays asleep.
func TestNewCommitWakesSwarmFleets(t *testing.T) {
	s := newSim(t)
	sw := web("sw", 3)
	sw.Engine, sw.Targets = fleets.EngineSwarm, false
	s.boot(sw, web("a", 1))
	s.in(ApplyDone{Fleet: "sw", Revision: "c1"})
	s.done("a")
	fx := s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{sw, web("a", 1)}})
	if got := applies(fx); !slices.Equal(got, []string{"sw"}) {
		t.Errorf("a commit that changes no model applies %v, want the swarm fleet only", got)
	}
}

// A swarm service changed by hand is looked at once (not at the next
// resync); a node event wakes every swarm fleet, stalled ones too.
func TestSwarmEventsWakeSwarmFleets(t *testing.T) {
	s := newSim(t)
	sw := web("sw", 3)
	sw.Engine, sw.Targets = fleets.EngineSwarm, false
	other := web("sw2", 1)
	other.Engine, other.Targets = fleets.EngineSwarm, false
	s.boot(sw, other, web("a", 1))
	s.in(ApplyDone{Fleet: "sw", Revision: "c1"})
	s.done("a")
	s.in(ApplyDone{Fleet: "sw2", Revision: "c1", Faults: []Fault{{Class: fault.Permanent, Reason: fault.InvalidSpec, Object: "nodes.yaml", Message: "nodes.yaml: node9: not a node of the swarm"}}})
	if got := applies(s.in(EngineEvent{Type: "service", Action: "update", Name: "sw_web"})); !slices.Equal(got, []string{"sw"}) {
		t.Errorf("a service update of sw_web applies %v, want sw", got)
	}
	s.in(ApplyDone{Fleet: "sw", Revision: "c1"})
	got := applies(s.in(EngineEvent{Type: "node", Action: "update", Name: "node9"}))
	slices.Sort(got)
	if !slices.Equal(got, []string{"sw", "sw2"}) {
		t.Errorf("a node event applies %v, want both swarm fleets (sw2 stalled)", got)
	}
}
