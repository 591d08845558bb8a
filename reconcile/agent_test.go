package reconcile_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// fakeSource serves revisions from memory; its Sync fails while down.
type fakeSource struct {
	mu      sync.Mutex
	rev     reconcile.Revision
	served  string
	down    bool
	fetches int
}

func (s *fakeSource) push(commit string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rev = reconcile.Revision{Commit: commit, Dir: commit}
}

func (s *fakeSource) Checkout(_ context.Context, commit string) (reconcile.Revision, error) {
	return reconcile.Revision{Commit: commit, Dir: commit}, nil
}

func (s *fakeSource) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *fakeSource) Sync(context.Context) (reconcile.Revision, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return reconcile.Revision{}, false, errors.New("dial tcp 127.0.0.1:1: connection refused")
	}
	changed := s.served != s.rev.Commit
	if changed {
		s.fetches++
	}
	s.served = s.rev.Commit
	return s.rev, changed, nil
}

type memStore struct {
	mu    sync.Mutex
	state reconcile.AgentState
}

func (m *memStore) Load() (reconcile.AgentState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state, nil
}

func (m *memStore) Save(s reconcile.AgentState) error {
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

// eventually polls cond for up to 5s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAgentFollowsSourceAndKeepsLastGoodRevision(t *testing.T) {
	e := newFake(t)
	src := &fakeSource{}
	src.push("c1")
	revisions := map[string][]fleets.Fleet{"c1": {web(2)}, "c2": {web(3)}, "c4": {web(1)}}
	load := func(_ context.Context, dir string) ([]fleets.Fleet, error) {
		if f, ok := revisions[dir]; ok {
			return f, nil
		}
		return nil, fleets.ProblemList{{File: "web/compose.yaml", Line: 3, Fleet: "web", Message: "bad"}}
	}
	var n events
	store := &memStore{}
	a := reconcile.NewAgent(reconcile.AgentConfig{
		Host: fleets.Host{Name: "h1"}, Load: load, Log: quiet,
		Poll: func(last time.Time) time.Time { return last.Add(time.Hour) },
	}, e, src, &n, nil, store)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()

	running := func(want int) func() bool {
		return func() bool {
			got := 0
			for _, name := range e.Names() {
				if c, _ := e.Container(name); c.State == "running" {
					got++
				}
			}
			return got == want
		}
	}
	eventually(t, "first revision deployed", running(2))
	eventually(t, "ready", func() bool { return a.Ready() == nil })

	src.push("c2")
	a.Trigger(reconcile.TriggerGit)
	eventually(t, "c2 scaled to 3", running(3))

	src.push("c3") // invalid
	a.Trigger(reconcile.TriggerGit)
	eventually(t, "invalid revision reported", func() bool { return n.count(reconcile.EventInvalidRevision) == 1 })
	if st := a.Status(); st.Revision.Commit != "c2" || st.Invalid == "" {
		t.Errorf("status after an invalid revision: revision %v, invalid %q; want c2 kept and the problem shown", st.Revision, st.Invalid)
	}
	if !running(3)() {
		t.Errorf("an invalid revision changed the host")
	}

	src.setDown(true)
	a.Trigger(reconcile.TriggerGit)
	a.Trigger(reconcile.TriggerGit)
	eventually(t, "source unreachable reported once", func() bool { return n.count(reconcile.EventSourceUnreachable) == 1 })
	if st := a.Status(); st.Backoff == "" {
		t.Errorf("no backoff in the status while the source is down")
	}
	// Self-heal keeps working while the source is down.
	e.Stop("web-api-1")
	a.Trigger(reconcile.TriggerEngine)
	eventually(t, "healed while the source is down", running(3))

	src.setDown(false)
	src.push("c4")
	a.Trigger(reconcile.TriggerManual) // a manual sync skips the backoff
	eventually(t, "recovered and applied c4", func() bool { return running(1)() && n.count(reconcile.EventSourceRecovered) == 1 })
	eventually(t, "applied revision persisted", func() bool {
		s, _ := store.Load()
		return s.Applied["web"] == "c4"
	})
	if got := n.count(reconcile.EventDaemonStarted); got != 1 {
		t.Errorf("daemon-started events = %d", got)
	}
}

