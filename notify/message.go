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

// The kinds of the notifier's own flapping messages (docs/notifications.md,
// "Flapping"): an alert key had FlapThreshold incidents within FlapWindow,
// and, later, it stayed healthy for a whole window.
const (
	KindFlapping     reconcile.EventKind = "flapping"
	KindFlapResolved reconcile.EventKind = "flap-resolved"
)

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
		reconcile.EventFleetFailing, reconcile.EventEngineUnreachable, KindFlapping:
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
	// Flap describes the flapping of a KindFlapping or KindFlapResolved
	// message; nil otherwise.
	Flap *Flap
	// Update marks an in-place update of the flapping message Flap.ID
	// names: only sinks that can update (CanUpdate) receive it.
	Update bool
	// StatusURL links fleetd's status page on flapping messages, when
	// configured.
	StatusURL string
}

// Flap is what is known about one flapping alert key.
type Flap struct {
	// ID names the flapping (its key and start), so that its updates and
	// its resolution find its message.
	ID string
	// Count is the number of incidents since the flapping began (the
	// ones that made it flap included).
	Count  int
	Window time.Duration
	// First is the first incident counted, Last the latest incident or
	// resolution.
	First, Last time.Time
}

// updater is a sink that can update a message it sent in place (Slack
// with a bot token). Sinks that do not implement it, or say false, never
// receive Update messages.
type updater interface {
	CanUpdate() bool
}

// canUpdate reports whether s takes in-place updates.
func canUpdate(s Sink) bool {
	u, ok := s.(updater)
	return ok && u.CanUpdate()
}

// Sink delivers messages somewhere. Send retries on its own within ctx and
// returns the last error; it is called from one goroutine at a time per
// dispatcher worker, but Test may call it concurrently with the worker.
type Sink interface {
	Name() string
	Send(ctx context.Context, m Message) error
}

// Filter selects the messages a sink gets: an allow list of kinds (empty
// means all), a minimum severity and an allow list of fleets (empty means
// all; events of no fleet, such as an unreachable repository, pass). Test
// messages pass every filter.
type Filter struct {
	Kinds       []reconcile.EventKind
	MinSeverity Severity
	Fleets      []string
}

// Allows reports whether m passes the filter.
func (f Filter) Allows(m Message) bool {
	if m.Kind == KindTest {
		return true
	}
	if len(f.Kinds) > 0 && !slices.Contains(f.Kinds, m.Kind) {
		return false
	}
	if len(f.Fleets) > 0 && m.Fleet != "" && !slices.Contains(f.Fleets, m.Fleet) {
		return false
	}
	return m.Severity >= f.MinSeverity
}

// Route is a sink with its filter.
type Route struct {
	Sink   Sink
	Filter Filter
}
