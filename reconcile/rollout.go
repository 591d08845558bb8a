package reconcile

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// Rollout statuses. A record exists only while a rollout is in progress or
// after it failed; a rollout that succeeds leaves no record.
const (
	RolloutRunning     = "running"      // batches are being replaced
	RolloutPaused      = "paused"       // failure_action pause, or a failed rollback: waits for a new commit or a retry
	RolloutRollingBack = "rolling-back" // failure_action rollback: the previous spec is being restored
	RolloutRolledBack  = "rolled-back"  // the previous spec is back; the failed spec is not retried
)

// RolloutRecord is the persisted progress of one service's rollout. Target
// is the hash being rolled out; From and FromSpec are the spec its
// containers ran before, so a rollback needs no Git history.
type RolloutRecord struct {
	Fleet       string       `json:"fleet"`
	Service     string       `json:"service"`
	Target      string       `json:"target"`
	From        string       `json:"from,omitempty"`
	FromSpec    *fleets.Spec `json:"from_spec,omitempty"`
	Status      string       `json:"status"`
	Reason      string       `json:"reason,omitempty"`
	Failures    int          `json:"failures"`
	Batches     int          `json:"batches"`
	StartedAt   time.Time    `json:"started_at"`
	LastBatchAt time.Time    `json:"last_batch_at"`
}

// Rollouts are the rollout records of a host, keyed by "fleet/service".
type Rollouts map[string]RolloutRecord

func rolloutKey(fleet, service string) string { return fleet + "/" + service }

// Stalled reports whether the record stops the rollout of its target until
// a new commit or a manual retry.
func (r RolloutRecord) Stalled() bool {
	return r.Status == RolloutPaused || r.Status == RolloutRolledBack
}

// RolloutStep is the batch of one service's rollout that a plan carries:
// what Advance needs to judge it once executed.
type RolloutStep struct {
	Fleet    string       `json:"fleet"`
	Service  string       `json:"service"`
	Target   string       `json:"target"`
	From     string       `json:"from,omitempty"`
	FromSpec *fleets.Spec `json:"-"`
	Slots    []int        `json:"slots"`
	// Remaining is the number of containers still on the old spec before
	// this batch.
	Remaining int            `json:"remaining"`
	Replicas  int            `json:"replicas"`
	Policy    fleets.Rollout `json:"policy"`
	Order     string         `json:"order"`
	Forced    string         `json:"forced,omitempty"` // why stop-first was forced
	Rollback  bool           `json:"rollback,omitempty"`
	// Chained is set on a batch planned after another batch of the same
	// rollout in the same plan: it starts once that batch passed its
	// health gates, and does not run when one of them failed.
	Chained bool `json:"chained,omitempty"`
}

// EventKind names what happened to a rollout.
type EventKind string

// Rollout events, for people: printed by apply, sent by the notifier.
const (
	EventRolloutStarted    EventKind = "rollout-started"
	EventRolloutBatch      EventKind = "rollout-batch"
	EventRolloutSucceeded  EventKind = "rollout-succeeded"
	EventRolloutFailed     EventKind = "rollout-failed"
	EventRolloutRolledBack EventKind = "rollout-rolled-back"
	EventRolloutPaused     EventKind = "rollout-paused"

	// Events of the daemon loop.
	EventRevisionApplied   EventKind = "revision-applied"
	EventDriftDetected     EventKind = "drift-detected"
	EventDriftResolved     EventKind = "drift-resolved"
	EventInvalidRevision   EventKind = "invalid-revision"
	EventSourceUnreachable EventKind = "source-unreachable"
	EventSourceRecovered   EventKind = "source-recovered"
	EventPruneRefused      EventKind = "prune-refused"
	EventDaemonStarted     EventKind = "daemon-started"
	// A fleet cannot converge until something changes (a conflict, a
	// missing image, a taken port, an invalid spec, a failed rollout), or
	// its applies fail and are retried with backoff; recovered ends both.
	EventFleetStalled   EventKind = "fleet-stalled"
	EventFleetFailing   EventKind = "fleet-failing"
	EventFleetRecovered EventKind = "fleet-recovered"
	// The engine cannot be reached (dockerd restarting, socket gone).
	EventEngineUnreachable EventKind = "engine-unreachable"
	EventEngineRecovered   EventKind = "engine-recovered"
	// A tag a service runs names a new digest at its registry
	// (x-fleetd.image_updates), told once per fleet, tag and digest.
	EventImageUpdateAvailable EventKind = "image-update-available"
)

