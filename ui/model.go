package ui

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// Host is one agent as the dashboard sees it.
type Host struct {
	// Name is the agent's host name (its URL until it answered once).
	Name string `json:"name"`
	// URL is where the dashboard reads it; "" for the agent serving the
	// page itself.
	URL    string       `json:"url,omitempty"`
	Status agent.Status `json:"status"`
	// Seen is when Status was read; zero when the agent never answered.
	Seen time.Time `json:"seen,omitzero"`
	// Err is why the last read failed; "" when the agent answered.
	Err string `json:"error,omitempty"`
}

// Reachable reports whether the last read of the agent succeeded.
func (h Host) Reachable() bool { return h.Err == "" }

// FleetRow is one line of the overview: a docker fleet on one host, or a
// swarm fleet once for its swarm.
type FleetRow struct {
	Fleet                       string
	Host                        string // the host whose status the row shows (for a swarm fleet, the lease holder's when known)
	Hosts                       []string
	Swarm                       bool
	Holder                      string // the agent that acts for a swarm fleet, when it said
	Ready, Progressing, Stalled agent.Condition
	Revision, Subject           string
	Healthy, Desired            int
	Drift                       int
	LastRollout                 *reconcile.RolloutRecord
	Error                       string
}

// Class is the row's overall state for the page's colours: ok, progressing,
// stalled or unknown.
func (r FleetRow) Class() string {
	switch {
	case r.Stalled.Status == "True":
		return "stalled"
	case r.Progressing.Status == "True":
		return "progressing"
	case r.Ready.Status == "True":
		return "ok"
	}
	return "unknown"
}

// down are the drift kinds that leave a replica not serving.
var down = []drift.Kind{drift.Missing, drift.Stopped, drift.Paused, drift.Unhealthy, drift.Restarting}

// Replicas counts a fleet's wanted replicas and how many of them serve:
// the wanted ones less those the drift says are missing, stopped, paused,
// unhealthy or restarting.
func Replicas(f agent.FleetStatus) (healthy, desired int) {
	for _, s := range f.Services {
		desired += s.Replicas
	}
	notUp := 0
	for _, it := range f.Drift {
		if slices.Contains(down, it.Kind) {
			notUp++
		}
	}
	return max(desired-notUp, 0), desired
}

// LastRollout is the rollout record that started last, nil without any.
func LastRollout(rs []reconcile.RolloutRecord) *reconcile.RolloutRecord {
	var last *reconcile.RolloutRecord
	for i := range rs {
		if last == nil || rs[i].StartedAt.After(last.StartedAt) {
			last = &rs[i]
		}
	}
	return last
}

// Overview is the overview's rows: every fleet of every host that
// answered the last read, sorted by fleet and host. A swarm fleet is one row
// whatever the number of agents of its swarm: the status of the agent that
// acts for it (the one not standing by) shows, any other's when none acts,
// and every agent is named in Hosts.
func Overview(hosts []Host) []FleetRow {
	var rows []FleetRow
	swarms := map[string][]FleetRow{}
	for _, h := range hosts {
		if h.Seen.IsZero() || !h.Reachable() {
			continue // the host line says it is unreachable, since when; its fleets would be stale
		}
		for _, f := range h.Status.Fleets {
			row := rowOf(h, f)
			if row.Swarm {
				swarms[f.Name] = append(swarms[f.Name], row)
				continue
			}
			rows = append(rows, row)
		}
	}
	for _, rs := range swarms {
		rows = append(rows, swarmRow(rs))
	}
	slices.SortFunc(rows, func(a, b FleetRow) int {
		return cmp.Or(cmp.Compare(a.Fleet, b.Fleet), cmp.Compare(a.Host, b.Host))
	})
	return rows
}

// swarmRow merges the rows of one swarm fleet seen by several agents.
func swarmRow(rs []FleetRow) FleetRow {
	i := max(slices.IndexFunc(rs, func(r FleetRow) bool { return r.Holder == "" }), 0)
	out := rs[i]
	if out.Holder == "" {
		out.Holder = out.Host // it acts: standbys name the lease, this is its holder
	}
	out.Hosts = nil
	for _, r := range rs {
		out.Hosts = append(out.Hosts, r.Host)
	}
	slices.Sort(out.Hosts)
	return out
}

