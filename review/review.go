package review

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// This file compares the desired state of two revisions of the fleet
// repository, host by host, for `fleetd plan --base/--head`: what a merge
// will do before any agent sees it. It observes no engine: it assumes each
// host runs the base revision, so a host that drifted or fell behind may do
// more than the review says.

// RevisionRef names one side of a review.
type RevisionRef struct {
	Ref     string `json:"ref"`               // as given: branch, tag, commit, HEAD~1
	Commit  string `json:"commit"`            // 40 hex
	Subject string `json:"subject,omitempty"` // first line of the commit message
}

// HostLoad is one revision loaded for one host: what fleets.Load returned.
type HostLoad struct {
	Host     fleets.Host
	Fleets   []fleets.Fleet
	Problems fleets.ProblemList
}

// HostRevisions is one host's desired state at both revisions. The host
// facts may differ between the sides when the inventory changed them.
type HostRevisions struct {
	Base, Head HostLoad
	// Inventory says how the host's entry in the inventory changed:
	// InventoryAdded, InventoryRemoved, or "".
	Inventory string
}

// Inventory changes of a host.
const (
	InventoryAdded   = "added"   // listed at head only: compared as if it ran base with its head labels
	InventoryRemoved = "removed" // listed at base only: compared with its base labels
)

// Change is what happens to a fleet or a service on a host.
type Change string

// Changes.
const (
	Added   Change = "added"
	Removed Change = "removed"
	Changed Change = "changed"
	Invalid Change = "invalid" // fails to load at head: left as it runs
)

// Warning kinds.
const (
	WarnPruneGuard     = "prune-guard"     // the prune guard would refuse the removals
	WarnOrphanedVolume = "orphaned-volume" // a named volume no service uses any more (never removed)
	WarnPortTakeover   = "port-takeover"   // a published host port moves to another service
	WarnDowntime       = "downtime"        // stop-first replaces every replica at once
	WarnNotPruned      = "not-pruned"      // prune: false leaves removed services running
	WarnSuspended      = "suspended"       // the fleet is suspended: nothing is applied
)

// Report is the plan between two revisions: per host, what changes when
// the head replaces the base. Its JSON encoding is the schema of
// `fleetd plan --base/--head --format json` (docs/pull-requests.md).
type Report struct {
	Base RevisionRef `json:"base"`
	Head RevisionRef `json:"head"`
	// Valid is false when the head fails to load on some host: that host
	// applies none of the head until it is fixed.
	Valid bool `json:"valid"`
	// Changed is true when some host has a change (or is blocked).
	Changed bool `json:"changed"`
	// Problems are the head's, over every host, sorted and deduplicated.
	Problems []fleets.Problem `json:"problems"`
	// BaseProblems are the base's; fleets invalid at base are compared as
	// absent there.
	BaseProblems []fleets.Problem `json:"base_problems"`
	// HostAccess lists every grant of host access the head adds or
	// changes, over every host (hostaccess.go).
	HostAccess []AccessChange `json:"host_access"`
	Hosts      []HostReview   `json:"hosts"` // sorted by name
}

// HostReview is what the head changes on one host.
type HostReview struct {
	Host fleets.Host `json:"host"` // the facts at head
	// BaseLabels are the host's labels at base when the inventory changed them.
	BaseLabels map[string]string `json:"base_labels,omitempty"`
	Inventory  string            `json:"inventory,omitempty"` // added | removed
	// Blocked names the fleets that fail to load at head for this host.
	// While any does, the host keeps running base and applies nothing.
	Blocked  []string      `json:"blocked"`
	Fleets   []FleetReview `json:"fleets"`   // fleets with a change, sorted by name
	Warnings []Warning     `json:"warnings"` // sorted by fleet, service, kind
	Counts   Counts        `json:"counts"`
}

// Counts sum up a host's changes for the summary table.
type Counts struct {
	FleetsAdded     int `json:"fleets_added"`
	FleetsRemoved   int `json:"fleets_removed"`
	FleetsChanged   int `json:"fleets_changed"`
	ServicesAdded   int `json:"services_added"`
	ServicesRemoved int `json:"services_removed"`
	Recreated       int `json:"recreated"`  // services whose containers are replaced
	Containers      int `json:"containers"` // containers replaced
	Scaled          int `json:"scaled"`
	Updated         int `json:"updated"` // services and fleets with changes that recreate nothing
	Warnings        int `json:"warnings"`
}

