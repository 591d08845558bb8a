// Package redact is fleetd's one redaction: every text that leaves the
// process (plans, drift, /v1/status, the review's text, Markdown and JSON,
// notifications, log lines, the problems of a fleet) passes it.
//
// What must hold:
//
//   - A value under a secret-looking name (LooksSecret: PASSWORD, SECRET,
//     TOKEN, KEY, CREDENTIAL, PRIVATE, AUTH) is never shown: in KEY=value,
//     key: value, "key":"value", URL query parameters, --flag=value and
//     --flag value words, and under a map key (Value).
//   - A URL's password is never shown: scheme://user:***@host.
//   - A value the caller knows to be secret (the contents of a fleet's
//     secrets, the values under its secret-looking keys, the configured
//     credentials of fleetd itself) is never shown, wherever it appears.
//
// redact imports nothing of fleetd, so that every package, fleets
// included, can use it.
package redact
