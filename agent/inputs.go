package agent

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// Input is what happens to the agent: a trigger, an engine event, the
// timer, or the result of an effect.
type Input interface{ apply(m *machine) }

// Start begins the agent with its persisted state, per fleet.
type Start struct{ Fleets map[string]SavedFleet }

// FetchRequested asks the source for news (a poll is internal; this is a
// webhook's push).
type FetchRequested struct{}

// SyncRequested is a manual sync: ask the source, apply every fleet, retry
// failed rollouts.
type SyncRequested struct{}

// Fetched is a Fetch's success. Loaded says the revision's fleets were
// loaded (it moved, or the Fetch asked); Fleets are the valid ones,
// Problems every problem (Load keeps valid fleets of a revision with
// invalid ones), LoadErr a failure to load anything at all.
type Fetched struct {
	Rev      reconcile.Revision
	Changed  bool
	Loaded   bool
	Fleets   []fleets.Fleet
	Problems []fleets.Problem
	LoadErr  string
}

// FetchFailed is a Fetch's failure: the source cannot be reached.
type FetchFailed struct{ Err string }

// Resumed is a Resume's result.
type Resumed struct {
	Rev      reconcile.Revision
	For      []string
	Fleets   []fleets.Fleet
	Problems []fleets.Problem
	Err      string
}

// EngineEvent is an engine event that may concern a fleet: about a
// container of this agent (Fleet set), or any container, network, volume
// or image (a stall may name it).
type EngineEvent struct {
	Type    string // container | network | volume | image | service | node
	Action  string // die, stop, destroy, rename, start, health_status, ... | create, destroy | tag, pull, load, import
	Name    string
	OldName string // the name before a rename
	Fleet   string // io.fleetd.fleet of a managed object of this agent, else ""
}

// Surveyed is a Survey's result: the fleets with drift, the fleets with
// containers here that nothing desires, or the error that stopped it.
type Surveyed struct {
	Drifted []string
	Strays  []string
	Err     string
}

// TimerFired says the armed timer expired.
type TimerFired struct{}

// EngineLost says that the engine stopped answering or the event stream
// broke.
type EngineLost struct{ Err string }

// EngineUp says that events are subscribed to and the engine answers.
type EngineUp struct{}

// ApplyDone is an Apply's result.
type ApplyDone struct {
	Fleet      string
	Revision   string
	ReportOnly bool
	Faults     []Fault
	// Changes summarizes what the apply changed ("" nothing).
	Changes string
	// Drifted is the out-of-band drift found before acting; Left what is
	// left afterwards.
	Drifted []drift.Item
	Left    []drift.Item
	// NextAt is when the fleet is to be applied again: a rollout's delayed
	// batch, or a heal held back by its backoff, is due.
	NextAt   time.Time
	Rollouts []reconcile.RolloutRecord
	// Strays are fleets with containers on the host that no fleet with a
	// model claims.
	Strays []string
	Took   time.Duration
	// Standby names the agent holding the swarm's lease when a swarm
	// fleet's apply did nothing because this agent stands by ("" when it
	// acted); it is no fault.
	Standby string
}

// LeaderChanged tells that this agent now holds the swarm's lease (or
// lost it): on taking it, every swarm fleet is applied.
type LeaderChanged struct{ Leading bool }

func (in LeaderChanged) apply(m *machine) {
	if !in.Leading {
		return
	}
	for name, f := range m.s.Fleets {
		if f.Standby != "" || (f.Model != nil && f.Model.Engine == fleets.EngineSwarm) {
			m.wake(&f, WakeObject)
			m.s.Fleets[name] = f
		}
	}
}

func (in Start) apply(m *machine) {
	if m.s.Started {
		return
	}
	m.s.Started = true
	for name, sf := range in.Fleets {
		m.s.Fleets[name] = Fleet{Name: name, Saved: sf.Commit, Applied: sf.Applied, Gone: sf.Gone, Posted: sf.Posted}
	}
	m.s.NextPoll = m.r.Poll(m.now)
	m.s.NextResync = m.now.Add(jitter(m.r.Resync, "resync", 0, m.r.Seed))
	m.tell(reconcile.Event{Kind: reconcile.EventDaemonStarted, Message: fmt.Sprintf("fleetd %s started on %s", m.r.Version, m.r.Host)})
	m.wakeAll(WakeResync, true, false)
	m.s.Engine.Watching = true
	m.emit(Watch{})
	m.fetch(true)
}

