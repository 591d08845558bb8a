package agent_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/engine/enginetest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/fleets/fleetstest"
	"github.com/fleetd/fleetd/reconcile"
)

// The shell tests run the agent against the in-memory engine, a source in
// memory and engine events the test sends itself.

// fakeSource serves revisions from memory; its Sync fails while down.
type fakeSource struct {
	mu     sync.Mutex
	head   string
	served string
	down   bool
	hang   chan struct{} // when set, Sync waits for it to close
}

func (s *fakeSource) push(commit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.head = commit
}

func (s *fakeSource) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *fakeSource) Sync(ctx context.Context) (reconcile.Revision, bool, error) {
	s.mu.Lock()
	hang := s.hang
	s.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-ctx.Done():
			return reconcile.Revision{}, false, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return reconcile.Revision{}, false, errors.New("dial tcp 127.0.0.1:1: connection refused")
	}
	changed := s.served != s.head
	s.served = s.head
	return reconcile.Revision{Commit: s.head, Dir: s.head}, changed, nil
}

func (s *fakeSource) Checkout(_ context.Context, commit string) (reconcile.Revision, error) {
	return reconcile.Revision{Commit: commit, Dir: commit}, nil
}

type memStore struct {
	mu    sync.Mutex
	state agent.Persisted
}

func (m *memStore) Load() (agent.Persisted, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, nil
}

func (m *memStore) Save(s agent.Persisted) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state = s
	return nil
}

type events struct {
	mu sync.Mutex
	ev []reconcile.Event
}

func (e *events) Notify(ev reconcile.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ev = append(e.ev, ev)
}

