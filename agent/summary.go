package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// summarize turns what one apply did into the ApplyDone input: its faults,
// classified, the drift before and after, what changed, the rollout
// records, and the fleets with containers here that nothing desires. It
// is pure.
func summarize(eff Apply, out reconcile.Outcome, err error) ApplyDone {
	d := ApplyDone{Fleet: eff.Fleet, Revision: eff.Revision.Commit, ReportOnly: eff.ReportOnly, NextAt: earliest(out.Last.NextAt, out.Last.HealAt)}
	before := out.Last.Drift
	if len(out.Plans) > 0 {
		before = out.Plans[0].Drift
	}
	for _, it := range before {
		if it.Fleet == eff.Fleet && outOfBand(it.Kind) {
			d.Drifted = append(d.Drifted, it)
		}
	}
	for _, it := range out.Last.Drift {
		if it.Fleet == eff.Fleet {
			d.Left = append(d.Left, it)
		}
	}
	d.Faults = faultsOf(eff.Fleet, out, err)
	d.Changes = changeSummary(out, eff.Fleet)
	for _, key := range sortedKeys(out.Rollouts) {
		if r := out.Rollouts[key]; r.Fleet == eff.Fleet {
			d.Rollouts = append(d.Rollouts, r)
		}
	}
	d.Strays = strays(eff, before)
	return d
}

// faultsOf classifies what kept the apply from converging the fleet: the
// error that ended it, the actions that failed in its last pass, what the
// last plan left blocked (conflicts, missing images, failed rollouts) and
// a refused prune.
func faultsOf(fleet string, out reconcile.Outcome, err error) []Fault {
	var fs []Fault
	if err != nil && !errors.Is(err, context.Canceled) {
		fs = append(fs, faultFrom(err, err.Error()))
	}
	if n := len(out.Reports); n > 0 {
		for _, r := range out.Reports[n-1].Failed() {
			// A rollout batch's failures are judged by reconcile.Advance
			// (rolled back, paused, or tolerated); what it leaves blocked
			// is below.
			if r.Action.Fleet == fleet && !r.Action.Rollout {
				fs = append(fs, faultFrom(r.Err, r.Error))
			}
		}
	}
	for _, b := range out.Last.Blocked {
		if b.Fleet != fleet || !b.Error {
			continue
		}
		fs = append(fs, Fault{Class: fault.Permanent, Reason: cmp.Or(b.Fault, fault.Conflict), Object: b.Object, Message: blockedText(b)})
	}
	if out.Last.Refused != "" {
		fs = append(fs, Fault{Class: fault.Permanent, Reason: fault.PruneRefused, Message: out.Last.Refused})
	}
	return fs
}

func faultFrom(err error, msg string) Fault {
	if err == nil {
		err = errors.New(msg)
	}
	f := fault.Of(err)
	return Fault{Class: f.Class, Reason: f.Reason, Object: f.Object, Message: msg}
}

func blockedText(b reconcile.Blocked) string {
	where := ""
	if b.Service != "" {
		where = "service " + b.Service + ": "
	}
	if b.Container != "" {
		where += b.Container + ": "
	}
	return where + b.Reason
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

// changeSummary is a one-line account of what an apply did to a fleet's
// containers; "" when it changed none (a revision that leaves a fleet as
// it was is applied silently).
func changeSummary(out reconcile.Outcome, fleet string) string {
	counts := map[reconcile.Op]int{}
	for _, rep := range out.Reports {
		for _, r := range rep.Results {
			if r.Action.Fleet == fleet && r.Status == reconcile.Done {
				counts[r.Action.Op]++
			}
		}
	}
	var parts []string
	for _, op := range []reconcile.Op{reconcile.OpCreate, reconcile.OpRemove, reconcile.OpRename, reconcile.OpStart, reconcile.OpRestart, reconcile.OpUpdate, reconcile.OpPull, reconcile.OpBuild} {
		if counts[op] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[op], op))
		}
	}
	return strings.Join(parts, ", ")
}

// surveyOf compares the whole host with every fleet: the fleets with
// drift, and those with containers here that nothing desires. It is pure.
func surveyOf(desired []fleets.Fleet, obs drift.Observed) Surveyed {
	items := drift.Diff(desired, obs)
	var out Surveyed
	for _, it := range items {
		if it.Kind != drift.Orphan || slices.ContainsFunc(desired, func(f fleets.Fleet) bool { return f.Name == it.Fleet }) {
			out.Drifted = append(out.Drifted, it.Fleet)
		}
	}
	slices.Sort(out.Drifted)
	out.Drifted = slices.Compact(out.Drifted)
	out.Strays = strays(Apply{Desired: desired}, items)
	return out
}

// strays are the fleets whose containers the plan found orphaned and that
// the apply's desired state does not know: containers of a fleet removed
// while the agent was away.
func strays(eff Apply, items []drift.Item) []string {
	known := map[string]bool{eff.Fleet: true}
	for _, f := range eff.Desired {
		known[f.Name] = true
	}
	var out []string
	for _, it := range items {
		if it.Kind == drift.Orphan && !known[it.Fleet] && it.Fleet != "" {
			out = append(out, it.Fleet)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// summarizeSwarm turns one apply of a swarm fleet into the ApplyDone
// input, as summarize does for a docker fleet: every fault of the (joined)
// error classified, the out-of-band drift found, what is left, what
// changed; or, when another agent holds the swarm's lease, that this one
// stands by. It is pure.
func summarizeSwarm(eff Apply, res reconcile.SwarmResult, err error) ApplyDone {
	d := ApplyDone{Fleet: eff.Fleet, Revision: eff.Revision.Commit, ReportOnly: eff.ReportOnly,
		Drifted: res.Drifted, Left: res.Left, Changes: res.Changes}
	for _, e := range leaves(err) {
		if errors.Is(e, context.Canceled) {
			continue
		}
		x := faultFrom(e, e.Error())
		if x.Reason == fault.NotLeader {
			return ApplyDone{Fleet: eff.Fleet, Revision: eff.Revision.Commit, ReportOnly: eff.ReportOnly, Standby: cmp.Or(x.Object, "another agent")}
		}
		d.Faults = append(d.Faults, x)
	}
	return d
}

// leaves splits errors.Join's errors.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}
