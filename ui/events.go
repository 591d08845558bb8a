package ui

import (
	"sync"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/reconcile"
	"github.com/fleetd/fleetd/redact"
)

// EventLog keeps the most recent events for the events page and the
// rollout timeline: an agent.Notifier that records each event, redacted,
// and hands it on to the next notifier unchanged. It never blocks.
type EventLog struct {
	next agent.Notifier
	red  func() *redact.Redactor

	mu      sync.Mutex
	ring    []reconcile.Event
	start   int
	changes agent.Changes
}

// NewEventLog keeps the last size events; next may be nil, red (the
// daemon's redactor of known secret values, nil: the rules only) is asked
// at each event.
func NewEventLog(size int, next agent.Notifier, red func() *redact.Redactor) *EventLog {
	if red == nil {
		red = func() *redact.Redactor { return nil }
	}
	return &EventLog{next: next, red: red, ring: make([]reconcile.Event, 0, max(size, 1))}
}

// Notify records e and hands it on.
func (l *EventLog) Notify(e reconcile.Event) {
	kept := agent.RedactEvent(e, l.red())
	l.mu.Lock()
	if len(l.ring) < cap(l.ring) {
		l.ring = append(l.ring, kept)
	} else {
		l.ring[l.start] = kept
		l.start = (l.start + 1) % len(l.ring)
	}
	l.mu.Unlock()
	l.changes.Signal()
	if l.next != nil {
		l.next.Notify(e)
	}
}

// Events returns the events kept, oldest first.
func (l *EventLog) Events() []reconcile.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]reconcile.Event, 0, len(l.ring))
	out = append(out, l.ring[l.start:]...)
	return append(out, l.ring[:l.start]...)
}

// Subscribe signals after each event recorded (see agent.Changes).
func (l *EventLog) Subscribe() (<-chan struct{}, func()) { return l.changes.Subscribe() }