func (e *events) count(kind reconcile.EventKind) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.ev {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// engineEvents is the test's end of the agent's event subscription.
type engineEvents struct{ ch chan agent.EngineEvent }

func (e *engineEvents) watch(ctx context.Context) (<-chan agent.EngineEvent, <-chan error) {
	return e.ch, make(chan error)
}

func (e *engineEvents) send(t *testing.T, ev agent.EngineEvent) {
	t.Helper()
	select {
	case e.ch <- ev:
	case <-time.After(5 * time.Second):
		t.Fatalf("the agent did not take event %+v", ev)
	}
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var quiet = slog.New(slog.DiscardHandler)

func web(name string, replicas int) fleets.Fleet {
	return fleetstest.Fleet(name, fleetstest.Service(name, "web", replicas))
}

func newFake(t *testing.T) *enginetest.Fake {
	e := enginetest.New(t)
	e.AddRemoteImage("app:v1", "sha256:"+strings.Repeat("a", 64))
	return e
}

// harness runs an agent until the test ends.
type harness struct {
	a      *agent.Agent
	eng    *enginetest.Fake
	src    *fakeSource
	events *engineEvents
	told   *events
	store  *memStore
}

// start runs an agent following revisions from head; setup prepares the
// engine before the agent's first look at it.
func start(t *testing.T, revisions map[string][]fleets.Fleet, head string, store *memStore, setup ...func(*enginetest.Fake)) *harness {
	h := &harness{eng: newFake(t), src: &fakeSource{}, events: &engineEvents{ch: make(chan agent.EngineEvent)}, told: &events{}, store: store}
	for _, s := range setup {
		s(h.eng)
	}
	if h.store == nil {
		h.store = &memStore{}
	}
	h.src.push(head)
	load := func(_ context.Context, rev reconcile.Revision) ([]fleets.Fleet, error) {
		if f, ok := revisions[rev.Dir]; ok {
			return f, nil
		}
		return nil, fleets.ProblemList{{File: "web/compose.yaml", Line: 3, Message: "bad"}}
	}
	h.a = agent.New(agent.Config{
		Rules: agent.Rules{Host: "h1", Poll: func(last time.Time) time.Time { return last.Add(time.Hour) }},
		Load:  load, Watch: h.events.watch, Log: quiet,
	}, h.eng, h.src, h.told, nil, h.store)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- h.a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return h
}

func (h *harness) running(name string) bool {
	c, ok := h.eng.Container(name)
	return ok && c.State == "running"
}

func (h *harness) fleet(name string) agent.FleetStatus {
	for _, f := range h.a.Status().Fleets {
		if f.Name == name {
			return f
		}
	}
	return agent.FleetStatus{}
}

func TestAgentIsolatesAStalledFleet(t *testing.T) {
	revs := map[string][]fleets.Fleet{"c1": {web("a", 1), web("b", 1)}}
	h := start(t, revs, "c1", nil, func(e *enginetest.Fake) { e.AddUnmanaged("a-web-1", nil) })
	eventually(t, "b deployed", func() bool { return h.running("b-web-1") })
	eventually(t, "a stalled on the conflict", func() bool {
		return h.fleet("a").Condition(agent.Stalled).Reason == "Conflict"
	})
	if f := h.fleet("a"); !f.NextRetry.IsZero() {
		t.Errorf("a stalled with a retry at %s", f.NextRetry)
	}
	h.eng.Stop("b-web-1")
	h.events.send(t, agent.EngineEvent{Type: "container", Action: "die", Name: "b-web-1", Fleet: "b"})
	eventually(t, "b healed with a stalled", func() bool { return h.running("b-web-1") })
	h.eng.Remove("a-web-1") // the squatter
	h.events.send(t, agent.EngineEvent{Type: "container", Action: "destroy", Name: "a-web-1"})
	eventually(t, "a converged once the squatter left", func() bool {
		return h.running("a-web-1") && h.fleet("a").Condition(agent.Ready).Status == "True"
	})
	if n := h.told.count(reconcile.EventFleetStalled); n != 1 {
		t.Errorf("stalled told %d times", n)
	}
	eventually(t, "recovery told", func() bool { return h.told.count(reconcile.EventFleetRecovered) == 1 })
}

func TestAgentFollowsSourceAndKeepsLastGoodRevision(t *testing.T) {
	revs := map[string][]fleets.Fleet{"c1": {web("web", 2)}, "c2": {web("web", 3)}, "c4": {web("web", 1)}}
	h := start(t, revs, "c1", nil)
	count := func(want int) func() bool {
		return func() bool {
			got := 0
			for _, name := range h.eng.Names() {
				if h.running(name) {
					got++
				}
			}
			return got == want
		}
	}
	eventually(t, "first revision deployed", count(2))
	eventually(t, "ready", func() bool { return h.a.Ready() == nil })

	h.src.push("c2")
	h.a.RequestFetch()
	eventually(t, "c2 scaled to 3", count(3))

	h.src.push("c3") // invalid
	h.a.RequestFetch()
	eventually(t, "invalid revision reported", func() bool { return h.told.count(reconcile.EventInvalidRevision) == 1 })
	// The status is published after the step's effects (the notification
	// among them) ran: wait for it rather than read it at once.
	eventually(t, "status keeps c2 and shows the problem", func() bool {
		st := h.a.Status()
		return st.Revision != nil && st.Revision.Commit == "c2" && st.Invalid != ""
	})

	h.src.setDown(true)
	h.a.RequestFetch()
	eventually(t, "source unreachable reported once", func() bool { return h.told.count(reconcile.EventSourceUnreachable) == 1 })
	eventually(t, "status shows the source down with its backoff", func() bool {
		st := h.a.Status()
		return st.Backoff != "" && strings.Contains(st.Error, "connection refused")
	})
	// Self-heal goes on while the source is down.
	h.eng.Stop("web-web-1")
	h.events.send(t, agent.EngineEvent{Type: "container", Action: "die", Name: "web-web-1", Fleet: "web"})
	eventually(t, "healed while the source is down", count(3))

	h.src.setDown(false)
	h.src.push("c4")
	h.a.RequestSync() // a manual sync skips the backoff
	eventually(t, "recovered and applied c4", func() bool { return count(1)() && h.told.count(reconcile.EventSourceRecovered) == 1 })
	eventually(t, "applied revision persisted", func() bool {
		s, _ := h.store.Load()
		return s.Fleets["web"].Applied == "c4"
	})
	eventually(t, "status clear after recovery", func() bool {
		st := h.a.Status()
		return st.Error == "" && st.Backoff == ""
	})
}

func TestAgentRestartOnInvalidHeadResumesLastGood(t *testing.T) {
	revs := map[string][]fleets.Fleet{"good": {web("web", 2)}}
	store := &memStore{state: agent.Persisted{LastGood: "good", Applied: map[string]string{"web": "good"}}}
	h := start(t, revs, "bad", store)
	eventually(t, "last good revision resumed and applied", func() bool {
		return h.fleet("web").Desired == "good" && h.running("web-web-2")
	})
	if st := h.a.Status(); st.Invalid == "" {
		t.Errorf("the invalid head is not shown")
	}
	h.eng.Stop("web-web-1")
	h.events.send(t, agent.EngineEvent{Type: "container", Action: "die", Name: "web-web-1", Fleet: "web"})
	eventually(t, "healed from the last good revision", func() bool { return h.running("web-web-1") })
}

func TestAgentRequestsNeverBlock(t *testing.T) {
	h := start(t, map[string][]fleets.Fleet{"c1": {web("web", 1)}}, "c1", nil)
	for range 1000 {
		h.a.RequestSync()
		h.a.RequestFetch()
	}
	eventually(t, "deployed", func() bool { return h.running("web-web-1") })
}

// A fetch that hangs (a slow remote) holds nothing back: the agent heals
// meanwhile.
func TestAgentHealsWhileAFetchHangs(t *testing.T) {
	h := start(t, map[string][]fleets.Fleet{"c1": {web("web", 1)}}, "c1", nil)
	eventually(t, "deployed", func() bool { return h.running("web-web-1") })
	hang := make(chan struct{})
	h.src.mu.Lock()
	h.src.hang = hang
	h.src.mu.Unlock()
	defer close(hang)
	h.a.RequestFetch()
	time.Sleep(20 * time.Millisecond) // the fetch is under way
	h.eng.Stop("web-web-1")
	h.events.send(t, agent.EngineEvent{Type: "container", Action: "die", Name: "web-web-1", Fleet: "web"})
	eventually(t, "healed during the fetch", func() bool { return h.running("web-web-1") })
}

// Subscribing to engine events can hang (a daemon that accepts and never
// answers): the agent goes on following the source meanwhile.
func TestAgentDoesNotWaitForASubscription(t *testing.T) {
	h := &harness{eng: newFake(t), src: &fakeSource{}, told: &events{}, store: &memStore{}}
	h.src.push("c1")
	hung := make(chan struct{})
	defer close(hung)
	h.a = agent.New(agent.Config{
		Rules: agent.Rules{Host: "h1", Poll: func(last time.Time) time.Time { return last.Add(time.Hour) }},
		Load: func(context.Context, reconcile.Revision) ([]fleets.Fleet, error) {
			return []fleets.Fleet{web("web", 1)}, nil
		},
		Watch: func(ctx context.Context) (<-chan agent.EngineEvent, <-chan error) {
			select {
			case <-hung:
			case <-ctx.Done():
			}
			return nil, nil
		},
		Log: quiet,
	}, h.eng, h.src, h.told, nil, h.store)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- h.a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "the source synced while the subscription hangs", func() bool { return h.a.Ready() == nil })
}
