package notify

import (
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

// dedup decides which events become messages. It is not safe for
// concurrent use; the dispatcher holds its lock. Time is an argument.
//
// Alerts come in two shapes:
//   - problems with a resolution (drift detected/resolved, source or
//     engine unreachable/recovered, fleet stalled or failing/recovered):
//     one open episode per scope (host+fleet, or host for the source and
//     the engine); the alert is keyed by scope and what is wrong;
//   - repeatable alerts without one (prune refused, invalid revision): keyed
//     by host and reason or commit.
//
// For one key an alert is sent at most once per quiet period; the others
// are counted (Suppressed) and the count rides on the key's next message.
// A resolution is sent only when its episode's alert was.
type dedup struct {
	quiet  time.Duration
	alerts map[string]*alertState
	open   map[string]*episode
}

type alertState struct {
	last       time.Time // when an alert for this key was last sent
	suppressed int       // alerts held back since
}

type episode struct {
	key      string
	event    reconcile.Event // the alert, for reminders
	opened   time.Time
	reported bool
}

func newDedup(quiet time.Duration) *dedup {
	return &dedup{quiet: quiet, alerts: map[string]*alertState{}, open: map[string]*episode{}}
}

// admit returns the message an event becomes, if any.
func (d *dedup) admit(e reconcile.Event, now time.Time) (Message, bool) {
	switch e.Kind {
	case reconcile.EventDriftDetected:
		scope := "drift\x00" + e.Host + "\x00" + e.Fleet
		return d.problem(scope, scope+"\x00"+driftKey(e.Drift), e, now)
	case reconcile.EventDriftResolved:
		return d.resolved("drift\x00"+e.Host+"\x00"+e.Fleet, e)
	case reconcile.EventSourceUnreachable:
		scope := "source\x00" + e.Host
		return d.problem(scope, scope, e, now)
	case reconcile.EventSourceRecovered:
		return d.resolved("source\x00"+e.Host, e)
	case reconcile.EventEngineUnreachable:
		scope := "engine\x00" + e.Host
		return d.problem(scope, scope, e, now)
	case reconcile.EventEngineRecovered:
		return d.resolved("engine\x00"+e.Host, e)
	case reconcile.EventFleetStalled, reconcile.EventFleetFailing:
		scope := "fleet\x00" + e.Host + "\x00" + e.Fleet
		return d.problem(scope, scope+"\x00"+string(e.Kind)+"\x00"+e.Reason, e, now)
	case reconcile.EventFleetRecovered:
		return d.resolved("fleet\x00"+e.Host+"\x00"+e.Fleet, e)
	case reconcile.EventPruneRefused:
		return d.repeatable("prune\x00"+e.Host+"\x00"+e.Reason, e, now)
	case reconcile.EventInvalidRevision:
		commit := ""
		if e.Revision != nil {
			commit = e.Revision.Commit
		}
		return d.repeatable("invalid\x00"+e.Host+"\x00"+commit, e, now)
	}
	return Message{Event: e}, true
}

// driftKey names what drifted: the sorted set of container and kind.
func driftKey(items []drift.Item) string {
	set := map[string]bool{}
	for _, it := range items {
		set[it.Container+"/"+string(it.Kind)] = true
	}
	return strings.Join(slices.Sorted(maps.Keys(set)), ",")
}

func (d *dedup) state(key string) *alertState {
	st := d.alerts[key]
	if st == nil {
		st = &alertState{}
		d.alerts[key] = st
	}
	return st
}

// quietSince reports whether an alert for st was sent less than a quiet
// period before now.
func (d *dedup) quietSince(st *alertState, now time.Time) bool {
	return !st.last.IsZero() && now.Sub(st.last) < d.quiet
}

func (d *dedup) problem(scope, key string, e reconcile.Event, now time.Time) (Message, bool) {
	if ep := d.open[scope]; ep != nil && ep.key == key {
		return Message{}, false // the same problem, still there: the reminder covers it
	}
	ep := &episode{key: key, event: e, opened: now}
	d.open[scope] = ep
	st := d.state(key)
	if d.quietSince(st, now) {
		st.suppressed++
		return Message{}, false
	}
	m := Message{Event: e, Suppressed: st.suppressed}
	st.last, st.suppressed, ep.reported = now, 0, true
	return m, true
}

func (d *dedup) resolved(scope string, e reconcile.Event) (Message, bool) {
	ep := d.open[scope]
	delete(d.open, scope)
	if ep == nil || !ep.reported {
		return Message{}, false
	}
	if len(e.Drift) == 0 {
		e.Drift = ep.event.Drift // say what was resolved
	}
	return Message{Event: e, Since: ep.opened}, true
}

func (d *dedup) repeatable(key string, e reconcile.Event, now time.Time) (Message, bool) {
	st := d.state(key)
	if d.quietSince(st, now) {
		st.suppressed++
		return Message{}, false
	}
	m := Message{Event: e, Suppressed: st.suppressed}
	st.last, st.suppressed = now, 0
	return m, true
}

// due returns the reminders of problems still open a quiet period after
// their key's last alert: a repeat of a reported alert, or the first
// message of one held back while it flapped (it ended in the bad state).
// It also forgets keys that can no longer suppress anything.
func (d *dedup) due(now time.Time) []Message {
	var out []Message
	for _, scope := range slices.Sorted(maps.Keys(d.open)) {
		ep := d.open[scope]
		st := d.state(ep.key)
		if d.quietSince(st, now) {
			continue
		}
		m := Message{Event: ep.event, Repeat: ep.reported, Since: ep.opened, Suppressed: st.suppressed}
		m.Time = now
		st.last, st.suppressed, ep.reported = now, 0, true
		out = append(out, m)
	}
	inUse := map[string]bool{}
	for _, ep := range d.open {
		inUse[ep.key] = true
	}
	for key, st := range d.alerts {
		age := now.Sub(st.last)
		if !inUse[key] && age >= d.quiet && (st.suppressed == 0 || age >= 24*d.quiet) {
			delete(d.alerts, key)
		}
	}
	return out
}
