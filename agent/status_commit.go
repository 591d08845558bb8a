package agent

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// CommitState is the state of a commit status in the forge.
type CommitState string

// Commit states: the apply of a commit is under way (or waits for a sync
// window, or retries), it ended converged, or it failed for good.
const (
	CommitPending CommitState = "pending"
	CommitSuccess CommitState = "success"
	CommitFailure CommitState = "failure"
)

// CommitStatus asks the shell to post a commit status to the forge: what
// the commit did to one fleet on this host (context fleetd/<host>/<fleet>).
// Description is already redacted and at most MaxStatusDescription runes.
type CommitStatus struct {
	Host        string      `json:"-"`
	Fleet       string      `json:"-"`
	Commit      string      `json:"commit"`
	State       CommitState `json:"state"`
	Description string      `json:"description,omitempty"`
}

func (CommitStatus) effect() {}

// MaxStatusDescription is GitHub's limit on a status's description.
const MaxStatusDescription = 140

// statusWaitingWindow is the description of a commit that waits for a
// sync window.
const statusWaitingWindow = "waiting for the sync window"

// commitStarted posts pending when an apply starts of a commit the fleet
// has not applied yet, when a manual sync retries a failed one, and when
// a commit that waited for a sync window is applied at last. A swarm
// fleet's status comes from its outcome only: until the apply returns,
// this agent does not know whether it holds the swarm's lease.
func (m *machine) commitStarted(f *Fleet, eff Apply) {
	commit := eff.Revision.Commit
	if f.Model == nil || f.Model.Policy.Suspend || f.Model.Engine == fleets.EngineSwarm || commit == "" {
		return
	}
	last := f.Posted
	desc := "applying on " + m.r.Host
	if eff.ReportOnly {
		desc = statusWaitingWindow
	}
	switch {
	case last.Commit != commit && f.Applied != commit:
	case last.Commit == commit && last.State == CommitFailure && eff.Retry:
	case last.Commit == commit && last.State == CommitPending && last.Description == statusWaitingWindow && !eff.ReportOnly:
	default:
		return
	}
	m.postStatus(f, commit, CommitPending, desc)
}

// commitOutcome posts what an apply says of the commit the fleet follows:
// one it had not applied before this apply, or whose status is not
// success yet. It reports whether it posted.
func (m *machine) commitOutcome(f *Fleet, in ApplyDone) bool {
	if in.ReportOnly || in.Standby != "" || f.Model == nil || f.Model.Policy.Suspend || in.Revision == "" {
		return false
	}
	if f.Applied == in.Revision && (f.Posted.Commit != in.Revision || f.Posted.State == CommitSuccess) {
		return false // not followed: applied before, or before this agent posted statuses
	}
	state, desc := commitOutcomeOf(in, m.r.Host)
	if state == "" || (state == CommitPending && f.Posted.Commit == in.Revision && f.Posted.State == CommitPending && desc == "") {
		return false
	}
	if desc == "" {
		desc = "applying on " + m.r.Host
	}
	return m.postStatus(f, in.Revision, state, desc)
}

// commitOutcomeOf judges an apply's result for the commit's status: a
// rollout rolled back, rolling back or paused, or a permanent fault, is a
// failure with its reason; a retryable fault keeps it pending ("retrying:
// ..."); a rollout still under way keeps it pending (no description: the
// one posted stands); anything else is success. It is pure.
func commitOutcomeOf(in ApplyDone, host string) (CommitState, string) {
	for _, r := range in.Rollouts {
		if r.Stalled() || r.Status == reconcile.RolloutRollingBack {
			return CommitFailure, fmt.Sprintf("rollout of %s %s: %s", r.Service, r.Status, r.Reason)
		}
	}
	var retryable, permanent []Fault
	for _, x := range in.Faults {
		if x.Class == fault.Permanent {
			permanent = append(permanent, x)
		} else {
			retryable = append(retryable, x)
		}
	}
	switch {
	case len(permanent) > 0:
		st := stallOf(permanent, time.Time{})
		return CommitFailure, fmt.Sprintf("%s: %s", st.Reason, st.Message)
	case len(retryable) > 0:
		return CommitPending, "retrying: " + faultText(retryable)
	case rollingOut(in):
		return CommitPending, ""
	}
	return CommitSuccess, "applied on " + host
}

// rollingOut reports whether a rollout of the fleet is still under way: a
// delayed batch is due, or containers still run the older spec.
func rollingOut(in ApplyDone) bool {
	if slices.ContainsFunc(in.Rollouts, func(r reconcile.RolloutRecord) bool { return r.Status == reconcile.RolloutRunning }) {
		return true
	}
	return slices.ContainsFunc(in.Left, func(it drift.Item) bool { return it.Kind == drift.SpecChange || it.Kind == drift.RollingOut })
}

// commitInvalid posts failure for a commit in which the fleet is invalid
// (it keeps its older model).
func (m *machine) commitInvalid(f *Fleet, commit string, problems []fleets.Problem) {
	if f.Model != nil && f.Model.Policy.Suspend {
		return
	}
	m.postStatus(f, commit, CommitFailure, "invalid: "+problemText(problems, ""))
}

// postStatus emits a commit status unless it tells the forge nothing new:
// the same commit with the same state and description, or a commit whose
// success was posted (success is final: what happens to the host later is
// drift, not the commit's outcome). It reports whether it posted.
func (m *machine) postStatus(f *Fleet, commit string, state CommitState, desc string) bool {
	c := CommitStatus{Host: m.r.Host, Fleet: f.Name, Commit: commit, State: state,
		Description: statusText(redactorOf(m.s).String(desc))}
	last := f.Posted
	if last.Commit == c.Commit && (last.State == CommitSuccess || (last.State == c.State && last.Description == c.Description)) {
		return false
	}
	f.Posted = CommitStatus{Commit: c.Commit, State: c.State, Description: c.Description}
	m.emit(c)
	return true
}

// statusText is a description on one line ("; " between lines), clipped
// to MaxStatusDescription runes.
func statusText(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
	s = strings.ReplaceAll(s, " ; ", "; ")
	if r := []rune(s); len(r) > MaxStatusDescription {
		s = string(r[:MaxStatusDescription-1]) + "…"
	}
	return s
}