func (FetchRequested) apply(m *machine) { m.fetch(false) }

func (SyncRequested) apply(m *machine) {
	m.fetch(true)
	m.wakeAll(WakeSync, false, true)
}

// fetch asks for a fetch; asks coalesce while one is in flight, and wait
// for the backoff after a failure unless manual.
func (m *machine) fetch(manual bool) {
	src := &m.s.Source
	if src.Fetching || (!manual && m.now.Before(src.RetryAt)) {
		src.Again = true
		src.AgainManual = src.AgainManual || manual
		return
	}
	src.Fetching, src.Again, src.AgainManual = true, false, false
	m.emit(Fetch{Load: m.s.Revision == nil})
}

func (in Fetched) apply(m *machine) {
	src := &m.s.Source
	src.Fetching, src.Ready, src.Fetched = false, true, m.now
	src.Failures, src.RetryAt = 0, time.Time{}
	m.s.Refused = nil // the head was taken (FetchRefused sets it again)
	if src.Err != "" {
		src.Err, src.Since = "", time.Time{}
		m.tell(reconcile.Event{Kind: reconcile.EventSourceRecovered, Message: "the fleet repository is reachable again"})
	}
	if in.Loaded {
		m.integrate(in.Rev, in.Fleets, in.Problems, in.LoadErr)
	}
	if src.Again {
		m.fetch(src.AgainManual)
	}
}

func (in FetchFailed) apply(m *machine) {
	src := &m.s.Source
	src.Fetching = false
	src.Failures++
	src.RetryAt = m.now.Add(m.r.SourceRetry.after(src.Failures, "source", m.r.Seed))
	src.Again = true // retry when the backoff ends
	if src.Err == "" {
		src.Since = m.now
		m.tell(reconcile.Event{Kind: reconcile.EventSourceUnreachable, Message: "the fleet repository cannot be reached; nothing changes until it can", Reason: in.Err})
	}
	src.Err = in.Err
	m.resumeMissing() // keep serving the last good revision
}

// integrate takes a loaded revision: fleets valid in it take its model (and
// are applied when their model changed); fleets invalid in it keep their
// last good model; fleets that left it are pruned, but only when it loaded
// without any problem. A revision that could not be loaded at all, or with
// a problem no fleet owns, changes nothing.
func (m *machine) integrate(rev reconcile.Revision, loaded []fleets.Fleet, problems []fleets.Problem, loadErr string) {
	byFleet := map[string][]fleets.Problem{}
	global := loadErr != ""
	for _, p := range problems {
		if p.Fleet == "" {
			global = true
		}
		byFleet[p.Fleet] = append(byFleet[p.Fleet], p)
	}
	if len(problems) > 0 || loadErr != "" {
		m.tellInvalid(rev, problems, loadErr)
	}
	if global {
		m.s.Invalid = fmt.Sprintf("revision %s: %s", reconcile.ShortHash(rev.Commit), problemText(problems, loadErr))
		m.resumeMissing()
		return
	}
	m.s.Clean, m.s.Invalid = len(problems) == 0, ""
	if len(loaded) > 0 || len(problems) == 0 || m.s.Revision == nil {
		r := rev // the newest revision some fleet took
		m.s.Revision = &r
	}
	if len(problems) > 0 {
		m.s.Invalid = fmt.Sprintf("revision %s: %s", reconcile.ShortHash(rev.Commit), problemText(problems, ""))
	}
	seen := map[string]bool{}
	for _, v := range loaded {
		seen[v.Name] = true
		m.take(v, rev)
	}
	for name, ps := range byFleet {
		seen[name] = true
		m.update(name, func(f *Fleet) {
			f.Invalid = problemText(ps, "")
			m.commitInvalid(f, rev.Commit, ps)
			if f.Saved == rev.Commit {
				f.Saved = "" // the revision it was saved at is this invalid one
			}
		})
	}
	for name, f := range m.s.Fleets {
		if seen[name] || !m.s.Clean {
			continue
		}
		if !f.live() && f.Saved == "" {
			delete(m.s.Fleets, name) // never had anything here
			continue
		}
		m.leave(&f)
		m.s.Fleets[name] = f
	}
	m.resumeMissing()
	m.persist()
}

