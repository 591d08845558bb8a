package agent_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/fleets/fleetstest"
	"github.com/fleetd/fleetd/reconcile"
)

// postedStatuses records what the agent posts, as "fleet@commit state".
type postedStatuses struct {
	mu  sync.Mutex
	got []agent.CommitStatus
}

func (p *postedStatuses) Post(c agent.CommitStatus) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.got = append(p.got, c)
}

func (p *postedStatuses) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.got {
		out = append(out, c.Fleet+"@"+c.Commit+" "+string(c.State))
	}
	return out
}

// TestAgentPostsCommitStatuses runs the agent on the in-memory engine: c1
// is posted pending then success; c2, whose new image fails its health
// gate, is rolled back and posted failure with the reason.
func TestAgentPostsCommitStatuses(t *testing.T) {
	rolling := func(image string) fleets.Fleet {
		return fleetstest.Fleet("shop", fleetstest.Service("shop", "web", 2, func(s *fleets.Service) {
			s.Spec.Image = image
			s.Update = fleets.Rollout{Parallelism: 1, Order: fleets.OrderStartFirst, FailureAction: fleets.FailureRollback}
			s.Rollback = fleets.Rollout{Parallelism: 1, Order: fleets.OrderStopFirst, FailureAction: fleets.FailurePause}
		}))
	}
	revisions := map[string][]fleets.Fleet{"c1": {rolling("app:v1")}, "c2": {rolling("app:v2")}}
	eng := newFake(t)
	eng.AddRemoteImage("app:v2", "sha256:"+strings.Repeat("b", 64))
	eng.OnStart(func(c *drift.Container) {
		if c.Image == "app:v2" {
			c.Health = "unhealthy"
		}
	})
	src := &fakeSource{}
	src.push("c1")
	posted := &postedStatuses{}
	ev := &engineEvents{ch: make(chan agent.EngineEvent)}
	a := agent.New(agent.Config{
		Rules: agent.Rules{Host: "h1", Poll: func(last time.Time) time.Time { return last.Add(time.Hour) }},
		Load: func(_ context.Context, rev reconcile.Revision) ([]fleets.Fleet, error) {
			return revisions[rev.Dir], nil
		},
		Watch: ev.watch, Log: quiet, Statuses: posted,
	}, eng, src, &events{}, nil, &memStore{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- a.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	want := []string{"shop@c1 pending", "shop@c1 success"}
	eventually(t, "c1's statuses", func() bool { return slices.Equal(posted.list(), want) })
	src.push("c2")
	a.RequestFetch()
	want = append(want, "shop@c2 pending", "shop@c2 failure")
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Equal(posted.list(), want) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := posted.list()
	if !slices.Equal(got[:min(len(got), len(want))], want) {
		t.Fatalf("posted %q, want %q (then possibly the failure's later reason)", got, want)
	}
	posted.mu.Lock()
	fail := posted.got[3]
	posted.mu.Unlock()
	t.Logf("c2: %s: %s", fail.State, fail.Description)
	if fail.Host != "h1" || !strings.Contains(fail.Description, "rollout of web") || len([]rune(fail.Description)) > agent.MaxStatusDescription {
		t.Errorf("failure %+v: want host h1 and the rollout's reason, at most %d runes", fail, agent.MaxStatusDescription)
	}
}
