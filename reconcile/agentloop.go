package reconcile

import (
	"context"

	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// loop is the state of Agent.Run's goroutine; only that goroutine touches
// it, so it needs no lock.
type loop struct {
	*Agent
	state   AgentState
	rev     *Revision      // last good revision
	desired []fleets.Fleet // its fleets
	heals   map[string]HealRecord

	git        *backoff
	gitNext    time.Time
	gitFailing bool
	gitErr     string // the source's error while it fails, for the status

	// A failed apply is not retried on every trigger: until a new commit
	// or a manual sync, automatic retries back off.
	apply       *backoff
	applyNext   time.Time
	driftEvents map[string]bool // fleets whose drift was reported and not yet resolved
}

func (l *loop) init() {
	if l.git == nil {
		l.git = newBackoff(500*time.Millisecond, 15*time.Minute)
		l.apply = newBackoff(30*time.Second, 15*time.Minute)
		l.driftEvents = map[string]bool{}
	}
}

// cycle is one wake-up: ask the source when due, then converge the last
// good revision.
func (l *loop) cycle(ctx context.Context) {
	l.init()
	manual := l.manual.Swap(false)
	full := l.full.Swap(false)
	if l.wantGit.Swap(false) || l.rev == nil {
		l.fetch(ctx, manual)
	}
	if l.rev == nil || ctx.Err() != nil {
		return
	}
	if !manual && time.Now().Before(l.applyNext) {
		return
	}
	l.converge(ctx, manual, full)
}

// fetch asks the source for news and loads a new revision. A source that
// cannot be reached changes nothing on the host: it is reported once and
// retried with backoff.
func (l *loop) fetch(ctx context.Context, manual bool) {
	now := time.Now()
	if !manual && now.Before(l.gitNext) {
		return
	}
	rev, changed, err := l.src.Sync(ctx)
	l.metric(func(m Metrics) { m.ObserveFetch(time.Since(now), err) })
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		wait := l.git.next()
		l.gitNext = now.Add(wait)
		l.metric(func(m Metrics) { m.SetBackoff(wait) })
		l.gitErr = err.Error()
		l.setStatus(func(s *AgentStatus) { s.Error, s.Backoff = l.gitErr, wait.Round(time.Millisecond).String() })
		if !l.gitFailing {
			l.gitFailing = true
			l.cfg.Log.Error("source unreachable; keeping the last good revision", "err", err, "retry_in", wait)
			l.tell(Event{Kind: EventSourceUnreachable, Message: "the fleet repository cannot be reached; nothing changes until it can", Reason: err.Error()})
		}
		return
	}
	if l.gitFailing {
		l.gitFailing = false
		l.cfg.Log.Info("source reachable again")
		l.tell(Event{Kind: EventSourceRecovered, Message: "the fleet repository is reachable again"})
	}
	l.git.reset()
	l.gitNext = time.Time{}
	l.gitErr = ""
	l.metric(func(m Metrics) { m.SetBackoff(0) })
	l.setStatus(func(s *AgentStatus) { s.Fetched, s.Ready, s.Backoff = now, true, "" })
	if changed || l.rev == nil {
		l.load(ctx, rev)
	}
}

// load loads a revision's fleets. A revision with any problem is never
// applied: the host keeps the last good revision, and says so.
func (l *loop) load(ctx context.Context, rev Revision) {
	desired, err := l.cfg.Load(ctx, rev.Dir)
	if err != nil {
		msg := err.Error()
		l.cfg.Log.Error("revision invalid; keeping the last good revision", "rev", rev.Commit, "problems", msg)
		l.setStatus(func(s *AgentStatus) { s.Invalid = fmt.Sprintf("revision %s: %s", short(rev.Commit), msg) })
		r := rev
		l.tell(Event{Kind: EventInvalidRevision, Revision: &r, Message: fmt.Sprintf("revision %s is invalid and was not applied", short(rev.Commit)), Reason: msg})
		l.resumeLastGood(ctx, rev.Commit)
		return
	}
	l.state.LastGood = rev.Commit
	l.rev, l.desired = &rev, desired
	l.apply.reset()
	l.applyNext = time.Time{}
	l.cfg.Log.Info("revision loaded", "rev", rev.Commit, "fleets", len(desired))
	l.setStatus(func(s *AgentStatus) { r := rev; s.Revision, s.Invalid = &r, "" })
}

// resumeLastGood loads the last good revision when the agent has none in
// memory (it restarted on an invalid head), so that it keeps converging the
// host to what it last applied rather than to nothing.
func (l *loop) resumeLastGood(ctx context.Context, invalid string) {
	if l.rev != nil || l.state.LastGood == "" || l.state.LastGood == invalid {
		return
	}
	rev, err := l.src.Checkout(ctx, l.state.LastGood)
	if err != nil {
		l.cfg.Log.Error("cannot check out the last good revision", "rev", l.state.LastGood, "err", err)
		return
	}
	desired, err := l.cfg.Load(ctx, rev.Dir)
	if err != nil {
		l.cfg.Log.Error("the last good revision no longer loads", "rev", rev.Commit, "err", err)
		return
	}
	l.rev, l.desired = &rev, desired
	l.cfg.Log.Info("resumed the last good revision", "rev", rev.Commit)
	l.setStatus(func(s *AgentStatus) { r := rev; s.Revision = &r })
}

