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
//   - No spam: an alert (drift, unreachable source, refused prune, invalid
//     revision) fires when it appears, not again while it persists, again
//     only after the quiet period; a resolution is reported once, and only
//     if its alert was. For one key, alerts are at least a quiet period
//     apart and each resolution answers a reported alert: over a span T at
//     most 2·(⌊T/quiet⌋+1) messages. See docs/notifications.md.
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