func rowOf(h Host, f agent.FleetStatus) FleetRow {
	row := FleetRow{Fleet: f.Name, Host: h.Name, Hosts: []string{h.Name}, Swarm: f.Engine == fleets.EngineSwarm, Holder: f.Standby,
		Ready: f.Condition(agent.Ready), Progressing: f.Condition(agent.Progressing), Stalled: f.Condition(agent.Stalled),
		Revision: reconcile.ShortHash(f.Desired), Drift: len(f.Drift), LastRollout: LastRollout(f.Rollouts), Error: f.Error}
	if rev := h.Status.Revision; rev != nil && rev.Commit == f.Desired {
		row.Subject = rev.Subject
	}
	row.Healthy, row.Desired = Replicas(f)
	return row
}

// HostLine is one agent in the list of hosts: reachable or not, and since
// when it was last seen.
type HostLine struct {
	Name, URL string
	Up        bool
	Engine    string // "up", or why it is down
	LastSeen  string // "never", or how long ago
	Err       string
}

// HostLines describes every host at now.
func HostLines(hosts []Host, now time.Time) []HostLine {
	out := make([]HostLine, 0, len(hosts))
	for _, h := range hosts {
		l := HostLine{Name: h.Name, URL: h.URL, Up: h.Reachable(), Err: h.Err, LastSeen: "never"}
		if !h.Seen.IsZero() {
			l.LastSeen = Ago(now, h.Seen)
			l.Engine = "up"
			if !h.Status.Engine.Up {
				l.Engine = cmp.Or(h.Status.Engine.Error, "down")
			}
		}
		out = append(out, l)
	}
	return out
}

// Ago says how long before now t was, rounded for people: "4s ago",
// "3m ago", "2h ago", "5d ago".
func Ago(now, t time.Time) string {
	return Duration(now.Sub(t)) + " ago"
}

// Duration rounds d for people: 4s, 3m, 2h, 5d.
func Duration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// ContainerRow is one container of a fleet's detail.
type ContainerRow struct {
	Name, Service string
	Slot          int
	Image         string
	ImageID       string // sha256:… shortened
	State, Health string
	Uptime        string // "" when not running or not inspected
	Restarts      int
}