// FleetReview is one fleet's change on a host.
type FleetReview struct {
	Name   string `json:"name"`
	Change Change `json:"change"`
	// Reason says why a fleet is added, removed or invalid: "new fleet",
	// "deleted", "now targets this host", "no longer targets this host", …
	Reason string `json:"reason,omitempty"`
	// Updates are x-fleetd changes (policy, placement); they recreate nothing.
	Updates  []FieldChange   `json:"updates,omitempty"`
	Services []ServiceReview `json:"services"` // sorted by name
}

// ServiceReview is one service's change on a host.
type ServiceReview struct {
	Name     string `json:"name"`
	Change   Change `json:"change"` // added | removed | changed
	Reason   string `json:"reason,omitempty"`
	Image    string `json:"image"` // at head; at base for a removed service
	Replicas Scale  `json:"replicas"`
	// Recreate is set when the containers are replaced: the spec changed.
	Recreate *Recreate `json:"recreate,omitempty"`
	// Updates are changes that recreate nothing: rollout policy,
	// depends_on, pull_policy, x-fleetd settings.
	Updates []FieldChange `json:"updates,omitempty"`
}

// Scale is a replica count at base (From) and head (To); equal when the
// service is not scaled. From is 0 for an added service, To for a removed one.
type Scale struct {
	From int `json:"from"`
	To   int `json:"to"`
}

// Recreate is a replacement of a service's containers.
type Recreate struct {
	Containers int `json:"containers"` // replicas replaced (the others are created or removed by scaling)
	// Fields are the spec fields that differ, redacted as in drift:
	// environment values unless public, secret digests always.
	Fields []FieldChange `json:"fields"`
	// Build says what of a build: section changed (context contents,
	// dockerfile, args, target) when the image is built on the host.
	Build   []FieldChange `json:"build,omitempty"`
	Rollout RolloutReview `json:"rollout"`
}

// RolloutReview is the rolling update that applies the head: its
// update_config, with the order fleetd will really use.
type RolloutReview struct {
	Parallelism    int    `json:"parallelism"` // 0 = all at once
	Batches        int    `json:"batches"`
	Order          string `json:"order"`                     // effective order
	Forced         string `json:"forced,omitempty"`          // why stop-first was forced, if it was
	RequestedOrder string `json:"requested_order,omitempty"` // update_config.order when forced
	FailureAction  string `json:"failure_action"`
	Delay          string `json:"delay"`
	Monitor        string `json:"monitor"`
}

// FieldChange is one changed field, as text; "" is absent.
type FieldChange struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

// Warning is something a reviewer must not miss.
type Warning struct {
	Kind    string `json:"kind"`
	Fleet   string `json:"fleet,omitempty"`
	Service string `json:"service,omitempty"`
	Message string `json:"message"`
}

// Compare reviews the change from base to head on every host, redacted
// (redactReport). It is pure: hosts hold what fleets.Load returned for
// each side.
func Compare(base, head RevisionRef, hosts []HostRevisions) Report {
	rv := Report{Base: base, Head: head, Valid: true, Problems: []fleets.Problem{}, BaseProblems: []fleets.Problem{}, HostAccess: []AccessChange{}, Hosts: []HostReview{}}
	sw, hasSwarm := swarmRevisions(hosts)
	for i, hr := range append(slices.Clone(hosts), sw) {
		if i == len(hosts) && !hasSwarm {
			break
		}
		if i < len(hosts) {
			rv.Problems = append(rv.Problems, hr.Head.Problems...)
			rv.BaseProblems = append(rv.BaseProblems, hr.Base.Problems...)
		}
		h := reviewHost(hr)
		rv.HostAccess = mergeAccess(rv.HostAccess, accessChanges(hr))
		if len(h.Blocked) > 0 {
			rv.Valid = false
		}
		if len(h.Fleets) > 0 || len(h.Blocked) > 0 || len(h.Warnings) > 0 {
			rv.Changed = true
		}
		rv.Hosts = append(rv.Hosts, h)
	}
	if len(rv.Problems) > 0 {
		rv.Valid = false
	}
	rv.Problems = sortedProblems(rv.Problems)
	rv.BaseProblems = sortedProblems(rv.BaseProblems)
	slices.SortFunc(rv.Hosts, func(a, b HostReview) int { return cmp.Compare(a.Host.Name, b.Host.Name) })
	return redactReport(rv, redactorOf(hosts))
}