// TestAgentStatusKeepsSourceError: while the source is down, the status's
// error names it even though converges (self-heal, resyncs) go on and
// succeed; it clears once the source answers again.
func TestAgentStatusKeepsSourceError(t *testing.T) {
	e := newFake(t)
	src := &fakeSource{}
	src.push("c1")
	a := reconcile.NewAgent(reconcile.AgentConfig{
		Host: fleets.Host{Name: "h1"}, Log: quiet,
		Load: func(context.Context, string) ([]fleets.Fleet, error) { return []fleets.Fleet{web(1)}, nil },
		Poll: func(last time.Time) time.Time { return last.Add(time.Hour) },
	}, e, src, nil, nil, &memStore{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "ready", func() bool { return a.Ready() == nil })

	src.setDown(true)
	a.Trigger(reconcile.TriggerGit)
	eventually(t, "backoff", func() bool { return a.Status().Backoff != "" })
	synced := a.Status().LastSync
	a.Trigger(reconcile.TriggerEngine) // a converge that succeeds
	eventually(t, "a converge while down", func() bool { return a.Status().LastSync.After(synced) })
	if st := a.Status(); !strings.Contains(st.Error, "connection refused") {
		t.Errorf("status error while the source is down: %q, want the source's error", st.Error)
	}

	src.setDown(false)
	a.Trigger(reconcile.TriggerManual)
	eventually(t, "recovered", func() bool { st := a.Status(); return st.Backoff == "" && st.Error == "" })
}

func TestAgentTriggersCoalesce(t *testing.T) {
	e := newFake(t)
	src := &fakeSource{}
	src.push("c1")
	a := reconcile.NewAgent(reconcile.AgentConfig{
		Host: fleets.Host{Name: "h1"}, Log: quiet,
		Load: func(context.Context, string) ([]fleets.Fleet, error) { return []fleets.Fleet{web(1)}, nil },
		Poll: func(last time.Time) time.Time { return last.Add(time.Hour) },
	}, e, src, nil, nil, &memStore{})
	for range 100 {
		a.Trigger(reconcile.TriggerEngine) // never blocks, before or during Run
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	eventually(t, "deployed", func() bool { c, ok := e.Container("web-api-1"); return ok && c.State == "running" })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// quiet keeps the agent's logs out of the test output.
var quiet = slog.New(slog.DiscardHandler)

func TestAgentRestartOnInvalidHeadResumesLastGood(t *testing.T) {
	e := newFake(t)
	converge(t, e, web(2))
	src := &fakeSource{}
	src.push("bad")
	load := func(_ context.Context, dir string) ([]fleets.Fleet, error) {
		if dir == "good" {
			return []fleets.Fleet{web(2)}, nil
		}
		return nil, fleets.ProblemList{{File: "web/compose.yaml", Line: 1, Message: "bad"}}
	}
	store := &memStore{state: reconcile.AgentState{LastGood: "good"}}
	a := reconcile.NewAgent(reconcile.AgentConfig{Host: fleets.Host{Name: "h1"}, Load: load, Log: quiet,
		Poll: func(last time.Time) time.Time { return last.Add(time.Hour) }}, e, src, nil, nil, store)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, "last good revision resumed", func() bool {
		st := a.Status()
		return st.Revision != nil && st.Revision.Commit == "good" && st.Invalid != ""
	})
	e.Stop("web-api-1")
	a.Trigger(reconcile.TriggerEngine)
	eventually(t, "healed from the last good revision", func() bool { c, _ := e.Container("web-api-1"); return c.State == "running" })
}