// take gives fleet v's model to its fleet; a changed model wakes it, and a
// new revision for it ends its backoff. A swarm fleet wakes at every new
// commit: what it runs also depends on nodes.yaml, outside its model.
func (m *machine) take(v fleets.Fleet, rev reconcile.Revision) {
	digest := fleets.Digest(v)
	m.update(v.Name, func(f *Fleet) {
		if f.Model == nil || f.Gone || f.Digest != digest || (v.Engine == fleets.EngineSwarm && f.Rev.Commit != rev.Commit) {
			m.wake(f, WakeRevision)
			f.Failures, f.RetryAt = 0, time.Time{}
		}
		if f.Model == nil {
			f.Full = true // its first apply since the agent started inspects everything
		}
		if f.Model != nil && !f.Gone && f.Digest == digest && f.Applied != "" && f.Applied == f.Rev.Commit {
			f.Applied = rev.Commit // the commit asks nothing new of it: it is applied too
		}
		model := v
		f.Model, f.Digest, f.Rev, f.Gone, f.Invalid, f.Saved = &model, digest, rev, false, "", ""
	})
}

// leave marks a fleet that left the spec: its next apply prunes it.
func (m *machine) leave(f *Fleet) {
	if f.Gone {
		return
	}
	f.Model, f.Gone, f.Saved, f.Invalid, f.Digest = nil, true, "", "", ""
	f.Failures, f.RetryAt = 0, time.Time{}
	m.wake(f, WakeRevision)
}

// resumeMissing loads the saved commit of every fleet that lacks a model.
func (m *machine) resumeMissing() {
	byCommit := map[string][]string{}
	for name, f := range m.s.Fleets {
		if f.Model == nil && !f.Gone && f.Saved != "" && !m.s.Resuming[f.Saved] {
			byCommit[f.Saved] = append(byCommit[f.Saved], name)
		}
	}
	for _, commit := range sortedKeys(byCommit) {
		names := byCommit[commit]
		slices.Sort(names)
		m.s.Resuming[commit] = true
		m.emit(Resume{Commit: commit, Fleets: names})
	}
}

func (in Resumed) apply(m *machine) {
	delete(m.s.Resuming, in.Rev.Commit)
	valid := map[string]fleets.Fleet{}
	for _, v := range in.Fleets {
		valid[v.Name] = v
	}
	for _, name := range in.For {
		f, ok := m.s.Fleets[name]
		if !ok || f.Model != nil || f.Gone || f.Saved != in.Rev.Commit {
			continue // it got a model meanwhile, or left
		}
		if v, ok := valid[name]; ok {
			invalid := f.Invalid // the newest revision's problems still hold
			m.take(v, in.Rev)
			m.update(name, func(f *Fleet) { f.Invalid = invalid })
			continue
		}
		problems := problemsOf(in.Problems, name)
		if len(problems) > 0 || in.Err == "" {
			f.Saved = "" // it no longer loads: nothing to go back to
		}
		f.Invalid = fmt.Sprintf("its last good revision %s could not be loaded: %s", reconcile.ShortHash(in.Rev.Commit), problemText(problems, in.Err))
		m.s.Fleets[name] = f
	}
	m.persist()
}

func (in EngineEvent) apply(m *machine) {
	if in.Type == "service" || in.Type == "node" {
		m.swarmEvent(in)
	}
	if in.Type == "container" && in.Fleet != "" {
		f, known := m.s.Fleets[in.Fleet]
		switch {
		case known:
			m.wake(&f, WakeEvent)
			m.s.Fleets[in.Fleet] = f
		case m.s.Clean && in.Action != "destroy": // a late destroy of a fleet already pruned
			m.stray(in.Fleet)
		}
	}
	for name, f := range m.s.Fleets {
		if f.Stall != nil && in.mayUnblock(f) {
			m.wake(&f, WakeObject)
			m.s.Fleets[name] = f
		}
	}
}