// converge applies the last good revision (or, outside a sync window,
// only reports the drift).
func (l *loop) converge(ctx context.Context, manual, full bool) {
	start := time.Now()
	pol := Policy{Now: start, Revision: l.rev.Commit, RepoDir: l.rev.Dir, AllowMassPrune: l.cfg.AllowMassPrune,
		Rollouts: l.state.Rollouts, Heals: l.heals}
	if manual {
		pol.Rollouts = Retry(pol.Rollouts)
	}
	if l.cfg.InWindow != nil && !l.cfg.InWindow(start) {
		l.reportOnly(ctx, pol)
		return
	}
	out, err := Converge(ctx, l.eng, l.desired, pol, ConvergeOptions{
		Exec:       ExecOptions{Parallelism: l.cfg.Parallelism},
		InspectAll: full,
		OnEvent:    l.rolloutEvent,
		Save: func(r Rollouts) error {
			l.state.Rollouts = r
			return l.store.Save(l.state)
		},
	})
	l.heals = out.Heals
	l.state.Rollouts = out.Rollouts
	if err != nil && ctx.Err() == nil {
		l.cfg.Log.Error("reconcile failed", "rev", l.rev.Commit, "err", err)
	}
	failed := l.account(out, err, time.Since(start))
	l.driftChanged(out)
	if failed {
		wait := l.apply.next()
		l.applyNext = time.Now().Add(wait)
	} else {
		l.apply.reset()
		l.applyNext = time.Time{}
	}
	if err := l.store.Save(l.state); err != nil {
		l.cfg.Log.Error("save state", "err", err)
	}
}

// reportOnly plans without executing: outside a sync window drift is
// reported but not acted on.
func (l *loop) reportOnly(ctx context.Context, pol Policy) {
	obs, err := l.eng.Observe(ctx, drift.ObserveOptions{})
	if err != nil {
		l.setStatus(func(s *AgentStatus) { s.Error = err.Error() })
		return
	}
	p := Plan(l.desired, obs, pol)
	l.driftChanged(Outcome{Last: p, Plans: []ActionPlan{p}})
	l.setStatus(func(s *AgentStatus) { s.Error = "outside the sync windows: drift reported, not acted on" })
	l.updateFleets(p, nil)
}

// account records the outcome in the state, the metrics and the status,
// and reports whether anything failed.
func (l *loop) account(out Outcome, err error, took time.Duration) bool {
	failedFleets := map[string]string{}
	if n := len(out.Reports); n > 0 {
		for _, r := range out.Reports[n-1].Failed() {
			failedFleets[r.Action.Fleet] = r.Error
		}
	}
	for _, b := range out.Last.Blocked {
		if b.Error {
			failedFleets[b.Fleet] = b.Reason
		}
	}
	if out.Last.Refused != "" {
		l.tell(Event{Kind: EventPruneRefused, Revision: l.rev, Message: "prune refused", Reason: out.Last.Refused})
	}
	for _, f := range l.desired {
		if !f.Targets {
			continue
		}
		result := "ok"
		if _, bad := failedFleets[f.Name]; bad || err != nil {
			result = "failed"
		}
		l.metric(func(m Metrics) { m.ObserveReconcile(f.Name, result, took) })
		if result == "ok" && l.state.Applied[f.Name] != l.rev.Commit && !f.Policy.Suspend {
			l.state.Applied[f.Name] = l.rev.Commit
			l.metric(func(m Metrics) { m.SetApplied(f.Name, l.rev.Commit) })
			if summary, changed := changeSummary(out, f.Name); changed {
				l.tell(Event{Kind: EventRevisionApplied, Fleet: f.Name, Revision: l.rev,
					Message: fmt.Sprintf("revision %s applied: %s", short(l.rev.Commit), summary)})
			}
		}
	}
	// A converge that went well does not hide that the source is down.
	errText := l.gitErr
	if err != nil {
		errText = err.Error()
	}
	l.setStatus(func(s *AgentStatus) { s.LastSync, s.Error = time.Now(), errText })
	l.updateFleets(out.Last, failedFleets)
	return err != nil || len(failedFleets) > 0
}

