package ui

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func TestReplicas(t *testing.T) {
	svcs := []agent.ServiceStatus{{Name: "web", Replicas: 3}, {Name: "db", Replicas: 1}}
	for _, tc := range []struct {
		name          string
		drift         []drift.Kind
		healthy, want int
	}{
		{"in sync", nil, 4, 4},
		{"one stopped one unhealthy", []drift.Kind{drift.Stopped, drift.Unhealthy}, 2, 4},
		{"modified and image drift still serve", []drift.Kind{drift.Modified, drift.Image, drift.SpecChange}, 4, 4},
		{"extra and orphan do not count", []drift.Kind{drift.Extra, drift.Orphan}, 4, 4},
		{"never below zero", []drift.Kind{drift.Missing, drift.Missing, drift.Missing, drift.Missing, drift.Missing}, 0, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := agent.FleetStatus{Services: svcs}
			for _, k := range tc.drift {
				f.Drift = append(f.Drift, drift.Item{Kind: k})
			}
			if h, d := Replicas(f); h != tc.healthy || d != tc.want {
				t.Errorf("Replicas = %d/%d, want %d/%d", h, d, tc.healthy, tc.want)
			}
		})
	}
}

func cond(typ, status, reason string) agent.Condition {
	return agent.Condition{Type: typ, Status: status, Reason: reason}
}

