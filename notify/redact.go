package notify

import (
	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/redact"
)

// Mask stands in for a scrubbed value.
const Mask = redact.Mask

// Scrubber removes secret values from messages with fleetd's one
// redaction (package redact): the configured secrets (and their
// URL-escaped forms), URL passwords, Authorization credentials, and the
// values of KEY=value pairs whose key looks secret (PASSWORD, SECRET,
// TOKEN, KEY, CREDENTIAL, AUTH, …; and signatures).
type Scrubber struct {
	red *redact.Redactor
}

// NewScrubber returns a scrubber for the given secret values; empty and
// very short values are ignored.
func NewScrubber(secrets ...string) *Scrubber {
	return &Scrubber{red: redact.New(secrets...)}
}

// String scrubs one text.
func (s *Scrubber) String(v string) string { return s.red.String(v) }

// Error scrubs an error's text, keeping its chain; nil stays nil.
func (s *Scrubber) Error(err error) error { return s.red.Error(err) }

// Message scrubs every free text of a message: message, reason, the
// commit's subject and author, and the drift values. Names (host, fleet,
// service, container) and kinds are left as they are.
func (s *Scrubber) Message(m Message) Message {
	m.Message = s.String(m.Message)
	m.Reason = s.String(m.Reason)
	m.CommitURL = s.String(m.CommitURL)
	if m.Revision != nil {
		r := *m.Revision
		r.Subject, r.Author, r.Dir = s.String(r.Subject), s.String(r.Author), ""
		m.Revision = &r
	}
	m.Drift = drift.MapText(m.Drift, s.String)
	return m
}
