package agent_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// verifyingSource is a fakeSource whose Sync refuses some heads, as the
// git source does for an untrusted commit or a rewind: the current
// revision stays what it was.
type verifyingSource struct {
	*fakeSource
	mu      sync.Mutex
	refused map[string]string // commit -> reason
}

func (s *verifyingSource) Sync(ctx context.Context) (reconcile.Revision, bool, error) {
	s.fakeSource.mu.Lock()
	head := s.head
	s.fakeSource.mu.Unlock()
	s.mu.Lock()
	reason, bad := s.refused[head]
	s.mu.Unlock()
	if bad {
		return reconcile.Revision{}, false, &agent.RefusedError{Commit: head, Reason: reason, Why: "it is not signed"}
	}
	return s.fakeSource.Sync(ctx)
}

func TestAgentRefusedHeadKeepsLastRevisionAndStalls(t *testing.T) {
	revs := map[string][]fleets.Fleet{"good1": {web("web", 1)}, "evil": {web("web", 3)}, "good2": {web("web", 2)}}
	h := &harness{eng: newFake(t), src: &fakeSource{}, events: &engineEvents{ch: make(chan agent.EngineEvent)}, told: &events{}, store: &memStore{}}
	src := &verifyingSource{fakeSource: h.src, refused: map[string]string{"evil": "UntrustedCommit"}}
	h.src.push("good1")
	h.a = agent.New(agent.Config{
		Rules: agent.Rules{Host: "h1", Poll: func(last time.Time) time.Time { return last.Add(time.Hour) }},
		Load: func(_ context.Context, rev reconcile.Revision) ([]fleets.Fleet, error) {
			return revs[rev.Dir], nil
		},
		Watch: h.events.watch, Log: quiet,
	}, h.eng, src, h.told, nil, h.store)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- h.a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	eventually(t, "good1 applied", func() bool { return h.fleet("web").Applied == "good1" && h.running("web-web-1") })

	h.src.push("evil")
	h.a.RequestFetch()
	eventually(t, "web stalled on the refused head", func() bool {
		return h.fleet("web").Condition(agent.Stalled).Reason == "UntrustedCommit"
	})
	f := h.fleet("web")
	if c := f.Condition(agent.Stalled); !strings.Contains(c.Message, "evil refused: it is not signed") {
		t.Errorf("Stalled message %q does not name the commit and why", c.Message)
	}
	if f.Desired != "good1" || f.Applied != "good1" || h.running("web-web-2") {
		t.Errorf("after a refused head: desired %s applied %s, web-web-2 running %v; want good1 kept", f.Desired, f.Applied, h.running("web-web-2"))
	}
	if h.told.count(reconcile.EventInvalidRevision) != 1 {
		t.Errorf("the refusal was told %d times, want once", h.told.count(reconcile.EventInvalidRevision))
	}
	if st := h.a.Status(); !strings.Contains(st.Invalid, "evil refused") || st.Error != "" {
		t.Errorf("status invalid %q error %q; want the refusal shown, no source error", st.Invalid, st.Error)
	}
	s, _ := h.store.Load()
	if s.Fleets["web"].Commit != "good1" || s.Fleets["web"].Applied != "good1" {
		t.Errorf("persisted %+v, want good1 kept", s.Fleets["web"])
	}

	// Healing goes on from the last good revision.
	h.eng.Stop("web-web-1")
	h.events.send(t, agent.EngineEvent{Type: "container", Action: "die", Name: "web-web-1", Fleet: "web"})
	eventually(t, "healed while refused", func() bool { return h.running("web-web-1") })

	// A good head on top ends it.
	h.src.push("good2")
	h.a.RequestFetch()
	eventually(t, "good2 applied", func() bool { return h.fleet("web").Applied == "good2" && h.running("web-web-2") })
	if c := h.fleet("web").Condition(agent.Stalled); c.Status != "False" {
		t.Errorf("Stalled = %+v after a good head", c)
	}
}