// Revision is one revision of the fleet repository, checked out on disk.
type Revision struct {
	Commit  string    `json:"commit"`
	Subject string    `json:"subject,omitempty"`
	Author  string    `json:"author,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	Dir     string    `json:"-"`
	Root    string    `json:"-"` // the whole checkout Dir is part of
}

// Event is one thing that happened that people may want to hear about.
type Event struct {
	Time     time.Time `json:"time"`
	Kind     EventKind `json:"kind"`
	Host     string    `json:"host,omitempty"`
	Fleet    string    `json:"fleet,omitempty"`
	Service  string    `json:"service,omitempty"`
	Revision *Revision `json:"revision,omitempty"`
	Message  string    `json:"message"`
	Reason   string    `json:"reason,omitempty"`
	// Drift lists the drift items of a drift event.
	Drift []drift.Item `json:"drift,omitempty"`
	// SlackChannel routes the event to the fleet's channel
	// (x-fleetd.notify.slack_channel); empty means the sink's default.
	SlackChannel string `json:"-"`
}

// Forget drops the records of rollouts whose target is no longer the
// desired spec: a new commit supersedes a paused, failed or even a running
// rollout (and a rollback of it).
func Forget(state Rollouts, desired []fleets.Fleet) Rollouts {
	want := map[string]string{}
	for _, f := range desired {
		for _, s := range f.Services {
			want[rolloutKey(f.Name, s.Name)] = s.Hash
		}
	}
	out := Rollouts{}
	for k, r := range state {
		if want[k] == r.Target {
			out[k] = r
		}
	}
	return out
}

// Retry clears stalled records (paused, rolled back) so that the next plan
// tries their targets again: the manual sync.
func Retry(state Rollouts) Rollouts {
	out := Rollouts{}
	for k, r := range state {
		if !r.Stalled() {
			out[k] = r
		}
	}
	return out
}

// withRollbacks returns desired with every service that is rolling back
// replaced by its previous spec, rolled out with its rollback_config. A
// rollback fails into pause: a rollback is never rolled back.
func withRollbacks(desired []fleets.Fleet, state Rollouts) []fleets.Fleet {
	if !anyRollingBack(state) {
		return desired
	}
	out := slices.Clone(desired)
	for i := range out {
		cloned := false
		for j, s := range out[i].Services {
			r, ok := state[rolloutKey(out[i].Name, s.Name)]
			if !ok || r.Status != RolloutRollingBack || r.FromSpec == nil || r.Target != s.Hash {
				continue
			}
			if !cloned {
				out[i].Services, cloned = slices.Clone(out[i].Services), true
			}
			prev := s
			prev.Spec = withSources(*r.FromSpec, s.Spec)
			prev.Hash = r.From
			prev.Update = s.Rollback
			prev.Update.FailureAction = fleets.FailurePause
			out[i].Services[j] = prev
		}
	}
	return out
}

func anyRollingBack(state Rollouts) bool {
	for _, r := range state {
		if r.Status == RolloutRollingBack {
			return true
		}
	}
	return false
}

// withSources gives the previous spec's secrets and configs their contents
// back: the spec label keeps only digests, so a file is restored from the
// current spec's file with the same digest. A file whose contents changed
// since keeps no source, and creating the container fails with a clear
// error rather than mounting the wrong contents.
func withSources(prev, cur fleets.Spec) fleets.Spec {
	byDigest := map[string]fleets.FileRef{}
	for _, f := range slices.Concat(cur.Secrets, cur.Configs) {
		byDigest[f.Digest] = f
	}
	fill := func(refs []fleets.FileRef) []fleets.FileRef {
		out := slices.Clone(refs)
		for i := range out {
			if src, ok := byDigest[out[i].Digest]; ok {
				out[i].Source, out[i].Content = src.Source, src.Content
			}
		}
		return out
	}
	prev.Secrets, prev.Configs = fill(prev.Secrets), fill(prev.Configs)
	prev.SecretEnv = fleets.RestoreSecretEnv(prev.SecretEnv, cur.SecretEnv)
	return prev
}

// Started returns the events of the rollouts a plan starts (its first
// batch), to be told before the plan executes.
func Started(state Rollouts, p ActionPlan, now time.Time) []Event {
	var events []Event
	for _, step := range p.Rollouts {
		r, ok := state[rolloutKey(step.Fleet, step.Service)]
		if step.Rollback || step.Chained || len(step.Slots) == 0 || (ok && r.Target == step.Target) {
			continue
		}
		events = append(events, Event{Time: now, Kind: EventRolloutStarted, Fleet: step.Fleet, Service: step.Service,
			Message: fmt.Sprintf("rolling out %s over %d %s: %s, %s%s",
				ShortHash(step.Target), step.Replicas, Plural(step.Replicas, "replica", "replicas"), batchWord(step.Policy.Parallelism), step.Order, forcedNote(step.Forced))})
	}
	return events
}

// Advance judges the rollout batches of an executed plan and returns the
// new rollout state with the events people should hear about. It is pure:
// now is an argument. A batch fails when its failures, added to the
// rollout's earlier ones, exceed max_failure_ratio of the replicas; then
// the failure action decides: rollback (a rollback that fails pauses),
// pause, or continue.
func Advance(state Rollouts, p ActionPlan, rep Report, now time.Time) (Rollouts, []Event) {
	next := maps.Clone(state)
	if next == nil {
		next = Rollouts{}
	}
	var events []Event
	for _, step := range p.Rollouts {
		key := rolloutKey(step.Fleet, step.Service)
		if step.Chained && (!inProgress(next[key], step) || !ran(step, rep)) {
			continue // an earlier batch failed, so this one did not run, or it ran too late to count
		}
		r, evs := advanceOne(next[key], step, rep, now)
		events = append(events, evs...)
		if r == nil {
			delete(next, key)
		} else {
			next[key] = *r
		}
	}
	return next, events
}

// inProgress reports whether r is the record a chained batch continues:
// the rollout of its target still running, or its rollback still rolling
// back.
func inProgress(r RolloutRecord, step RolloutStep) bool {
	if step.Rollback {
		return r.Status == RolloutRollingBack
	}
	return r.Status == RolloutRunning && r.Target == step.Target
}

// ran reports whether any action of the batch ran (rather than being
// skipped because an action it waited for failed).
func ran(step RolloutStep, rep Report) bool {
	for _, res := range rep.Results {
		a := res.Action
		if a.Rollout && a.Fleet == step.Fleet && a.Service == step.Service && slices.Contains(step.Slots, a.Slot) && res.Status != Skipped {
			return true
		}
	}
	return false
}

func advanceOne(prev RolloutRecord, step RolloutStep, rep Report, now time.Time) (*RolloutRecord, []Event) {
	ev := func(kind EventKind, reason, format string, args ...any) Event {
		return Event{Time: now, Kind: kind, Fleet: step.Fleet, Service: step.Service, Message: fmt.Sprintf(format, args...), Reason: reason}
	}
	var events []Event
	r := prev
	if step.Rollback {
		if r.Status != RolloutRollingBack {
			return nil, nil // the record was forgotten meanwhile
		}
	} else if r.Target != step.Target || r.Status == "" {
		r = RolloutRecord{Fleet: step.Fleet, Service: step.Service, Target: step.Target, From: step.From, FromSpec: step.FromSpec,
			Status: RolloutRunning, StartedAt: now}
	}
	failed, reason := batchFailures(step, rep)
	r.Failures += failed
	r.Batches++
	r.LastBatchAt = now
	done := len(step.Slots) - failed
	what := "rollout"
	if step.Rollback {
		what = "rollback"
	}
	if len(step.Slots) > 0 {
		events = append(events, ev(EventRolloutBatch, reason, "%s batch %d: %d of %d replaced, %d failed; %d left",
			what, r.Batches, done, len(step.Slots), failed, step.Remaining-len(step.Slots)))
	}
	if failed > 0 && float64(r.Failures) > step.Policy.MaxFailureRatio*float64(step.Replicas) {
		return failRollout(r, step, reason, ev, events)
	}
	if step.Remaining-len(step.Slots) > 0 || failed > 0 {
		return &r, events
	}
	if step.Rollback {
		r.Status = RolloutRolledBack
		return &r, append(events, ev(EventRolloutRolledBack, r.Reason, "rolled back to %s; %s is not retried until a new commit or a manual sync", ShortHash(r.From), ShortHash(r.Target)))
	}
	return nil, append(events, ev(EventRolloutSucceeded, "", "rolled out %s to %d %s in %d %s", ShortHash(step.Target),
		step.Replicas, Plural(step.Replicas, "replica", "replicas"), r.Batches, Plural(r.Batches, "batch", "batches")))
}

func failRollout(r RolloutRecord, step RolloutStep, reason string, ev func(EventKind, string, string, ...any) Event, events []Event) (*RolloutRecord, []Event) {
	switch {
	case step.Rollback:
		r.Status, r.Reason = RolloutPaused, "rollback failed: "+reason
		return &r, append(events, ev(EventRolloutPaused, r.Reason, "rollback of %s failed; paused", ShortHash(r.Target)))
	case step.Policy.FailureAction == fleets.FailureRollback && r.FromSpec != nil:
		r.Status, r.Reason = RolloutRollingBack, reason
		r.Batches = 0 // the rollback counts its own batches
		return &r, append(events, ev(EventRolloutFailed, reason, "rollout of %s failed; rolling back to %s", ShortHash(r.Target), ShortHash(r.From)))
	case step.Policy.FailureAction == fleets.FailureContinue:
		return &r, append(events, ev(EventRolloutFailed, reason, "rollout of %s: failures over max_failure_ratio; continuing (failure_action continue)", ShortHash(r.Target)))
	default:
		r.Status, r.Reason = RolloutPaused, reason
		if step.Policy.FailureAction == fleets.FailureRollback {
			r.Reason += " (no previous spec to roll back to)"
		}
		return &r, append(events, ev(EventRolloutPaused, r.Reason, "rollout of %s failed; paused with old and new replicas running", ShortHash(r.Target)))
	}
}

// batchFailures counts the slots of a batch whose replacement failed, and
// names the first failure.
func batchFailures(step RolloutStep, rep Report) (int, string) {
	bySlot := map[int]bool{}
	var reasons []string
	for _, res := range rep.Results {
		a := res.Action
		if res.Status == Done || !a.Rollout || a.Fleet != step.Fleet || a.Service != step.Service || !slices.Contains(step.Slots, a.Slot) {
			continue
		}
		if !bySlot[a.Slot] && res.Status == Failed {
			reasons = append(reasons, res.Error)
		}
		bySlot[a.Slot] = true
	}
	slices.Sort(reasons)
	return len(bySlot), strings.Join(slices.Compact(reasons), "; ")
}

// ShortHash abbreviates a commit or content hash to 12 characters for
// people to read.
func ShortHash(hash string) string {
	if len(hash) > 12 {
		return hash[:12]
	}
	return cmp.Or(hash, "(none)")
}

func batchWord(parallelism int) string {
	if parallelism == 0 {
		return "all at once"
	}
	return fmt.Sprintf("%d at a time", parallelism)
}

func forcedNote(forced string) string {
	if forced == "" {
		return ""
	}
	return " (forced: " + forced + ")"
}

// RecordHeals counts the self-heal attempts an executed plan made, per
// container, so that the next plan backs off (Policy.Heals).
func RecordHeals(heals map[string]HealRecord, rep Report, now time.Time) map[string]HealRecord {
	out := maps.Clone(heals)
	if out == nil {
		out = map[string]HealRecord{}
	}
	for _, res := range rep.Results {
		if !res.Action.Heal || res.Status == Skipped {
			continue
		}
		h := out[res.Action.Target]
		if healReset(h, now) {
			h.Attempts = 0 // it stayed up since its last heal: a first heal again
		}
		h.Attempts++
		h.Last = now
		out[res.Action.Target] = h
	}
	return out
}
