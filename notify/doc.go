// Package notify tells people what fleetd did: it takes the reconcile
// loop's events (reconcile.Event), decides which are worth a message (dedup
// with a quiet period, per-sink kind and severity filters), scrubs secrets
// out of them, and delivers them to Slack (incoming webhook or bot token,
// Block Kit) and to generic JSON webhooks signed with HMAC-SHA256.
//
// What must hold:
//
//   - Notify never blocks: events go to a bounded queue per sink, one
//     worker per sink; a full queue drops and counts, and the count rides
//     on the sink's next message and on the OnDropped hook (a metric).
//   - No spam: an incident (drift, unreachable source or engine, failing
//     fleet) is reported when it appears, and its resolution once; not
//     again while it persists, reminded only after the quiet period. A key
//     with 3 incidents in the flap window flaps: one flapping message,
//     in-place updates for sinks that can, one flap-resolved once healthy
//     for a window; a burst within one window costs 1 to 6 new messages.
//     Repeats without a resolution (refused prune, invalid revision) are
//     sent once per quiet period. See docs/notifications.md.
//   - Never leaks: every string of a message passes the Scrubber, that is
//     fleetd's one redaction (package redact: configured secret values,
//     credentials in URLs, KEY=value pairs and flags whose key looks
//     secret, bearer tokens) before any sink sees it, and so do the errors
//     this package logs or returns.
//
// notify is an adapter: it may import reconcile, drift, fleets and redact, never
// engine, source or server. It reads no files; cmd/fleetd reads the secret
// files and passes their values in.
package notify