// swarmEvent wakes the swarm fleets a swarm event concerns: a service
// named <fleet>_… wakes its fleet (a change by hand is corrected at once,
// not at the next resync); a node that joins, leaves or changes wakes every
// swarm fleet, stalled ones included (a node their placement or nodes.yaml
// named may have joined).
func (m *machine) swarmEvent(in EngineEvent) {
	for name, f := range m.s.Fleets {
		if f.Model == nil || f.Model.Engine != fleets.EngineSwarm || f.Model.Policy.Suspend {
			continue
		}
		switch {
		case in.Type == "node":
			m.wake(&f, WakeObject)
		case strings.HasPrefix(in.Name, name+"_") && f.Stall == nil:
			m.wake(&f, WakeEvent)
		default:
			continue
		}
		m.s.Fleets[name] = f
	}
}

// mayUnblock reports whether the event is about what one of a fleet's
// stalling faults waits on: the object holding a name, any image (for a
// missing one), a network or volume created (for a missing external one),
// any other container stopping (for a taken port).
func (in EngineEvent) mayUnblock(f Fleet) bool {
	for _, x := range f.Stall.Faults {
		switch x.Reason {
		case fault.Conflict, fault.NotManaged:
			if x.Object != "" && (in.Name == x.Object || in.OldName == x.Object) {
				return true
			}
		case fault.NotFound: // an external network or volume
			if (in.Type == "network" || in.Type == "volume") && in.Action == "create" {
				return true
			}
		case fault.ImageNotFound:
			if in.Type == "image" {
				return true
			}
		case fault.PortAllocated:
			if in.Type == "container" && in.Fleet != f.Name && slices.Contains([]string{"die", "stop", "kill", "destroy"}, in.Action) {
				return true
			}
		}
	}
	return false
}

// stray takes note of containers of a fleet no revision names: they are
// pruned like those of a fleet that left the spec.
func (m *machine) stray(name string) {
	f := Fleet{Name: name}
	m.leave(&f)
	m.s.Fleets[name] = f
}

// apply forgets the armed time, so that arm sets the timer again even when
// the earliest time is the same (a wall clock stepped back fires it early).
func (TimerFired) apply(m *machine) { m.s.TimerAt = time.Time{} }

// apply wakes the fleets the survey found drifted, for a full apply; a
// stalled fleet is left to what can change it (time cannot).
func (in Surveyed) apply(m *machine) {
	m.s.Surveying = false
	if in.Err != "" {
		return // the engine watch reports an outage; the next resync surveys again
	}
	m.engineWorks()
	drifted := slices.Clone(in.Drifted)
	for name, f := range m.s.Fleets {
		// The host's survey cannot see a swarm's services: each resync
		// observes the swarm fleets themselves (the active agent's apply
		// finds their drift; a standby agent's does nothing).
		if f.Model != nil && f.Model.Engine == fleets.EngineSwarm {
			drifted = append(drifted, name)
		}
	}
	for _, name := range drifted {
		f, ok := m.s.Fleets[name]
		if !ok || !f.live() || f.Stall != nil || (f.Model != nil && f.Model.Policy.Suspend) {
			continue
		}
		m.wake(&f, WakeResync)
		f.Full = true
		m.s.Fleets[name] = f
	}
	m.adopt(in.Strays)
}

// adopt takes note of fleets with containers here that no revision names
// (only when the newest revision loaded cleanly: otherwise they may be
// fleets that failed to load).
func (m *machine) adopt(strays []string) {
	if !m.s.Clean {
		return
	}
	for _, name := range strays {
		f, known := m.s.Fleets[name]
		switch {
		case !known:
			m.stray(name)
		case f.Gone && !f.Running:
			m.wake(&f, WakeRevision)
			m.s.Fleets[name] = f
		}
	}
}

func (in EngineLost) apply(m *machine) {
	e := &m.s.Engine
	e.Watching = false
	m.engineDown(in.Err)
}

