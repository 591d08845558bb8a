package agent

import (
	"fmt"
	"time"

	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/reconcile"
)

// Condition is one aspect of a fleet's health, as Kubernetes and Flux
// spell them: a type, True or False, a CamelCase reason, a message for
// people, and since when it holds (it changes when the status or the
// reason does).
type Condition struct {
	Type    string    `json:"type"`
	Status  string    `json:"status"`
	Reason  string    `json:"reason"`
	Message string    `json:"message,omitempty"`
	Since   time.Time `json:"since"`
}

// Condition types, in the order they are listed.
const (
	Ready       = "Ready"
	Progressing = "Progressing"
	Degraded    = "Degraded"
	Stalled     = "Stalled"
)

// ConditionTypes lists the types every fleet carries.
var ConditionTypes = []string{Ready, Progressing, Degraded, Stalled}

const (
	condTrue  = "True"
	condFalse = "False"
)

// refresh recomputes every fleet's conditions, keeping the since time of
// those that did not change.
func (m *machine) refresh() {
	for name, f := range m.s.Fleets {
		next := conditionsOf(f, m.s.Engine, m.s.Refused, m.now)
		for i := range next {
			next[i].Since = m.now
			if prev, ok := findCondition(f.Conditions, next[i].Type); ok && prev.Status == next[i].Status && prev.Reason == next[i].Reason {
				next[i].Since = prev.Since
			}
		}
		f.Conditions = next
		m.s.Fleets[name] = f
	}
}

func findCondition(cs []Condition, typ string) (Condition, bool) {
	for _, c := range cs {
		if c.Type == typ {
			return c, true
		}
	}
	return Condition{}, false
}

// conditionsOf derives a fleet's conditions from its state.
func conditionsOf(f Fleet, eng EngineState, refused *Refusal, now time.Time) []Condition {
	stalled := stalledCondition(f, refused)
	degraded := degradedCondition(f, eng, now)
	progressing := progressingCondition(f, eng)
	ready := Condition{Type: Ready, Status: condTrue, Reason: "Converged", Message: "applied " + reconcile.ShortHash(f.Applied) + ", in sync"}
	switch {
	case f.Model == nil && !f.Gone:
		ready = Condition{Type: Ready, Status: condFalse, Reason: "NoModel", Message: "no valid revision of this fleet is loaded yet"}
	case f.Standby != "":
		ready = Condition{Type: Ready, Status: "Unknown", Reason: "Standby", Message: "this agent stands by: " + f.Standby + " acts for the swarm"}
	case stalled.Status == condTrue:
		ready = Condition{Type: Ready, Status: condFalse, Reason: stalled.Reason, Message: stalled.Message}
	case degraded.Status == condTrue:
		ready = Condition{Type: Ready, Status: condFalse, Reason: degraded.Reason, Message: degraded.Message}
	case progressing.Status == condTrue:
		ready = Condition{Type: Ready, Status: condFalse, Reason: progressing.Reason, Message: progressing.Message}
	case f.Gone:
		ready = Condition{Type: Ready, Status: condFalse, Reason: "Pruning", Message: "left the spec; its containers are removed"}
	case f.Applied == "" || f.Applied != f.Rev.Commit:
		ready = Condition{Type: Ready, Status: condFalse, Reason: "NotApplied", Message: "revision " + reconcile.ShortHash(f.Rev.Commit) + " is not applied yet"}
	}
	return []Condition{ready, progressing, degraded, stalled}
}

func stalledCondition(f Fleet, refused *Refusal) Condition {
	switch {
	case refused != nil:
		return refusedCondition(f, *refused)
	case f.Invalid != "":
		return Condition{Type: Stalled, Status: condTrue, Reason: string(fault.InvalidSpec),
			Message: "the newest revision is invalid for this fleet; it keeps revision " + reconcile.ShortHash(f.Rev.Commit) + ": " + f.Invalid}
	case f.Stall != nil:
		return Condition{Type: Stalled, Status: condTrue, Reason: string(f.Stall.Reason), Message: f.Stall.Message}
	}
	return Condition{Type: Stalled, Status: condFalse, Reason: "AsExpected"}
}

func degradedCondition(f Fleet, eng EngineState, now time.Time) Condition {
	switch {
	case !eng.Up && eng.Err != "":
		return Condition{Type: Degraded, Status: condTrue, Reason: string(fault.EngineUnreachable), Message: eng.Err}
	case len(f.Faults) > 0:
		msg := fmt.Sprintf("%d failed applies in a row: %s", max(f.Failures, 1), faultText(f.Faults))
		if !f.RetryAt.IsZero() {
			msg += fmt.Sprintf("; retry in %s", f.RetryAt.Sub(now).Round(time.Second))
		}
		return Condition{Type: Degraded, Status: condTrue, Reason: string(f.Faults[0].Reason), Message: msg}
	case len(f.Drift) > 0 && !f.Running:
		return Condition{Type: Degraded, Status: condTrue, Reason: "DriftLeft",
			Message: fmt.Sprintf("%d drift items left (%s)", len(f.Drift), kindsOf(f.Drift))}
	}
	return Condition{Type: Degraded, Status: condFalse, Reason: "AsExpected"}
}

func progressingCondition(f Fleet, eng EngineState) Condition {
	switch {
	case f.Running:
		return Condition{Type: Progressing, Status: condTrue, Reason: "Applying", Message: "an apply is running"}
	case f.Pending != 0 && !eng.Up:
		return Condition{Type: Progressing, Status: condTrue, Reason: "WaitingForEngine", Message: "an apply waits for the engine"}
	case f.Pending != 0:
		return Condition{Type: Progressing, Status: condTrue, Reason: "Pending", Message: "an apply is due"}
	case !f.Delay.IsZero():
		return Condition{Type: Progressing, Status: condTrue, Reason: "RolloutDelay", Message: "a rollout's next batch is due at " + f.Delay.UTC().Format(time.TimeOnly)}
	}
	return Condition{Type: Progressing, Status: condFalse, Reason: "Idle"}
}
