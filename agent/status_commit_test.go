package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// statuses returns the CommitStatus effects among fx, as "fleet@commit
// state: description".
func statuses(fx []Effect) []string {
	var out []string
	for _, e := range fx {
		if c, ok := e.(CommitStatus); ok {
			out = append(out, c.Fleet+"@"+c.Commit+" "+string(c.State)+": "+c.Description)
		}
	}
	return out
}

var rolledBack = reconcile.RolloutRecord{Fleet: "a", Service: "web", Target: "h2", From: "h1",
	Status: reconcile.RolloutRolledBack, Reason: "a-web-1 unhealthy after 30s"}

// TestCommitStatusDecision: what each apply result posts for the commit
// it applies, one case a story of inputs after the boot on c1 (which posts
// "a@c1 pending" as the first apply starts).
func TestCommitStatusDecision(t *testing.T) {
	rollingBack := rolledBack
	rollingBack.Status = reconcile.RolloutRollingBack
	running := rolledBack
	running.Status, running.Reason = reconcile.RolloutRunning, ""
	// again wakes a (its container died) and lets the clock pass its
	// backoff, so that its next apply starts.
	again := EngineEvent{Type: "container", Action: "die", Name: "a-web-1", Fleet: "a"}
	for _, tc := range []struct {
		name  string
		steps []Input
		want  []string // after the boot
	}{
		{"clean apply", []Input{ApplyDone{Fleet: "a", Revision: "c1", Changes: "1 create"}},
			[]string{"a@c1 success: applied on h1"}},
		{"rollout rolling back, then rolled back", []Input{
			ApplyDone{Fleet: "a", Revision: "c1", Rollouts: []reconcile.RolloutRecord{rollingBack}},
			again,
			ApplyDone{Fleet: "a", Revision: "c1", Rollouts: []reconcile.RolloutRecord{rolledBack},
				Faults: []Fault{{Class: fault.Permanent, Reason: fault.RolloutFailed, Message: "rollout of h2 rolled-back"}}},
		}, []string{
			"a@c1 failure: rollout of web rolling-back: a-web-1 unhealthy after 30s",
			"a@c1 failure: rollout of web rolled-back: a-web-1 unhealthy after 30s",
		}},
		{"permanent fault", []Input{ApplyDone{Fleet: "a", Revision: "c1", Faults: []Fault{conflict}}},
			[]string{"a@c1 failure: Conflict: service web: name conflict: an unmanaged container holds the name"}},
		{"retryable fault stays pending, then success", []Input{
			ApplyDone{Fleet: "a", Revision: "c1", Faults: []Fault{timeout}},
			TimerFired{},
			ApplyDone{Fleet: "a", Revision: "c1", Faults: []Fault{timeout}}, // the same: not again
			TimerFired{},
			ApplyDone{Fleet: "a", Revision: "c1"},
		}, []string{
			"a@c1 pending: retrying: wait healthy for a-web-1: timed out after 1m0s",
			"a@c1 success: applied on h1",
		}},
		{"same state twice is posted once", []Input{
			ApplyDone{Fleet: "a", Revision: "c1"},
			again,
			ApplyDone{Fleet: "a", Revision: "c1"},
			again,
			ApplyDone{Fleet: "a", Revision: "c1", Faults: []Fault{conflict}}, // later trouble is drift, not the commit's
		}, []string{"a@c1 success: applied on h1"}},
		{"rollout under way stays pending", []Input{
			ApplyDone{Fleet: "a", Revision: "c1", Rollouts: []reconcile.RolloutRecord{running}, NextAt: t0.Add(time.Minute),
				Left: []drift.Item{{Fleet: "a", Service: "web", Kind: drift.SpecChange}}},
			TimerFired{},
			ApplyDone{Fleet: "a", Revision: "c1"},
		}, []string{"a@c1 success: applied on h1"}},
		{"engine outage says nothing", []Input{
			EngineLost{Err: "gone"},
			ApplyDone{Fleet: "a", Revision: "c1", Faults: []Fault{downErr}},
		}, nil},
		{"report only says nothing more", []Input{ApplyDone{Fleet: "a", Revision: "c1", ReportOnly: true}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t)
			s.boot(web("a", 1))
			if got := statuses(s.all); !slices.Equal(got, []string{"a@c1 pending: applying on h1"}) {
				t.Fatalf("boot posted %q", got)
			}
			var got []string
			for i, in := range tc.steps {
				if _, ok := in.(TimerFired); ok {
					s.now = s.now.Add(time.Hour) // past any backoff or delay
				}
				if _, ok := in.(ApplyDone); ok && !s.s.Fleets["a"].Running {
					t.Fatalf("step %d: no apply of a runs for this ApplyDone", i)
				}
				got = append(got, statuses(s.in(in))...)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("posted\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

// TestCommitStatusNewCommit: a new commit that changes the fleet gets
// pending then its outcome; one that changes another fleet only gets no
// status for it; the failed commit's successor starts pending again.
func TestCommitStatusNewCommit(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 1), web("b", 1))
	s.done("a")
	s.done("b")
	s.all = nil
	if got := statuses(s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 2), web("b", 1)}})); !slices.Equal(got, []string{"a@c2 pending: applying on h1"}) {
		t.Fatalf("c2 changes a only: posted %q", got)
	}
	s.done("a", conflict)
	s.in(Fetched{Rev: rev("c3"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 3), web("b", 1)}})
	s.done("a")
	want := []string{"a@c2 pending: applying on h1", "a@c2 failure: Conflict: service web: name conflict: an unmanaged container holds the name",
		"a@c3 pending: applying on h1", "a@c3 success: applied on h1"}
	if got := statuses(s.all); !slices.Equal(got, want) {
		t.Errorf("posted\n%q\nwant\n%q", got, want)
	}
}