// Containers is the fleet's containers in obs (managed ones only), by
// service and slot, with uptime at now.
func Containers(obs []drift.Container, fleet string, now time.Time) []ContainerRow {
	var out []ContainerRow
	for _, c := range obs {
		if c.Labels[fleets.LabelManaged] != "true" || c.Labels[fleets.LabelFleet] != fleet {
			continue
		}
		slot, _ := strconv.Atoi(c.Labels[fleets.LabelSlot])
		row := ContainerRow{Name: c.Name, Service: c.Labels[fleets.LabelService], Slot: slot, Image: c.Image,
			ImageID: shortID(c.ImageID), State: c.State, Health: c.Health}
		if in := c.Inspected; in != nil {
			row.Restarts = in.RestartCount
			if c.State == "running" && !in.StartedAt.IsZero() {
				row.Uptime = Duration(now.Sub(in.StartedAt))
			}
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b ContainerRow) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Slot, b.Slot), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// shortID is an image ID's algorithm and first 12 hex digits.
func shortID(id string) string {
	alg, hex, ok := strings.Cut(id, ":")
	if !ok {
		alg, hex = "", id
	}
	if len(hex) > 12 {
		hex = hex[:12]
	}
	if alg == "" {
		return hex
	}
	return alg + ":" + hex
}

// TimelineEntry is one moment of a rollout: started, a batch, a health
// wait's outcome, success, failure, rollback or pause.
type TimelineEntry struct {
	Time             time.Time
	Host             string
	Fleet, Service   string
	Kind             string // started | batch | succeeded | failed | rolled-back | paused | now (a record's current state)
	Message, Reason  string
	Revision         string
	RollingBack, Bad bool
	// Took is the time since the rollout's previous step: for a batch, its
	// replicas' start and health gate (with the monitor window); for the
	// end, the last batch's, or the rollback's.
	Took time.Duration
}

// Timeline is the rollouts of the hosts as a timeline, newest first: the
// rollout events the event log kept, and, for each rollout record, its
// current state (so a rollout still shows after the events rotated out).
func Timeline(hosts []Host, events []reconcile.Event) []TimelineEntry {
	var out []TimelineEntry
	took := stepTimes(events)
	for i, e := range slices.Backward(events) { // the later of two at one time first
		kind, ok := strings.CutPrefix(string(e.Kind), "rollout-")
		if !ok {
			continue
		}
		en := TimelineEntry{Time: e.Time, Host: e.Host, Fleet: e.Fleet, Service: e.Service, Kind: kind, Message: e.Message, Reason: e.Reason, Took: took[i]}
		if e.Revision != nil {
			en.Revision = reconcile.ShortHash(e.Revision.Commit)
		}
		en.Bad = kind == "failed" || kind == "rolled-back" || kind == "paused"
		en.RollingBack = kind == "rolled-back"
		out = append(out, en)
	}
	for _, h := range hosts {
		for _, f := range h.Status.Fleets {
			for _, r := range f.Rollouts {
				out = append(out, TimelineEntry{Time: r.LastBatchAt, Host: h.Name, Fleet: r.Fleet, Service: r.Service, Kind: "now",
					Message: fmt.Sprintf("%s: %d batches, %d failures, target %s", r.Status, r.Batches, r.Failures, reconcile.ShortHash(r.Target)),
					Reason:  r.Reason, RollingBack: r.Status == reconcile.RolloutRollingBack || r.Status == reconcile.RolloutRolledBack,
					Bad: r.Stalled() || r.Status == reconcile.RolloutRollingBack})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b TimelineEntry) int { return b.Time.Compare(a.Time) })
	return out
}

// stepTimes is, per rollout event (by index; events oldest first), the
// time since the previous event of the same rollout (host, fleet,
// service); a rollout's first event has none.
func stepTimes(events []reconcile.Event) map[int]time.Duration {
	out := map[int]time.Duration{}
	last := map[[3]string]time.Time{}
	for i, e := range events {
		if !strings.HasPrefix(string(e.Kind), "rollout-") {
			continue
		}
		key := [3]string{e.Host, e.Fleet, e.Service}
		if prev, ok := last[key]; ok && e.Kind != reconcile.EventRolloutStarted && !e.Time.Before(prev) {
			out[i] = e.Time.Sub(prev)
		}
		last[key] = e.Time
	}
	return out
}

// PausedRollout is a rollout a manual sync of its host would resume.
type PausedRollout struct {
	Host string
	reconcile.RolloutRecord
}

// Paused is the rollouts a manual sync would resume: paused or rolled
// back (reconcile.Retry forgets exactly these).
func Paused(hosts []Host) []PausedRollout {
	var out []PausedRollout
	for _, h := range hosts {
		for _, f := range h.Status.Fleets {
			for _, r := range f.Rollouts {
				if r.Stalled() {
					out = append(out, PausedRollout{Host: h.Name, RolloutRecord: r})
				}
			}
		}
	}
	return out
}

// PausedHosts is the hosts of paused, each once, in order.
func PausedHosts(paused []PausedRollout) []string {
	var out []string
	for _, p := range paused {
		if !slices.Contains(out, p.Host) {
			out = append(out, p.Host)
		}
	}
	return out
}

// EventFilter selects events: every field that is set must match; Text
// matches the message or reason, case-insensitively.
type EventFilter struct {
	Fleet, Kind, Host, Text string
}

// eventGroups are the kinds the filter offers by a family name.
var eventGroups = map[string]func(reconcile.EventKind) bool{
	"drift":   func(k reconcile.EventKind) bool { return strings.HasPrefix(string(k), "drift-") },
	"heal":    func(k reconcile.EventKind) bool { return k == reconcile.EventDriftResolved },
	"rollout": func(k reconcile.EventKind) bool { return strings.HasPrefix(string(k), "rollout-") },
	"invalid": func(k reconcile.EventKind) bool { return k == reconcile.EventInvalidRevision },
	"fleet":   func(k reconcile.EventKind) bool { return strings.HasPrefix(string(k), "fleet-") },
	"source":  func(k reconcile.EventKind) bool { return strings.HasPrefix(string(k), "source-") },
	"engine":  func(k reconcile.EventKind) bool { return strings.HasPrefix(string(k), "engine-") },
}

// EventKinds are the families the events page offers, in its order.
var EventKinds = []string{"drift", "heal", "rollout", "invalid", "fleet", "source", "engine"}

// FilterEvents returns the events f selects, newest first.
func FilterEvents(events []reconcile.Event, f EventFilter) []reconcile.Event {
	text := strings.ToLower(f.Text)
	var out []reconcile.Event
	for _, e := range slices.Backward(events) { // the later of two at one time first
		if f.Fleet != "" && e.Fleet != f.Fleet || f.Host != "" && e.Host != f.Host {
			continue
		}
		if f.Kind != "" {
			if group, ok := eventGroups[f.Kind]; ok && !group(e.Kind) || !ok && string(e.Kind) != f.Kind {
				continue
			}
		}
		if text != "" && !strings.Contains(strings.ToLower(e.Message+" "+e.Reason), text) {
			continue
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b reconcile.Event) int { return b.Time.Compare(a.Time) })
	return out
}
