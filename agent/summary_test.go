package agent

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

func TestSummarize(t *testing.T) {
	eff := Apply{Fleet: "a", Revision: rev("c1"), Desired: []fleets.Fleet{web("a", 2), web("b", 1)}}
	first := reconcile.ActionPlan{Drift: []drift.Item{
		{Fleet: "a", Container: "a-web-1", Kind: drift.Stopped},
		{Fleet: "a", Container: "a-web-2", Kind: drift.Missing},
		{Fleet: "b", Container: "b-web-1", Kind: drift.Stopped}, // another fleet's: not this apply's
		{Fleet: "old", Container: "old-web-1", Kind: drift.Orphan},
	}}
	pull := reconcile.Action{ID: 1, Op: reconcile.OpPull, Fleet: "a", Target: "app:v1"}
	start := reconcile.Action{ID: 2, Op: reconcile.OpStart, Fleet: "a", Target: "a-web-1"}
	gate := reconcile.Action{ID: 3, Op: reconcile.OpWaitUp, Fleet: "a", Target: "a-web-2", Rollout: true}
	rep := reconcile.Report{Results: []reconcile.Result{
		{Action: start, Status: reconcile.Done},
		// A rollout gate's failure is Advance's to judge (a rollback or a
		// pause, left blocked below), not a fault to retry.
		{Action: gate, Status: reconcile.Failed, Err: fault.New(fault.Retryable, fault.Unhealthy, "a-web-2", errors.New("exited")), Error: "exited"},
		{Action: pull, Status: reconcile.Failed, Err: fault.New(fault.Retryable, fault.PullFailed, "app:v1", errors.New("pull app:v1: 503")), Error: "pull app:v1: 503"},
	}}
	last := reconcile.ActionPlan{
		Drift:   []drift.Item{{Fleet: "a", Container: "a-web-2", Kind: drift.Missing}},
		Blocked: []reconcile.Blocked{{Fleet: "a", Service: "web", Container: "a-web-2", Reason: "name conflict", Error: true, Fault: fault.Conflict, Object: "a-web-2"}, {Fleet: "b", Reason: "x", Error: true}},
		Refused: "prune guard: the revision removes 3 of the host's 4 managed containers",
	}
	out := reconcile.Outcome{Plans: []reconcile.ActionPlan{first}, Reports: []reconcile.Report{rep}, Last: last,
		Rollouts: reconcile.Rollouts{"a/web": {Fleet: "a", Service: "web"}, "b/web": {Fleet: "b", Service: "web"}}}
	d := summarize(eff, out, nil)
	var got []string
	for _, f := range d.Faults {
		got = append(got, fmt.Sprintf("%s %s %s", f.Class, f.Reason, f.Object))
	}
	want := []string{"retryable PullFailed app:v1", "permanent Conflict a-web-2", "permanent PruneRefused "}
	if !slices.Equal(got, want) {
		t.Errorf("faults %q, want %q", got, want)
	}
	if len(d.Drifted) != 1 || d.Drifted[0].Container != "a-web-1" {
		t.Errorf("drifted %v, want a-web-1 stopped only (out of band, this fleet)", d.Drifted)
	}
	if len(d.Left) != 1 || d.Changes != "1 start" || len(d.Rollouts) != 1 || !slices.Equal(d.Strays, []string{"old"}) {
		t.Errorf("left %v changes %q rollouts %v strays %v", d.Left, d.Changes, d.Rollouts, d.Strays)
	}
	// An error that ended the apply is a fault; a cancelled one (shutdown)
	// is not.
	if d := summarize(eff, reconcile.Outcome{}, fault.New(fault.Retryable, fault.EngineUnreachable, "", errors.New("observe: down"))); len(d.Faults) != 1 || d.Faults[0].Reason != fault.EngineUnreachable {
		t.Errorf("observe error: faults %+v", d.Faults)
	}
}

func TestSummarizeSwarm(t *testing.T) {
	eff := Apply{Fleet: "sw", Revision: reconcile.Revision{Commit: "c1"}}
	err := errors.Join(
		fault.New(fault.Permanent, fault.RolloutFailed, "sw_web", errors.New("service sw_web: Swarm's update ended rollback_completed")),
		fault.New(fault.Permanent, fault.Conflict, "sw_db", errors.New("service sw_db exists and is not fleetd's")))
	d := summarizeSwarm(eff, reconcile.SwarmResult{Changes: "updated 1 service"}, err)
	if len(d.Faults) != 2 || d.Faults[0].Reason != fault.RolloutFailed || d.Faults[1].Object != "sw_db" || d.Standby != "" || d.Changes != "updated 1 service" {
		t.Fatalf("joined faults: %+v", d)
	}
	d = summarizeSwarm(eff, reconcile.SwarmResult{}, fault.New(fault.Permanent, fault.NotLeader, "agent2", errors.New("standby")))
	if d.Standby != "agent2" || len(d.Faults) != 0 {
		t.Fatalf("not the leader: %+v, want standby for agent2 and no fault", d)
	}
}
