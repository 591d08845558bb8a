package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

func TestRefusedHeadKeepsLastGoodAndStalls(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1))
	s.done("a")
	const bad = "badbadbadbadbadbadbadbadbadbadbadbadbadb"
	fx := s.in(FetchRefused{Commit: bad, Reason: "UntrustedCommit", Why: "it is not signed"})
	if got := applies(fx); len(got) != 0 {
		t.Errorf("applies %v after a refused head", got)
	}
	if n := countKind(notifications(fx), reconcile.EventInvalidRevision); n != 1 {
		t.Errorf("refusal told %d times, want once", n)
	}
	f := s.s.Fleets["a"]
	if f.Rev.Commit != "c1" || f.Applied != "c1" {
		t.Errorf("fleet at %s applied %s, want c1 kept", f.Rev.Commit, f.Applied)
	}
	st := s.cond("a", Stalled)
	if st.Status != condTrue || st.Reason != "UntrustedCommit" || !strings.Contains(st.Message, "badbadb") ||
		!strings.Contains(st.Message, "not signed") || !strings.Contains(st.Message, "keeps revision c1") {
		t.Errorf("Stalled = %+v, want True UntrustedCommit naming the commit, why, and c1 kept", st)
	}
	if r := s.cond("a", Ready); r.Status != condFalse || r.Reason != "UntrustedCommit" {
		t.Errorf("Ready = %+v", r)
	}
	if inv := StatusOf(s.s, "h1", s.now).Invalid; !strings.Contains(inv, "badbadbadbad refused") {
		t.Errorf("status invalid = %q", inv)
	}
	since := st.Since

	// Polls that find the same head refused are quiet; healing goes on.
	s.now = s.now.Add(time.Minute)
	fx = s.in(FetchRefused{Commit: bad, Reason: "UntrustedCommit", Why: "it is not signed"})
	if n := countKind(notifications(fx), reconcile.EventInvalidRevision); n != 0 {
		t.Errorf("the same refusal told again")
	}
	if got := s.cond("a", Stalled).Since; !got.Equal(since) {
		t.Errorf("Stalled since moved to %s", got)
	}
	fx = s.in(EngineEvent{Type: "container", Action: "die", Name: "a-web-1", Fleet: "a"})
	if got := applies(fx); !slices.Equal(got, []string{"a"}) {
		t.Errorf("applies %v on an event while refused, want a healed", got)
	}
	s.done("a")

	// A rewind is another refusal, told too.
	fx = s.in(FetchRefused{Commit: "c0", Reason: "Rewind", Why: "it is an ancestor of c1"})
	if n := countKind(notifications(fx), reconcile.EventInvalidRevision); n != 1 || s.cond("a", Stalled).Reason != "Rewind" {
		t.Errorf("rewind: told %d, Stalled %+v", n, s.cond("a", Stalled))
	}

	// A head that is taken ends the stall.
	fx = s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 2)}})
	if got := applies(fx); !slices.Equal(got, []string{"a"}) {
		t.Errorf("applies %v for the next good head", got)
	}
	if st := s.cond("a", Stalled); st.Status != condFalse {
		t.Errorf("Stalled = %+v after a good head", st)
	}
	if StatusOf(s.s, "h1", s.now).Invalid != "" {
		t.Errorf("status still shows the refusal")
	}
}

// After a restart on a refused head each fleet goes on from its saved
// commit.
func TestRestartOnRefusedHeadResumesSavedModels(t *testing.T) {
	s := newSim(t)
	s.in(Start{Fleets: map[string]SavedFleet{"a": {Commit: "good", Applied: "good"}}})
	s.in(EngineUp{})
	fx := s.in(FetchRefused{Commit: "evil", Reason: "UntrustedCommit", Why: "it is not signed"})
	if !slices.ContainsFunc(fx, func(e Effect) bool { r, ok := e.(Resume); return ok && r.Commit == "good" }) {
		t.Fatalf("no resume of the saved commit: %v", fx)
	}
	s.in(Resumed{Rev: rev("good"), For: []string{"a"}, Fleets: []fleets.Fleet{web("a", 1)}})
	if f := s.s.Fleets["a"]; f.Rev.Commit != "good" || s.cond("a", Stalled).Reason != "UntrustedCommit" {
		t.Errorf("fleet at %s, Stalled %+v", f.Rev.Commit, s.cond("a", Stalled))
	}
}
