package notify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/reconcile"
)

// KindTest is the kind of the message `fleetd notify test` sends.
const KindTest reconcile.EventKind = "test"

// Severity orders events for filters: Info < Warning < Error.
type Severity int

// Severities.
const (
	Info Severity = iota
	Warning
	Error
)

func (s Severity) String() string {
	switch s {
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return "info"
}

// ParseSeverity reads "info", "warning" or "error" ("" is info).
func ParseSeverity(s string) (Severity, error) {
	switch strings.ToLower(s) {
	case "", "info":
		return Info, nil
	case "warning", "warn":
		return Warning, nil
	case "error":
		return Error, nil
	}
	return Info, fmt.Errorf("severity %q: want info, warning or error", s)
}

// SeverityOf is the severity of an event kind: errors need someone to act
// (a failed or stalled rollout, a revision that cannot be applied), warnings
// are out-of-band changes fleetd may heal itself, info is progress.
func SeverityOf(k reconcile.EventKind) Severity {
	switch k {
	case reconcile.EventRolloutFailed, reconcile.EventRolloutRolledBack, reconcile.EventRolloutPaused,
		reconcile.EventInvalidRevision, reconcile.EventFleetStalled:
		return Error
	case reconcile.EventDriftDetected, reconcile.EventSourceUnreachable, reconcile.EventPruneRefused,
		reconcile.EventFleetFailing, reconcile.EventEngineUnreachable:
		return Warning
	}
	return Info
}

// Message is what a sink delivers: one event, scrubbed, with what the
// dispatcher knows about it.
type Message struct {
	reconcile.Event
	Severity Severity
	// CommitURL links the revision's commit when the repository's web URL
	// is configured.
	CommitURL string
	// Repeat marks a reminder: the alert is still true a quiet period after
	// it was last sent. Since is when it was first reported.
	Repeat bool
	Since  time.Time
	// Suppressed counts occurrences of this alert held back since its last
	// message (flaps of a flapping container, repeated refusals).
	Suppressed int
	// Dropped counts messages this sink lost before this one (queue full,
	// or delivery failed after retries).
	Dropped int
}

// Sink delivers messages somewhere. Send retries on its own within ctx and
// returns the last error; it is called from one goroutine at a time per
// dispatcher worker, but Test may call it concurrently with the worker.
type Sink interface {
	Name() string
	Send(ctx context.Context, m Message) error
}

// Filter selects the messages a sink gets: an allow list of kinds (empty
// means all) and a minimum severity. Test messages pass every filter.
type Filter struct {
	Kinds       []reconcile.EventKind
	MinSeverity Severity
}

// Allows reports whether m passes the filter.
func (f Filter) Allows(m Message) bool {
	if m.Kind == KindTest {
		return true
	}
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, m.Kind) {
		return false
	}
	return m.Severity >= f.MinSeverity
}

// Route is a sink with its filter.
type Route struct {
	Sink   Sink
	Filter Filter
}
