package notify

import (
	"crypto/sha256"
	"encoding/hex"
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
// A problem's incident (its episode opening) is always reported, and so is
// its resolution, until its key flaps: FlapThreshold incidents within
// FlapWindow. The incident that reaches the threshold sends one flapping
// message; the incidents and resolutions after it become in-place updates
// of that message (at most one per FlapUpdateEvery), and once the key has
// stayed healthy for a whole window one flap-resolved message ends it.
//
// The quiet period spaces the reminders of a problem still open and the
// repeats of an alert without a resolution: those are sent at most once
// per quiet period per key; the repeats held back are counted
// (Suppressed) and the count rides on the key's next message.
type dedup struct {
	quiet  time.Duration
	flap   flapPolicy
	alerts map[string]*alertState
	open   map[string]*episode
	flaps  map[string]*flapState
}

// flapPolicy is when a key flaps and how often its message is updated.
type flapPolicy struct {
	window      time.Duration
	threshold   int
	updateEvery time.Duration
}

type alertState struct {
	last       time.Time // when an alert for this key was last sent
	suppressed int       // alerts held back since
}

type episode struct {
	key    string
	event  reconcile.Event // the alert, for reminders
	opened time.Time
}

// flapState is the recent incidents of one problem key, and its flapping.
type flapState struct {
	// incidents are the recent incidents, oldest first: an incident counts
	// while it is open and for a window after its resolution.
	incidents []incident
	flapping  bool
	// bad: the key's latest event was an incident; changed is its time.
	bad     bool
	changed time.Time
	// The flapping: its message's event, identity, first incident and
	// count; the last update sent, and whether a change awaits one.
	event   reconcile.Event
	id      string
	first   time.Time
	count   int
	updated time.Time
	pending bool
}

type incident struct{ start, end time.Time } // end is zero while open

func newDedup(quiet time.Duration, flap flapPolicy) *dedup {
	return &dedup{quiet: quiet, flap: flap, alerts: map[string]*alertState{}, open: map[string]*episode{}, flaps: map[string]*flapState{}}
}

// admit returns the message an event becomes, if any.
func (d *dedup) admit(e reconcile.Event, now time.Time) (Message, bool) {
	switch e.Kind {
	case reconcile.EventDriftDetected:
		scope := "drift\x00" + e.Host + "\x00" + e.Fleet
		return d.problem(scope, scope+"\x00"+driftKey(e.Drift), e, now)
	case reconcile.EventDriftResolved:
		return d.resolved("drift\x00"+e.Host+"\x00"+e.Fleet, e, now)
	case reconcile.EventSourceUnreachable:
		scope := "source\x00" + e.Host
		return d.problem(scope, scope, e, now)
	case reconcile.EventSourceRecovered:
		return d.resolved("source\x00"+e.Host, e, now)
	case reconcile.EventEngineUnreachable:
		scope := "engine\x00" + e.Host
		return d.problem(scope, scope, e, now)
	case reconcile.EventEngineRecovered:
		return d.resolved("engine\x00"+e.Host, e, now)
	case reconcile.EventFleetStalled, reconcile.EventFleetFailing:
		scope := "fleet\x00" + e.Host + "\x00" + e.Fleet
		return d.problem(scope, scope+"\x00"+string(e.Kind)+"\x00"+e.Reason, e, now)
	case reconcile.EventFleetRecovered:
		return d.resolved("fleet\x00"+e.Host+"\x00"+e.Fleet, e, now)
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
	if ep := d.open[scope]; ep != nil {
		if ep.key == key {
			return Message{}, false // the same problem, still there: the reminder covers it
		}
		// Another problem of the scope replaces it: for its key, it ended.
		if fs := d.flaps[ep.key]; fs != nil {
			fs.resolve(now)
		}
	}
	d.open[scope] = &episode{key: key, event: e, opened: now}
	fs := d.flaps[key]
	if fs == nil {
		fs = &flapState{}
		d.flaps[key] = fs
	}
	fs.prune(now, d.flap.window)
	fs.incidents = append(fs.incidents, incident{start: now})
	fs.bad, fs.changed = true, now
	st := d.state(key)
	switch {
	case fs.flapping:
		fs.count++
		return d.update(fs, now)
	case len(fs.incidents) >= d.flap.threshold:
		fs.flapping, fs.first, fs.count, fs.updated, fs.pending = true, fs.incidents[0].start, len(fs.incidents), now, false
		fs.id = flapID(key, fs.first)
		fs.event = e
		st.last, st.suppressed = now, 0 // the flapping message is the key's alert
		return d.flapMessage(fs, KindFlapping, now), true
	}
	m := Message{Event: e, Suppressed: st.suppressed}
	st.last, st.suppressed = now, 0
	return m, true
}

func (d *dedup) resolved(scope string, e reconcile.Event, now time.Time) (Message, bool) {
	ep := d.open[scope]
	if ep == nil {
		return Message{}, false
	}
	delete(d.open, scope)
	if fs := d.flaps[ep.key]; fs != nil {
		fs.resolve(now)
		if fs.flapping {
			return d.update(fs, now)
		}
	}
	if len(e.Drift) == 0 {
		e.Drift = ep.event.Drift // say what was resolved
	}
	return Message{Event: e, Since: ep.opened}, true
}

// resolve ends the key's open incident.
func (fs *flapState) resolve(now time.Time) {
	for i := range fs.incidents {
		if fs.incidents[i].end.IsZero() {
			fs.incidents[i].end = now
		}
	}
	fs.bad, fs.changed = false, now
}

// prune forgets the incidents that ended more than a window ago.
func (fs *flapState) prune(now time.Time, window time.Duration) {
	fs.incidents = slices.DeleteFunc(fs.incidents, func(in incident) bool {
		return !in.end.IsZero() && now.Sub(in.end) >= window
	})
}

// update is the in-place update of a flapping key's message, unless one
// was sent less than updateEvery ago: then due sends it later.
func (d *dedup) update(fs *flapState, now time.Time) (Message, bool) {
	if now.Sub(fs.updated) < d.flap.updateEvery {
		fs.pending = true
		return Message{}, false
	}
	fs.updated, fs.pending = now, false
	m := d.flapMessage(fs, KindFlapping, now)
	m.Update = true
	return m, true
}

// flapMessage is the flapping message of fs, of kind k, at now.
func (d *dedup) flapMessage(fs *flapState, k reconcile.EventKind, now time.Time) Message {
	f := &Flap{ID: fs.id, Count: fs.count, Window: d.flap.window, First: fs.first, Last: fs.changed}
	e := fs.event
	e.Message = flapText(e, f, k)
	e.Kind, e.Time = k, now
	return Message{Event: e, Flap: f, Since: fs.first}
}

// flapID names a flapping: its key and when it began, hashed (a key may
// hold a reason's text).
func flapID(key string, first time.Time) string {
	sum := sha256.Sum256([]byte(key + "\x00" + first.UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(sum[:8])
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
// their key's last alert, the pending updates of flapping keys, and the
// end of the flappings whose key stayed healthy for a whole window. It
// also forgets keys that can no longer suppress or count anything.
func (d *dedup) due(now time.Time) []Message {
	var out []Message
	for _, scope := range slices.Sorted(maps.Keys(d.open)) {
		ep := d.open[scope]
		st := d.state(ep.key)
		if d.quietSince(st, now) {
			continue
		}
		m := Message{Event: ep.event, Repeat: true, Since: ep.opened, Suppressed: st.suppressed}
		m.Time = now
		st.last, st.suppressed = now, 0
		out = append(out, m)
	}
	for _, key := range slices.Sorted(maps.Keys(d.flaps)) {
		fs := d.flaps[key]
		switch {
		case fs.flapping && !fs.bad && now.Sub(fs.changed) >= d.flap.window:
			out = append(out, d.flapMessage(fs, KindFlapResolved, now))
			fs.flapping, fs.pending = false, false
		case fs.flapping && fs.pending:
			if m, ok := d.update(fs, now); ok {
				out = append(out, m)
			}
		}
		if fs.flapping {
			continue
		}
		if fs.prune(now, d.flap.window); len(fs.incidents) == 0 {
			delete(d.flaps, key)
		}
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