func TestOverview(t *testing.T) {
	ready := []agent.Condition{cond(agent.Ready, "True", "Converged"), cond(agent.Progressing, "False", "Idle"), cond(agent.Stalled, "False", "")}
	rev := &reconcile.Revision{Commit: strings.Repeat("b", 40), Subject: "bump web"}
	a := Host{Name: "a", Seen: t0, Status: agent.Status{Host: "a", Revision: rev, Fleets: []agent.FleetStatus{
		{Name: "shop", Desired: rev.Commit, Conditions: ready, Services: []agent.ServiceStatus{{Name: "web", Replicas: 2}}},
		{Name: "stack", Engine: fleets.EngineSwarm, Standby: "b-1a2b3c", Desired: rev.Commit},
	}}}
	b := Host{Name: "b", Seen: t0, Status: agent.Status{Host: "b", Fleets: []agent.FleetStatus{
		{Name: "shop", Desired: strings.Repeat("c", 40), Conditions: ready},
		{Name: "stack", Engine: fleets.EngineSwarm, Desired: rev.Commit, Conditions: ready},
	}}}
	down := Host{Name: "http://c:9750", URL: "http://c:9750", Err: "connection refused"}
	rows := Overview([]Host{a, b, down})
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s@%s hosts=%v holder=%s swarm=%v class=%s rev=%s subj=%q %d/%d",
			r.Fleet, r.Host, r.Hosts, r.Holder, r.Swarm, r.Class(), r.Revision, r.Subject, r.Healthy, r.Desired))
	}
	want := []string{
		`shop@a hosts=[a] holder= swarm=false class=ok rev=bbbbbbbbbbbb subj="bump web" 2/2`,
		`shop@b hosts=[b] holder= swarm=false class=ok rev=cccccccccccc subj="" 0/0`,
		`stack@b hosts=[a b] holder=b swarm=true class=ok rev=bbbbbbbbbbbb subj="" 0/0`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("Overview:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	lines := HostLines([]Host{a, down}, t0.Add(90*time.Second))
	if lines[0].LastSeen != "1m ago" || !lines[0].Up || lines[1].Up || lines[1].LastSeen != "never" || lines[1].Err != "connection refused" {
		t.Errorf("HostLines = %+v", lines)
	}
}

func TestOverviewSwarmWithoutHolder(t *testing.T) {
	// Every agent stands by: the row still shows once, naming the lease.
	h := func(name string) Host {
		return Host{Name: name, Seen: t0, Status: agent.Status{Fleets: []agent.FleetStatus{{Name: "stack", Engine: fleets.EngineSwarm, Standby: "z-99"}}}}
	}
	rows := Overview([]Host{h("x"), h("y")})
	if len(rows) != 1 || rows[0].Holder != "z-99" || !slices.Equal(rows[0].Hosts, []string{"x", "y"}) {
		t.Errorf("Overview = %+v", rows)
	}
}

func TestContainers(t *testing.T) {
	lbl := func(fleet, svc, slot string) map[string]string {
		return map[string]string{fleets.LabelManaged: "true", fleets.LabelFleet: fleet, fleets.LabelService: svc, fleets.LabelSlot: slot}
	}
	obs := []drift.Container{
		{Name: "shop-web-2", State: "running", Health: "healthy", ImageID: "sha256:aaaaaaaaaaaaaaaaaaaa", Labels: lbl("shop", "web", "2"),
			Inspected: &drift.Inspected{RestartCount: 3, StartedAt: t0.Add(-2 * time.Hour)}},
		{Name: "shop-web-1", State: "exited", Labels: lbl("shop", "web", "1"), Inspected: &drift.Inspected{StartedAt: t0.Add(-time.Hour)}},
		{Name: "blog-web-1", State: "running", Labels: lbl("blog", "web", "1")},
		{Name: "stranger", State: "running", Labels: map[string]string{fleets.LabelFleet: "shop"}},
	}
	got := Containers(obs, "shop", t0)
	want := []ContainerRow{
		{Name: "shop-web-1", Service: "web", Slot: 1, State: "exited"},
		{Name: "shop-web-2", Service: "web", Slot: 2, ImageID: "sha256:aaaaaaaaaaaa", State: "running", Health: "healthy", Uptime: "2h", Restarts: 3},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Containers =\n%+v\nwant\n%+v", got, want)
	}
}

func TestTimeline(t *testing.T) {
	rev := &reconcile.Revision{Commit: strings.Repeat("d", 40)}
	events := []reconcile.Event{
		{Time: t0, Kind: reconcile.EventRolloutStarted, Host: "a", Fleet: "shop", Service: "web", Revision: rev, Message: "started"},
		{Time: t0.Add(time.Second), Kind: reconcile.EventRolloutBatch, Host: "a", Fleet: "shop", Service: "web", Message: "batch 1/2 healthy"},
		{Time: t0.Add(2 * time.Second), Kind: reconcile.EventDriftDetected, Fleet: "shop"},
		{Time: t0.Add(3 * time.Second), Kind: reconcile.EventRolloutRolledBack, Host: "a", Fleet: "shop", Service: "web", Reason: "health check failed"},
	}
	hosts := []Host{{Name: "a", Status: agent.Status{Fleets: []agent.FleetStatus{{Name: "shop", Rollouts: []reconcile.RolloutRecord{
		{Fleet: "shop", Service: "web", Status: reconcile.RolloutRolledBack, Batches: 1, Failures: 1, LastBatchAt: t0.Add(4 * time.Second), Target: "abc"},
	}}}}}}
	var got []string
	for _, e := range Timeline(hosts, events) {
		got = append(got, fmt.Sprintf("%s %s/%s bad=%v back=%v took=%s %s", e.Kind, e.Fleet, e.Service, e.Bad, e.RollingBack, e.Took, e.Revision))
	}
	want := []string{
		"now shop/web bad=true back=true took=0s ",
		"rolled-back shop/web bad=true back=true took=2s ",
		"batch shop/web bad=false back=false took=1s ",
		"started shop/web bad=false back=false took=0s dddddddddddd",
	}
	if !slices.Equal(got, want) {
		t.Errorf("Timeline:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p := Paused(hosts); len(p) != 1 {
		t.Errorf("Paused = %v, want the rolled-back record", p)
	}
}

func TestFilterEvents(t *testing.T) {
	events := []reconcile.Event{
		{Time: t0, Kind: reconcile.EventDriftDetected, Host: "a", Fleet: "shop", Message: "shop-web-1 stopped"},
		{Time: t0.Add(time.Second), Kind: reconcile.EventDriftResolved, Host: "a", Fleet: "shop", Message: "healed"},
		{Time: t0.Add(2 * time.Second), Kind: reconcile.EventInvalidRevision, Host: "b", Message: "compose.yaml: bad", Reason: "InvalidSpec"},
		{Time: t0.Add(3 * time.Second), Kind: reconcile.EventRolloutFailed, Host: "a", Fleet: "blog"},
	}
	for _, tc := range []struct {
		f    EventFilter
		want []reconcile.EventKind
	}{
		{EventFilter{}, []reconcile.EventKind{reconcile.EventRolloutFailed, reconcile.EventInvalidRevision, reconcile.EventDriftResolved, reconcile.EventDriftDetected}},
		{EventFilter{Kind: "drift"}, []reconcile.EventKind{reconcile.EventDriftResolved, reconcile.EventDriftDetected}},
		{EventFilter{Kind: "heal"}, []reconcile.EventKind{reconcile.EventDriftResolved}},
		{EventFilter{Kind: "invalid"}, []reconcile.EventKind{reconcile.EventInvalidRevision}},
		{EventFilter{Kind: "rollout-failed"}, []reconcile.EventKind{reconcile.EventRolloutFailed}},
		{EventFilter{Fleet: "shop", Text: "STOPPED"}, []reconcile.EventKind{reconcile.EventDriftDetected}},
		{EventFilter{Host: "b", Text: "invalidspec"}, []reconcile.EventKind{reconcile.EventInvalidRevision}},
		{EventFilter{Host: "c"}, nil},
	} {
		var got []reconcile.EventKind
		for _, e := range FilterEvents(events, tc.f) {
			got = append(got, e.Kind)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("FilterEvents(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}
}

// recorder is a Notifier that keeps what it is told.
type recorder struct{ got []reconcile.Event }

func (r *recorder) Notify(e reconcile.Event) { r.got = append(r.got, e) }

func TestEventLogKeepsTheLastAndRedacts(t *testing.T) {
	next := &recorder{}
	log := NewEventLog(3, next, nil)
	changed, stop := log.Subscribe()
	defer stop()
	for i := range 5 {
		log.Notify(reconcile.Event{Kind: reconcile.EventDriftDetected, Message: fmt.Sprintf("e%d password=hunter2-%d", i, i)})
	}
	var got []string
	for _, e := range log.Events() {
		got = append(got, e.Message)
	}
	want := []string{"e2 password=***", "e3 password=***", "e4 password=***"}
	if !slices.Equal(got, want) {
		t.Errorf("Events = %q, want %q", got, want)
	}
	if len(next.got) != 5 || next.got[4].Message != "e4 password=hunter2-4" {
		t.Errorf("next got %d events (last %q): the log must hand every event on unchanged", len(next.got), next.got[len(next.got)-1].Message)
	}
	select {
	case <-changed:
	default:
		t.Error("no change signalled")
	}
}