func sortedProblems(ps []fleets.Problem) []fleets.Problem {
	l := fleets.ProblemList(slices.Clone(ps))
	slices.SortFunc(l, func(a, b fleets.Problem) int { return strings.Compare(a.String(), b.String()) })
	return slices.Compact(l)
}

// SwarmHost names the review of the swarm fleets: they run once per swarm,
// not per host, so they are reviewed once, as if the swarm were one host.
const SwarmHost = "swarm"

// swarmRevisions gathers the swarm fleets of both sides (from the first
// host: a swarm fleet reads no host fact that matters, it targets no host),
// marked as targeted so that reviewHost compares them. ok is false when
// neither side has one.
func swarmRevisions(hosts []HostRevisions) (HostRevisions, bool) {
	if len(hosts) == 0 {
		return HostRevisions{}, false
	}
	first := hosts[0]
	swarmFleets := map[string]bool{} // on either side: a fleet invalid at head is still reviewed here
	for _, l := range []HostLoad{first.Base, first.Head} {
		for _, f := range l.Fleets {
			if f.Engine == fleets.EngineSwarm {
				swarmFleets[f.Name] = true
			}
		}
	}
	pick := func(l HostLoad) HostLoad {
		out := HostLoad{Host: fleets.Host{Name: SwarmHost}}
		for _, f := range l.Fleets {
			if f.Engine != fleets.EngineSwarm {
				continue
			}
			f.Targets = true
			f.Services = slices.Clone(f.Services)
			for i := range f.Services {
				f.Services[i].Targets = true
			}
			out.Fleets = append(out.Fleets, f)
		}
		for _, p := range l.Problems {
			if swarmFleets[p.Fleet] {
				out.Problems = append(out.Problems, p)
			}
		}
		return out
	}
	sw := HostRevisions{Base: pick(first.Base), Head: pick(first.Head)}
	return sw, len(sw.Base.Fleets) > 0 || len(sw.Head.Fleets) > 0
}

// hostSide is one side of a host, indexed.
type hostSide struct {
	byName  map[string]fleets.Fleet
	invalid map[string]bool
}

func indexSide(l HostLoad, other []fleets.Fleet) hostSide {
	s := hostSide{byName: map[string]fleets.Fleet{}, invalid: map[string]bool{}}
	for _, f := range l.Fleets {
		s.byName[f.Name] = f
	}
	for _, name := range l.Problems.Fleets() {
		s.invalid[name] = true
	}
	// A fleet whose compose file does not parse is named after its
	// directory, which need not be its name on the other side.
	// A problem names the fleet it belongs to, after its directory when
	// its compose file could not be read; a fleet nested in another's
	// directory names itself, so it does not make that one invalid.
	for _, f := range other {
		for _, p := range l.Problems {
			if inDir(p.File, f.Dir) && (p.Fleet == f.Name || p.Fleet == fleets.DirName(f.Dir)) {
				s.invalid[f.Name] = true
			}
		}
	}
	return s
}

func inDir(file, dir string) bool {
	if file == "" {
		return false
	}
	if dir == "." || dir == "" {
		return !strings.Contains(file, "/")
	}
	return strings.HasPrefix(file, dir+"/")
}

// on reports whether the side runs fleet name on this host.
func (s hostSide) on(name string) (fleets.Fleet, bool) {
	f, ok := s.byName[name]
	return f, ok && f.Targets && !s.invalid[name]
}

func reviewHost(hr HostRevisions) HostReview {
	base := indexSide(hr.Base, hr.Head.Fleets)
	head := indexSide(hr.Head, hr.Base.Fleets)
	out := HostReview{Host: hr.Head.Host, Inventory: hr.Inventory, Blocked: []string{}, Fleets: []FleetReview{}, Warnings: []Warning{}}
	if !labelsEqual(hr.Base.Host.Labels, hr.Head.Host.Labels) {
		out.BaseLabels = hr.Base.Host.Labels
		if out.BaseLabels == nil {
			out.BaseLabels = map[string]string{}
		}
	}
	for name := range head.invalid {
		out.Blocked = append(out.Blocked, name)
	}
	slices.Sort(out.Blocked)
	for _, name := range fleetNames(hr) {
		if fr, ok := reviewFleet(name, base, head); ok {
			out.Fleets = append(out.Fleets, fr)
		}
	}
	out.Warnings = hostWarnings(base, head, out)
	out.Counts = countHost(out)
	return out
}

func labelsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func fleetNames(hr HostRevisions) []string {
	var names []string
	for _, l := range []HostLoad{hr.Base, hr.Head} {
		for _, f := range l.Fleets {
			names = append(names, f.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// reviewFleet compares one fleet on the host; ok is false when nothing
// changes.
func reviewFleet(name string, base, head hostSide) (FleetReview, bool) {
	b, bOn := base.on(name)
	h, hOn := head.on(name)
	fr := FleetReview{Name: name, Services: []ServiceReview{}}
	switch {
	case head.invalid[name]:
		if !bOn {
			return fr, false // listed under Blocked
		}
		fr.Change, fr.Reason = Invalid, "invalid at head: its containers are left as they run"
	case !bOn && hOn:
		fr.Change, fr.Reason = Added, addedReason(name, base, head)
		for _, s := range h.Services {
			if s.Targets {
				fr.Services = append(fr.Services, addedService(s, ""))
			}
		}
	case bOn && !hOn:
		fr.Change, fr.Reason = Removed, removedReason(name, head)
		for _, s := range b.Services {
			if s.Targets {
				fr.Services = append(fr.Services, removedService(s, "fleet removed from this host; containers pruned"))
			}
		}
	case bOn && hOn:
		fr.Change = Changed
		fr.Updates = fleetUpdates(b, h)
		fr.Services = reviewServices(b, h)
		if len(fr.Updates) == 0 && len(fr.Services) == 0 {
			return fr, false
		}
	default:
		return fr, false
	}
	return fr, true
}

func addedReason(name string, base, head hostSide) string {
	switch _, known := base.byName[name]; {
	case base.invalid[name]:
		return "invalid at base, valid at head"
	case known:
		return "now targets this host (x-fleetd " + describePlacement(head.byName[name].Placement) + ")"
	}
	return "new fleet"
}

func removedReason(name string, head hostSide) string {
	if f, known := head.byName[name]; known {
		return "no longer targets this host (x-fleetd " + describePlacement(f.Placement) + ")"
	}
	return "deleted from the repository"
}

func describePlacement(p fleets.Placement) string {
	var parts []string
	if len(p.Hosts) > 0 {
		parts = append(parts, "hosts "+strings.Join(p.Hosts, ", "))
	}
	if len(p.Labels) > 0 {
		parts = append(parts, "labels "+labelString(p.Labels))
	}
	if len(parts) == 0 {
		return "every host"
	}
	return strings.Join(parts, "; ")
}

// labelString renders labels as k=v, sorted by key.
func labelString(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		keys[i] = k + "=" + labels[k]
	}
	return strings.Join(keys, ", ")
}

func addedService(s fleets.Service, reason string) ServiceReview {
	return ServiceReview{Name: s.Name, Change: Added, Reason: reason, Image: s.Spec.Image, Replicas: Scale{To: s.Replicas}}
}

func removedService(s fleets.Service, reason string) ServiceReview {
	return ServiceReview{Name: s.Name, Change: Removed, Reason: reason, Image: s.Spec.Image, Replicas: Scale{From: s.Replicas}}
}

func fleetUpdates(b, h fleets.Fleet) []FieldChange {
	var out []FieldChange
	add := func(field, from, to string) {
		if from != to {
			out = append(out, FieldChange{Field: field, From: from, To: to})
		}
	}
	add("x-fleetd.hosts", strings.Join(b.Placement.Hosts, ", "), strings.Join(h.Placement.Hosts, ", "))
	add("x-fleetd.labels", labelString(b.Placement.Labels), labelString(h.Placement.Labels))
	add("x-fleetd.self_heal", fmt.Sprint(b.Policy.SelfHeal), fmt.Sprint(h.Policy.SelfHeal))
	add("x-fleetd.prune", fmt.Sprint(b.Policy.Prune), fmt.Sprint(h.Policy.Prune))
	add("x-fleetd.suspend", fmt.Sprint(b.Policy.Suspend), fmt.Sprint(h.Policy.Suspend))
	add("x-fleetd.notify.slack_channel", b.Policy.Notify.SlackChannel, h.Policy.Notify.SlackChannel)
	return out
}

// reviewServices compares the services of a fleet that runs on the host at
// both revisions.
func reviewServices(b, h fleets.Fleet) []ServiceReview {
	baseSvc, headSvc := servicesByName(b), servicesByName(h)
	var names []string
	for name := range baseSvc {
		names = append(names, name)
	}
	for name := range headSvc {
		names = append(names, name)
	}
	slices.Sort(names)
	out := []ServiceReview{}
	for _, name := range slices.Compact(names) {
		bs, inBase := baseSvc[name]
		hs, inHead := headSvc[name]
		bOn, hOn := inBase && bs.Targets, inHead && hs.Targets
		switch {
		case !bOn && hOn:
			reason := "new service"
			if inBase {
				reason = "now placed on this host by deploy.placement.constraints"
			}
			out = append(out, addedService(hs, reason))
		case bOn && !hOn:
			reason := "removed from the fleet; containers pruned"
			if inHead {
				reason = "no longer placed on this host by deploy.placement.constraints; containers pruned"
			}
			if !h.Policy.Prune {
				reason = strings.TrimSuffix(reason, "; containers pruned") + "; prune is off: containers left running"
			}
			out = append(out, removedService(bs, reason))
		case bOn && hOn:
			if sr, changed := reviewService(bs, hs); changed {
				out = append(out, sr)
			}
		}
	}
	return out
}

func servicesByName(f fleets.Fleet) map[string]fleets.Service {
	m := make(map[string]fleets.Service, len(f.Services))
	for _, s := range f.Services {
		m[s.Name] = s
	}
	return m
}

// reviewService compares a service present at both revisions.
func reviewService(b, h fleets.Service) (ServiceReview, bool) {
	sr := ServiceReview{Name: h.Name, Change: Changed, Image: h.Spec.Image, Replicas: Scale{From: b.Replicas, To: h.Replicas}}
	if b.Hash != h.Hash {
		fields := specFields(h, b)
		if n := min(b.Replicas, h.Replicas); n > 0 {
			sr.Recreate = &Recreate{Containers: n, Fields: fields, Build: buildChanges(b.Build, h.Build), Rollout: rolloutOf(h, n)}
		} else {
			// No container runs both specs: scaling creates or removes them.
			sr.Updates = append(sr.Updates, fields...)
		}
	}
	sr.Updates = append(sr.Updates, serviceUpdates(b, h)...)
	changed := sr.Recreate != nil || len(sr.Updates) > 0 || b.Replicas != h.Replicas
	return sr, changed
}

// specFields are drift.SpecFields as from → to, with drift's redaction.
func specFields(h, b fleets.Service) []FieldChange {
	fs := drift.SpecFields(h, b.Spec)
	out := make([]FieldChange, len(fs))
	for i, f := range fs {
		out[i] = FieldChange{Field: f.Field, From: f.Have, To: f.Want}
	}
	return out
}

func buildChanges(b, h *fleets.Build) []FieldChange {
	if b == nil && h == nil {
		return nil
	}
	if b == nil || h == nil {
		from, to := "", ""
		if b != nil {
			from = b.ContextDir
		}
		if h != nil {
			to = h.ContextDir
		}
		return []FieldChange{{Field: "build.context", From: from, To: to}}
	}
	var out []FieldChange
	add := func(field, from, to string) {
		if from != to {
			out = append(out, FieldChange{Field: field, From: from, To: to})
		}
	}
	add("build.context", b.ContextDir, h.ContextDir)
	add("build.dockerfile", b.Dockerfile, h.Dockerfile)
	add("build.target", b.Target, h.Target)
	// Build args may carry secrets: their values are never shown.
	for _, k := range unionKeys(b.Args, h.Args) {
		from, inBase := b.Args[k]
		to, inHead := h.Args[k]
		if inBase != inHead || from != to {
			out = append(out, FieldChange{Field: "build.args." + k, From: redactPresent(inBase), To: redactPresent(inHead)})
		}
	}
	if len(out) == 0 && b.ContextHash != h.ContextHash {
		out = append(out, FieldChange{Field: "build.context contents", From: reconcile.ShortHash(b.ContextHash), To: reconcile.ShortHash(h.ContextHash)})
	}
	return out
}

func unionKeys(a, b map[string]string) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

func redactPresent(present bool) string {
	if present {
		return drift.Redacted
	}
	return ""
}

func rolloutOf(svc fleets.Service, containers int) RolloutReview {
	order, forced := reconcile.EffectiveOrder(svc)
	r := RolloutReview{
		Parallelism: svc.Update.Parallelism, Order: order, Forced: forced,
		FailureAction: svc.Update.FailureAction, Delay: svc.Update.Delay.String(), Monitor: svc.Update.Monitor.String(),
		Batches: 1,
	}
	if forced != "" {
		r.RequestedOrder = svc.Update.Order
	}
	if p := svc.Update.Parallelism; p > 0 {
		r.Batches = (containers + p - 1) / p
	}
	return r
}

// serviceUpdates are the changes of the fields the spec hash leaves out:
// they change how replicas are replaced or gated, not what runs.
func serviceUpdates(b, h fleets.Service) []FieldChange {
	var out []FieldChange
	add := func(field string, from, to any) {
		f, t := fmt.Sprint(from), fmt.Sprint(to)
		if f != t {
			out = append(out, FieldChange{Field: field, From: f, To: t})
		}
	}
	for _, r := range []struct {
		key  string
		b, h fleets.Rollout
	}{{"update_config", b.Update, h.Update}, {"rollback_config", b.Rollback, h.Rollback}} {
		add(r.key+".parallelism", r.b.Parallelism, r.h.Parallelism)
		add(r.key+".delay", r.b.Delay, r.h.Delay)
		add(r.key+".failure_action", r.b.FailureAction, r.h.FailureAction)
		add(r.key+".monitor", r.b.Monitor, r.h.Monitor)
		add(r.key+".max_failure_ratio", r.b.MaxFailureRatio, r.h.MaxFailureRatio)
		add(r.key+".order", r.b.Order, r.h.Order)
	}
	add("depends_on", dependsOn(b.DependsOn), dependsOn(h.DependsOn))
	add("pull_policy", b.PullPolicy, h.PullPolicy)
	add("deploy.placement.constraints", constraints(b.Constraints), constraints(h.Constraints))
	add("x-fleetd.readiness", b.Readiness, h.Readiness)
	add("x-fleetd.health_timeout", b.HealthTimeout, h.HealthTimeout)
	add("x-fleetd.public_env", strings.Join(b.PublicEnv, ", "), strings.Join(h.PublicEnv, ", "))
	add("x-fleetd.image_updates", b.ImageUpdates, h.ImageUpdates)
	if b.Swarm != nil || h.Swarm != nil {
		bs, hs := swarmOf(b), swarmOf(h)
		add("deploy.mode", bs.Mode, hs.Mode)
		add("deploy.endpoint_mode", bs.EndpointMode, hs.EndpointMode)
		add("deploy.placement.preferences", strings.Join(bs.Preferences, ", "), strings.Join(hs.Preferences, ", "))
		add("deploy.placement.max_replicas_per_node", bs.MaxReplicasPerNode, hs.MaxReplicasPerNode)
		add("deploy.labels", labelString(bs.Labels), labelString(hs.Labels))
		add("deploy.restart_policy", restartText(bs), restartText(hs))
		add("deploy.resources.reservations.cpus", bs.ReserveNanoCPUs, hs.ReserveNanoCPUs)
	}
	return out
}

func swarmOf(s fleets.Service) fleets.SwarmDeploy {
	if s.Swarm == nil {
		return fleets.SwarmDeploy{}
	}
	return *s.Swarm
}

func restartText(s fleets.SwarmDeploy) string {
	out := s.Restart
	if s.RestartMaxAttempts != nil {
		out += fmt.Sprintf(", max %d attempts", *s.RestartMaxAttempts)
	}
	if s.RestartDelay != nil {
		out += ", delay " + s.RestartDelay.String()
	}
	if s.RestartWindow != nil {
		out += ", window " + s.RestartWindow.String()
	}
	return out
}

func dependsOn(ds []fleets.Dependency) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Service + " (" + d.Condition + ")"
	}
	return strings.Join(parts, ", ")
}

func constraints(cs []fleets.Constraint) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.Field + " " + c.Op + " " + c.Value
	}
	return strings.Join(parts, ", ")
}

func countHost(h HostReview) Counts {
	c := Counts{Warnings: len(h.Warnings)}
	for _, f := range h.Fleets {
		switch f.Change {
		case Added:
			c.FleetsAdded++
		case Removed:
			c.FleetsRemoved++
		case Changed:
			c.FleetsChanged++
		}
		if len(f.Updates) > 0 {
			c.Updated++
		}
		for _, s := range f.Services {
			switch s.Change {
			case Added:
				c.ServicesAdded++
			case Removed:
				c.ServicesRemoved++
			}
			if s.Recreate != nil {
				c.Recreated++
				c.Containers += s.Recreate.Containers
			}
			if s.Change == Changed && s.Replicas.From != s.Replicas.To {
				c.Scaled++
			}
			if len(s.Updates) > 0 {
				c.Updated++
			}
		}
	}
	return c
}
