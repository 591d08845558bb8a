package dockertest

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// Swarm is a Docker Swarm of extra engines (StartEngine WithLink), every
// one a manager, so that losing one keeps quorum.
type Swarm struct {
	Engines []*Engine
}

// StartSwarm starts n linked engines and forms a swarm of n managers with
// the given dispatcher heartbeat (Swarm's default is 5 s; a node is marked
// down after missing it, and its tasks are rescheduled then). The engines
// and everything they ran are removed when the test ends. No engine can
// reach a registry: services must be created with images already loaded
// (Engine.LoadImage) and without registry queries.
func StartSwarm(t testing.TB, n int, heartbeat time.Duration) *Swarm {
	t.Helper()
	s := &Swarm{}
	for range n {
		s.Engines = append(s.Engines, StartEngine(t, WithLink()))
	}
	// Runs before the engines' own cleanup: managers that lose quorum one
	// by one take long to stop gracefully, and nothing of a test's swarm
	// needs a graceful stop.
	t.Cleanup(func() {
		for _, e := range s.Engines {
			e.Kill()
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	first := s.Engines[0].Client(t)
	spec := swarm.Spec{}
	spec.Dispatcher.HeartbeatPeriod = heartbeat
	if _, err := first.SwarmInit(ctx, swarm.InitRequest{
		ListenAddr: "0.0.0.0:2377", AdvertiseAddr: s.Engines[0].Addr, Spec: spec,
	}); err != nil {
		t.Fatalf("dockertest: swarm init on %s: %v\n%s", s.Engines[0].Name, err, s.Engines[0].logTail())
	}
	info, err := first.SwarmInspect(ctx)
	if err != nil {
		t.Fatalf("dockertest: swarm inspect: %v", err)
	}
	for _, e := range s.Engines[1:] {
		if err := e.Client(t).SwarmJoin(ctx, swarm.JoinRequest{
			ListenAddr: "0.0.0.0:2377", AdvertiseAddr: e.Addr,
			RemoteAddrs: []string{s.Engines[0].Addr + ":2377"}, JoinToken: info.JoinTokens.Manager,
		}); err != nil {
			t.Fatalf("dockertest: %s joins the swarm: %v\n%s", e.Name, err, e.logTail())
		}
	}
	s.waitReady(t, ctx, first, n)
	return s
}

// waitReady waits until every node is ready and every manager reachable.
func (s *Swarm) waitReady(t testing.TB, ctx context.Context, cli *client.Client, n int) {
	t.Helper()
	for {
		nodes, err := cli.NodeList(ctx, swarm.NodeListOptions{})
		ready := 0
		for _, node := range nodes {
			if node.Status.State == swarm.NodeStateReady && node.ManagerStatus != nil && node.ManagerStatus.Reachability == swarm.ReachabilityReachable {
				ready++
			}
		}
		if err == nil && ready == n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("dockertest: swarm not ready (%d of %d nodes): %v", ready, n, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// LoadImage loads ref from the machine's engine into every node.
func (s *Swarm) LoadImage(t testing.TB, from *client.Client, ref string) {
	t.Helper()
	for _, e := range s.Engines {
		e.LoadImage(t, from, ref)
	}
}
