package agent

import (
	"slices"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
	"github.com/fleetd/fleetd/redact"
)

// redactorOf knows the secret values of every fleet model in the state,
// so that a message echoing one (an engine error, a problem) shows it
// masked.
func redactorOf(s State) *redact.Redactor {
	var known []string
	for _, f := range s.Fleets {
		if f.Model != nil {
			known = append(known, f.Model.SecretValues()...)
		}
	}
	return redact.New(known...)
}

// redactStatus passes every free text of a status through red: errors,
// problems, condition messages, the revision's subject and author, drift
// details and values, rollout reasons. Names and kinds are left alone.
func redactStatus(st Status, red *redact.Redactor) Status {
	st.Error, st.Invalid, st.Engine.Error = red.String(st.Error), red.String(st.Invalid), red.String(st.Engine.Error)
	if st.Revision != nil {
		rev := *st.Revision
		rev.Subject, rev.Author = red.String(rev.Subject), red.String(rev.Author)
		st.Revision = &rev
	}
	for i := range st.Fleets {
		f := &st.Fleets[i]
		f.Error = red.String(f.Error)
		conds := make([]Condition, len(f.Conditions))
		for j, c := range f.Conditions {
			c.Message = red.String(c.Message)
			conds[j] = c
		}
		f.Conditions = conds
		f.Drift = drift.MapText(f.Drift, red.String)
		if f.Services != nil {
			svcs := slices.Clone(f.Services)
			for j := range svcs {
				svcs[j].Image = red.Image(svcs[j].Image)
			}
			f.Services = svcs
		}
		if f.Updates != nil {
			us := slices.Clone(f.Updates)
			for j := range us {
				us[j].Image, us[j].Error = red.Image(us[j].Image), red.String(us[j].Error)
			}
			f.Updates = us
		}
		if f.Rollouts != nil {
			rs := f.Rollouts[:0:0]
			for _, r := range f.Rollouts {
				r.Reason = red.String(r.Reason)
				rs = append(rs, r)
			}
			f.Rollouts = rs
		}
	}
	return st
}

// redactEvent passes an event's free texts through red, as redactStatus
// does a status: notifications and the log line of each event show no
// known secret value (notify scrubs them again with fleetd's own
// credentials).
func redactEvent(e reconcile.Event, red *redact.Redactor) reconcile.Event {
	e.Message, e.Reason = red.String(e.Message), red.String(e.Reason)
	if e.Revision != nil {
		rev := *e.Revision
		rev.Subject, rev.Author = red.String(rev.Subject), red.String(rev.Author)
		e.Revision = &rev
	}
	if e.Drift != nil {
		e.Drift = drift.MapText(e.Drift, red.String)
	}
	return e
}

// RedactEvent is redactEvent for the adapters that keep events of their
// own (the dashboard's event log): the one redaction of an event.
func RedactEvent(e reconcile.Event, red *redact.Redactor) reconcile.Event { return redactEvent(e, red) }