// engineDown records that the engine cannot be used. An outage is told
// once: until an apply or a survey succeeds again, a reconnect that
// answers and fails again (a daemon on its way down still answers a ping)
// is the same outage.
func (m *machine) engineDown(reason string) {
	e := &m.s.Engine
	if e.Err == "" {
		e.Since = m.now
		m.tell(reconcile.Event{Kind: reconcile.EventEngineUnreachable, Message: "the Docker engine cannot be reached; fleets are resynced when it is back", Reason: reason})
	}
	e.Up, e.Err = false, reason
	e.Failures++
	e.RetryAt = m.now.Add(m.r.EngineRetry.after(e.Failures, "engine", m.r.Seed))
}

// engineWorks ends a reported outage once the engine did some work.
func (m *machine) engineWorks() {
	e := &m.s.Engine
	if e.Up && e.Err != "" {
		e.Err, e.Since, e.Failures = "", time.Time{}, 0
		m.tell(reconcile.Event{Kind: reconcile.EventEngineRecovered, Message: "the Docker engine answers again; every fleet was resynced"})
	}
}

func (EngineUp) apply(m *machine) {
	e := &m.s.Engine
	// Failures stay until work gets through (engineWorks): an engine that
	// answers the ping and fails the next call backs off all the same.
	e.Watching, e.Up, e.RetryAt = false, true, time.Time{}
	// Fleets that backed off only because the engine was unreachable are
	// due now.
	for name, f := range m.s.Fleets {
		if len(f.Faults) > 0 && onlyEngine(f.Faults) {
			f.Failures, f.RetryAt = 0, time.Time{}
			m.s.Fleets[name] = f
		}
	}
	// Subscribed first, now list: every fleet is resynced in full. The
	// outage is over once one of them, or a survey, gets through.
	m.wakeAll(WakeResync, true, false)
	if !slices.ContainsFunc(slices.Collect(maps.Values(m.s.Fleets)), Fleet.live) {
		m.engineWorks() // nothing to prove it with
	}
}

func (in ApplyDone) apply(m *machine) {
	f, ok := m.s.Fleets[in.Fleet]
	if !ok || !f.Running {
		return
	}
	f.Running = false
	m.s.Running--
	f.LastAttempt, f.Took = f.Started, in.Took
	if !m.s.Engine.Up && slices.ContainsFunc(in.Faults, func(x Fault) bool { return x.Reason == fault.EngineUnreachable }) {
		// The outage, not the fleet's failure: it is applied again once
		// the engine is back (EngineUp resyncs every fleet). While the
		// engine watch says it is up, the same fault is the fleet's own,
		// retried with its backoff: only the watch declares an outage.
		m.wake(&f, WakeResync)
		f.Full = true
		m.s.Fleets[in.Fleet] = f
		return
	}
	if !slices.ContainsFunc(in.Faults, func(x Fault) bool { return x.Reason == fault.EngineUnreachable }) {
		m.engineWorks()
	}
	if f.Standby = in.Standby; in.Standby != "" {
		// Another agent acts for the swarm: nothing was done, nothing is
		// wrong here; the fleet waits for the lease.
		m.s.Fleets[in.Fleet] = f
		return
	}
	f.Rollouts, f.Drift = in.Rollouts, in.Left
	f.Deferred = in.ReportOnly && (len(in.Left) > 0 || f.Gone)
	m.driftEvents(&f, in)
	m.judge(&f, in)
	posted := m.commitOutcome(&f, in)
	f.Delay = in.NextAt
	clean := len(in.Faults) == 0
	applied := clean && !in.ReportOnly && f.Model != nil && !f.Model.Policy.Suspend && f.Applied != in.Revision
	if applied {
		f.Applied = in.Revision
		if in.Changes != "" {
			rev := f.Rev
			m.tell(reconcile.Event{Kind: reconcile.EventRevisionApplied, Fleet: f.Name, Revision: &rev,
				Message: fmt.Sprintf("revision %s applied: %s", reconcile.ShortHash(in.Revision), in.Changes)})
		}
	}
	m.s.Fleets[in.Fleet] = f
	if f.Gone && clean && !in.ReportOnly {
		delete(m.s.Fleets, in.Fleet)
	}
	if applied || posted || !ok || (f.Gone && clean && !in.ReportOnly) {
		m.persist()
	}
	m.adopt(in.Strays)
}

