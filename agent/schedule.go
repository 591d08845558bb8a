package agent

import (
	"cmp"
	"slices"
	"time"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// due acts on every time that has come: the poll, the resync, the end of
// the source's or the engine's backoff, fleets' retries and rollout delays.
func (m *machine) due() {
	now := m.now
	if !now.Before(m.s.NextPoll) {
		m.s.NextPoll = m.r.Poll(now)
		if !m.s.NextPoll.After(now) {
			m.s.NextPoll = now.Add(time.Second) // a schedule that never moves must not spin
		}
		m.fetch(false)
	}
	if !now.Before(m.s.NextResync) {
		m.s.NextResync = now.Add(jitter(m.r.Resync, "resync", int(now.Unix()), m.r.Seed))
		if m.s.Engine.Up && !m.s.Surveying {
			m.s.Surveying = true
			m.emit(Survey{Desired: m.desired()})
		}
	}
	src := &m.s.Source
	if src.Again && !src.Fetching && !now.Before(src.RetryAt) {
		m.fetch(true)
	}
	open := m.r.InWindow == nil || m.r.InWindow(now)
	if open && !m.s.WindowOpen {
		for name, f := range m.s.Fleets {
			if f.Deferred {
				f.Deferred = false
				m.wake(&f, WakeRetry)
				m.s.Fleets[name] = f
			}
		}
	}
	m.s.WindowOpen = open
	e := &m.s.Engine
	if m.s.Started && !e.Up && !e.Watching && !now.Before(e.RetryAt) {
		e.Watching = true
		m.emit(Watch{})
	}
	for name, f := range m.s.Fleets {
		changed := false
		if !f.RetryAt.IsZero() && !now.Before(f.RetryAt) {
			f.RetryAt = time.Time{}
			m.wake(&f, WakeRetry)
			changed = true
		}
		if !f.Delay.IsZero() && !now.Before(f.Delay) {
			f.Delay = time.Time{}
			m.wake(&f, WakeRetry)
			changed = true
		}
		if changed {
			m.s.Fleets[name] = f
		}
	}
}

// desiredKnown reports whether the desired state is whole: a revision was
// taken (or could not be, and the saved models stand in), and no fleet
// still waits for its saved model. Until then no apply starts: a plan over
// part of the desired state would take the missing fleets' containers for
// orphans, and the prune guard for every fleet gone.
func (m *machine) desiredKnown() bool {
	if len(m.s.Resuming) > 0 {
		return false
	}
	for _, f := range m.s.Fleets {
		if f.Model == nil && !f.Gone && f.Saved != "" {
			return false
		}
	}
	return m.s.Revision != nil || m.s.Invalid != "" || m.s.Source.Err != ""
}

// schedule starts the applies that may start, oldest wake-up first, up to
// Rules.Parallel in flight, and none while the engine is not up.
func (m *machine) schedule() {
	if !m.s.Engine.Up || !m.desiredKnown() {
		return
	}
	var ready []Fleet
	for _, f := range m.s.Fleets {
		if m.mayStart(f) {
			ready = append(ready, f)
		}
	}
	slices.SortFunc(ready, func(a, b Fleet) int {
		return cmp.Or(a.PendingSince.Compare(b.PendingSince), cmp.Compare(a.Name, b.Name))
	})
	for _, f := range ready {
		if m.s.Running >= m.r.Parallel {
			return
		}
		m.start(f)
	}
}

// mayStart reports whether a fleet's pending wake-ups start an apply now.
// A fleet backing off from a retryable failure waits for its retry time
// unless a new revision or a manual sync comes; an apply woken by a manual
// sync alone waits for its fetch, so that it applies what the fetch
// brings (anything else, a heal, goes at once).
func (m *machine) mayStart(f Fleet) bool {
	switch {
	case f.Running || f.Pending == 0 || !f.live():
		return false
	case f.Pending == WakeSync && m.s.Source.Fetching:
		return false
	case f.Failures > 0 && m.now.Before(f.RetryAt):
		return f.Pending&(WakeRevision|WakeSync) != 0
	}
	return true
}

func (m *machine) start(f Fleet) {
	eff := Apply{Fleet: f.Name, Model: f.Model, Revision: f.Rev, Desired: m.desired(), Full: f.Full, Retry: f.Retry, Targeted: targeted(f)}
	eff.ReportOnly = m.r.InWindow != nil && !m.r.InWindow(m.now)
	f.Running, f.Started = true, m.now
	f.Pending, f.PendingSince, f.Full, f.Retry = 0, time.Time{}, false, false
	m.s.Fleets[f.Name] = f
	m.s.Running++
	m.emit(eff)
	m.update(f.Name, func(f *Fleet) { m.commitStarted(f, eff) })
}

// targeted reports whether a fleet's apply may observe its own containers
// only (Apply.Targeted): only events about them woke it, and it was
// converged before they came — its revision applied, nothing left, no
// fault, no rollout under way or due. That is a heal: the die or stop of
// one container need not wait on a list of every container of the host.
func targeted(f Fleet) bool {
	if f.Pending != WakeEvent || f.Full || f.Model == nil || f.Gone || f.Model.Engine == fleets.EngineSwarm {
		return false
	}
	if f.Applied == "" || f.Applied != f.Rev.Commit || len(f.Drift) > 0 || f.Deferred || f.Standby != "" {
		return false
	}
	if f.Failures > 0 || len(f.Faults) > 0 || f.Stall != nil || !f.Delay.IsZero() {
		return false
	}
	return !slices.ContainsFunc(f.Rollouts, func(r reconcile.RolloutRecord) bool {
		return r.Status == reconcile.RolloutRunning || r.Status == reconcile.RolloutRollingBack
	})
}

// desired is every fleet with a model, by name.
func (m *machine) desired() []fleets.Fleet {
	out := make([]fleets.Fleet, 0, len(m.s.Fleets))
	for _, f := range m.s.Fleets {
		if f.Model != nil && !f.Gone {
			out = append(out, *f.Model)
		}
	}
	slices.SortFunc(out, func(a, b fleets.Fleet) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// arm keeps the shell's timer on the earliest time Next must look at the
// clock again.
func (m *machine) arm() {
	at := earliest(m.s.NextPoll, m.s.NextResync)
	if m.s.Source.Again && !m.s.Source.Fetching {
		at = earliest(at, m.s.Source.RetryAt)
	}
	if !m.s.Engine.Up && !m.s.Engine.Watching {
		at = earliest(at, m.s.Engine.RetryAt)
	}
	deferred := false
	for _, f := range m.s.Fleets {
		at = earliest(at, f.RetryAt, f.Delay)
		deferred = deferred || f.Deferred
	}
	if deferred { // look again at the next minute: a sync window may open
		at = earliest(at, m.now.Truncate(time.Minute).Add(time.Minute))
	}
	at = earliest(at, m.imageTimer())
	if !at.Equal(m.s.TimerAt) {
		m.s.TimerAt = at
		m.emit(ArmTimer{At: at})
	}
}

// earliest is the earliest non-zero time, or zero.
func earliest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if !t.IsZero() && (out.IsZero() || t.Before(out)) {
			out = t
		}
	}
	return out
}