// changeSummary is a one-line account of what a converge did to a fleet,
// and whether it changed anything (a revision that leaves a fleet as it was
// is applied silently).
func changeSummary(out Outcome, fleet string) (string, bool) {
	counts := map[Op]int{}
	for _, rep := range out.Reports {
		for _, r := range rep.Results {
			if r.Action.Fleet == fleet && r.Status == Done {
				counts[r.Action.Op]++
			}
		}
	}
	var parts []string
	for _, op := range []Op{OpCreate, OpRemove, OpRename, OpStart, OpRestart, OpUpdate, OpPull, OpBuild} {
		if counts[op] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[op], op))
		}
	}
	if len(parts) == 0 {
		return "no container changes", false
	}
	return strings.Join(parts, ", "), true
}

// driftChanged reports drift found before acting (out of band: the
// revision did not change) and its resolution, once per fleet.
func (l *loop) driftChanged(out Outcome) {
	before := out.Last.Drift
	if len(out.Plans) > 0 {
		before = out.Plans[0].Drift
	}
	byFleet := map[string][]drift.Item{}
	for _, it := range before {
		if outOfBand(it.Kind) {
			byFleet[it.Fleet] = append(byFleet[it.Fleet], it)
		}
	}
	after := map[string]bool{}
	for _, it := range out.Last.Drift {
		after[it.Fleet] = true
	}
	for _, fleet := range slices.Sorted(maps.Keys(byFleet)) {
		if l.driftEvents[fleet] {
			continue
		}
		l.driftEvents[fleet] = true
		l.tell(Event{Kind: EventDriftDetected, Fleet: fleet, Revision: l.rev, Drift: byFleet[fleet],
			Message: fmt.Sprintf("%d containers drifted: %s", len(byFleet[fleet]), kindsOf(byFleet[fleet]))})
	}
	for _, fleet := range slices.Sorted(maps.Keys(l.driftEvents)) {
		if !after[fleet] {
			delete(l.driftEvents, fleet)
			l.tell(Event{Kind: EventDriftResolved, Fleet: fleet, Revision: l.rev, Message: "drift resolved: in sync again"})
		}
	}
	kinds := map[string]int{}
	for _, it := range out.Last.Drift {
		kinds[string(it.Kind)]++
	}
	l.metric(func(m Metrics) { m.SetDrift(kinds) })
	l.setStatus(func(s *AgentStatus) { s.DriftKind = kinds })
}

// outOfBand reports whether a drift kind means someone or something
// changed the host, rather than the spec changing.
func outOfBand(k drift.Kind) bool {
	switch k {
	case drift.Stopped, drift.Paused, drift.Unhealthy, drift.Restarting, drift.Modified, drift.Conflict:
		return true
	}
	return false
}

func kindsOf(items []drift.Item) string {
	seen := map[string]bool{}
	for _, it := range items {
		seen[string(it.Kind)] = true
	}
	return strings.Join(slices.Sorted(maps.Keys(seen)), ", ")
}

// updateFleets rebuilds the per-fleet status.
func (l *loop) updateFleets(last ActionPlan, failed map[string]string) {
	driftBy := map[string][]drift.Item{}
	for _, it := range last.Drift {
		driftBy[it.Fleet] = append(driftBy[it.Fleet], it)
	}
	var fs []FleetStatus
	for _, f := range l.desired {
		if !f.Targets {
			continue
		}
		st := FleetStatus{Name: f.Name, Desired: l.rev.Commit, Applied: l.state.Applied[f.Name], Drift: driftBy[f.Name], Error: failed[f.Name]}
		if st.Drift == nil {
			st.Drift = []drift.Item{}
		}
		for _, r := range l.state.Rollouts {
			if r.Fleet == f.Name {
				st.Rollouts = append(st.Rollouts, r)
			}
		}
		sort.Slice(st.Rollouts, func(i, j int) bool { return st.Rollouts[i].Service < st.Rollouts[j].Service })
		fs = append(fs, st)
	}
	l.setStatus(func(s *AgentStatus) { s.Fleets = fs })
}

func (l *loop) rolloutEvent(e Event) {
	switch e.Kind {
	case EventRolloutSucceeded:
		l.metric(func(m Metrics) { m.ObserveRollout("succeeded") })
	case EventRolloutRolledBack:
		l.metric(func(m Metrics) { m.ObserveRollout("rolled-back") })
	case EventRolloutPaused:
		l.metric(func(m Metrics) { m.ObserveRollout("paused") })
	}
	e.Revision = l.rev
	l.tell(e)
}

// tell hands an event to the notifier and the log.
func (l *loop) tell(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Host = l.cfg.Host.Name
	for _, f := range l.desired {
		if f.Name == e.Fleet {
			e.SlackChannel = f.Policy.Notify.SlackChannel
		}
	}
	l.cfg.Log.Info(e.Message, "event", e.Kind, "fleet", e.Fleet, "service", e.Service, "reason", e.Reason)
	if l.notify != nil {
		l.notify.Notify(e)
	}
}

func (l *loop) metric(f func(Metrics)) {
	if l.metrics != nil {
		f(l.metrics)
	}
}

func (l *loop) setStatus(f func(*AgentStatus)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f(&l.status)
}