// judge records an apply's faults: retryable ones back off (and only they
// arm a timer), permanent ones stall the fleet until something can change
// them. People hear of a stall, of the first failure, and of the recovery.
func (m *machine) judge(f *Fleet, in ApplyDone) {
	var retryable, permanent []Fault
	for _, x := range in.Faults {
		if x.Class == fault.Permanent {
			permanent = append(permanent, x)
		} else {
			retryable = append(retryable, x)
		}
	}
	wasBad := f.Stall != nil || len(f.Faults) > 0
	if len(retryable) > 0 {
		f.Failures++
		f.RetryAt = m.now.Add(m.r.Retry.after(f.Failures, f.Name, m.r.Seed))
		if f.Faults == nil && !onlyEngine(retryable) { // an outage is told as such
			m.tell(reconcile.Event{Kind: reconcile.EventFleetFailing, Fleet: f.Name, Revision: revOf(*f),
				Message: fmt.Sprintf("applying fleet %s failed; retrying in %s", f.Name, f.RetryAt.Sub(m.now).Round(time.Second)), Reason: faultText(retryable)})
		}
		f.Faults = retryable
	} else {
		f.Failures, f.RetryAt, f.Faults = 0, time.Time{}, nil
	}
	if len(permanent) > 0 {
		st := stallOf(permanent, m.now)
		if f.Stall == nil || f.Stall.Reason != st.Reason || !slices.Equal(f.Stall.Objects, st.Objects) {
			kind := reconcile.EventFleetStalled
			if st.Reason == fault.PruneRefused {
				kind = reconcile.EventPruneRefused
			}
			m.tell(reconcile.Event{Kind: kind, Fleet: f.Name, Revision: revOf(*f),
				Message: fmt.Sprintf("fleet %s is stalled (%s): it waits for a new revision, a change to %s, or a manual sync", f.Name, st.Reason, waitsOn(st)), Reason: st.Message})
		} else {
			st.Since = f.Stall.Since
		}
		f.Stall = &st
	} else {
		f.Stall = nil
	}
	if wasBad && len(in.Faults) == 0 {
		m.tell(reconcile.Event{Kind: reconcile.EventFleetRecovered, Fleet: f.Name, Revision: revOf(*f), Message: fmt.Sprintf("fleet %s converges again", f.Name)})
	}
}

// onlyEngine reports whether every fault is the engine being unreachable.
func onlyEngine(fs []Fault) bool {
	return !slices.ContainsFunc(fs, func(x Fault) bool { return x.Reason != fault.EngineUnreachable })
}

// driftEvents reports out-of-band drift once per episode, and its end.
func (m *machine) driftEvents(f *Fleet, in ApplyDone) {
	if len(in.Drifted) > 0 && !f.DriftReported {
		f.DriftReported = true
		m.tell(reconcile.Event{Kind: reconcile.EventDriftDetected, Fleet: f.Name, Revision: revOf(*f), Drift: in.Drifted,
			Message: fmt.Sprintf("%d containers drifted: %s", len(in.Drifted), kindsOf(in.Drifted))})
	}
	if f.DriftReported && len(in.Left) == 0 {
		f.DriftReported = false
		m.tell(reconcile.Event{Kind: reconcile.EventDriftResolved, Fleet: f.Name, Revision: revOf(*f), Message: "drift resolved: in sync again"})
	}
}

func (m *machine) tellInvalid(rev reconcile.Revision, problems []fleets.Problem, loadErr string) {
	if m.s.InvalidCommit == rev.Commit {
		return
	}
	m.s.InvalidCommit = rev.Commit
	r := rev
	m.tell(reconcile.Event{Kind: reconcile.EventInvalidRevision, Revision: &r,
		Message: fmt.Sprintf("revision %s is invalid; the fleets it breaks keep their last good revision", reconcile.ShortHash(rev.Commit)),
		Reason:  problemText(problems, loadErr)})
}
