package agent

import (
	"fmt"
	"time"

	"github.com/fleetd/fleetd/reconcile"
)

// RefusedError is what a Source's Sync returns for a head it will not hand
// over (an untrusted commit, a rewind): the source is reachable, the head
// is not taken, and no retry can change that until the head moves.
type RefusedError struct {
	Commit string
	Reason string // CamelCase, the fleets' Stalled reason: UntrustedCommit, Rewind
	Why    string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("revision %s refused: %s", reconcile.ShortHash(e.Commit), e.Why)
}

// Refusal is the head the source refused, while it is the head.
type Refusal struct {
	Commit string
	Reason string
	Why    string
	Since  time.Time
}

// message is the refusal for people, naming the commit and why.
func (r Refusal) message() string {
	return fmt.Sprintf("revision %s refused: %s", reconcile.ShortHash(r.Commit), r.Why)
}

// FetchRefused is a Fetch whose head the source refused.
type FetchRefused struct{ Commit, Reason, Why string }

// apply keeps every fleet on what it has (the last good revision, healed
// from there) and stalls them all with the refusal's reason until the
// head moves; people hear of each refused commit once, as of an invalid
// revision.
func (in FetchRefused) apply(m *machine) {
	prev := m.s.Refused
	Fetched{}.apply(m) // the source answered; nothing is loaded
	m.s.Refused = &Refusal{Commit: in.Commit, Reason: in.Reason, Why: in.Why, Since: m.now}
	if prev != nil && prev.Commit == in.Commit && prev.Reason == in.Reason {
		m.s.Refused.Since = prev.Since
	}
	if m.s.InvalidCommit != in.Commit {
		m.s.InvalidCommit = in.Commit
		m.tell(reconcile.Event{Kind: reconcile.EventInvalidRevision, Revision: &reconcile.Revision{Commit: in.Commit},
			Message: fmt.Sprintf("revision %s is refused (%s); every fleet keeps its last good revision", reconcile.ShortHash(in.Commit), in.Reason),
			Reason:  in.Why})
	}
	m.resumeMissing() // after a restart on a refused head: go on from the saved commits
}

// refusedCondition is the Stalled condition of a fleet while the head is
// refused.
func refusedCondition(f Fleet, r Refusal) Condition {
	keeps := "it has no revision yet"
	if f.Rev.Commit != "" {
		keeps = "it keeps revision " + reconcile.ShortHash(f.Rev.Commit)
	}
	return Condition{Type: Stalled, Status: condTrue, Reason: r.Reason, Message: r.message() + "; " + keeps}
}