// TestCommitStatusSwarmStandby: a standby agent posts nothing for a swarm
// fleet; the lease holder posts the outcome of its apply.
func TestCommitStatusSwarmStandby(t *testing.T) {
	s := newSim(t)
	sw := web("sw", 3)
	sw.Engine, sw.Targets = fleets.EngineSwarm, false
	s.boot(sw)
	s.in(ApplyDone{Fleet: "sw", Revision: "c1", Standby: "agent2"})
	if got := statuses(s.all); len(got) != 0 {
		t.Fatalf("a standby agent posted %q", got)
	}
	s.in(LeaderChanged{Leading: true})
	if got := statuses(s.in(ApplyDone{Fleet: "sw", Revision: "c1", Changes: "created 1 service"})); !slices.Equal(got, []string{"sw@c1 success: applied on h1"}) {
		t.Errorf("the lease holder posted %q", got)
	}
}

// TestCommitStatusSyncWindow: outside the sync windows the commit waits,
// pending; when a window opens it is applied and posted again.
func TestCommitStatusSyncWindow(t *testing.T) {
	s := newSim(t)
	open := false
	s.rules.InWindow = func(time.Time) bool { return open }
	s.boot(web("a", 1))
	s.in(ApplyDone{Fleet: "a", Revision: "c1", ReportOnly: true, Left: []drift.Item{{Fleet: "a", Service: "web", Kind: drift.Missing}}})
	open = true
	s.after(time.Minute)
	s.done("a")
	want := []string{"a@c1 pending: waiting for the sync window", "a@c1 pending: applying on h1", "a@c1 success: applied on h1"}
	if got := statuses(s.all); !slices.Equal(got, want) {
		t.Errorf("posted\n%q\nwant\n%q", got, want)
	}
}

// TestCommitStatusInvalidAndRedacted: a fleet invalid in a commit fails
// it, with the problem, redacted and clipped to GitHub's 140 characters;
// the older model's applies post nothing for the older commit.
func TestCommitStatusInvalidAndRedacted(t *testing.T) {
	s := newSim(t)
	a := web("a", 1)
	a.Services[0].Secrets = []fleets.SecretBytes{fleets.SecretBytes("hunter2-s3cr3t")}
	s.boot(a)
	s.done("a")
	s.all = nil
	long := "DB_URL uses hunter2-s3cr3t; " + strings.Repeat("x", 200)
	s.in(Fetched{Rev: rev("c2"), Changed: true, Loaded: true, Problems: []fleets.Problem{{Fleet: "a", File: "a/compose.yaml", Message: long}}})
	s.in(SyncRequested{})
	s.in(Fetched{Rev: rev("c2"), Changed: false})
	s.done("a")
	got := statuses(s.all)
	if len(got) != 1 || !strings.HasPrefix(got[0], "a@c2 failure: invalid: ") {
		t.Fatalf("posted %q, want one failure of c2", got)
	}
	c := s.all[slices.IndexFunc(s.all, func(e Effect) bool { _, ok := e.(CommitStatus); return ok })].(CommitStatus)
	if strings.Contains(c.Description, "hunter2") || len([]rune(c.Description)) != MaxStatusDescription || strings.Contains(c.Description, "\n") {
		t.Errorf("description %q (%d runes): want it redacted, on one line, clipped to %d", c.Description, len([]rune(c.Description)), MaxStatusDescription)
	}
}

// TestCommitStatusPersisted: what was posted survives a restart: the
// outcome of a rollout that was under way is still posted, and a success
// is not posted again.
func TestCommitStatusPersisted(t *testing.T) {
	s := newSim(t)
	s.boot(web("a", 2))
	fx := s.in(ApplyDone{Fleet: "a", Revision: "c1", NextAt: t0.Add(time.Minute),
		Rollouts: []reconcile.RolloutRecord{{Fleet: "a", Service: "web", Status: reconcile.RolloutRunning}}})
	var saved map[string]SavedFleet
	for _, e := range fx {
		if p, ok := e.(Persist); ok {
			saved = p.Fleets
		}
	}
	if saved["a"].Posted.State != CommitPending || saved["a"].Applied != "c1" {
		t.Fatalf("persisted %+v, want c1 applied (mid-rollout) and pending posted", saved["a"])
	}
	r := newSim(t)
	r.in(Start{Fleets: saved})
	r.in(EngineUp{})
	r.in(Fetched{Rev: rev("c1"), Changed: true, Loaded: true, Fleets: []fleets.Fleet{web("a", 2)}})
	r.done("a")
	r.in(SyncRequested{})
	r.in(Fetched{Rev: rev("c1")})
	r.done("a")
	if got := statuses(r.all); !slices.Equal(got, []string{"a@c1 success: applied on h1"}) {
		t.Errorf("after the restart posted %q", got)
	}
}
