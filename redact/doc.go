// Package redact is fleetd's one redaction: every text that leaves the
// process (plans, drift, /v1/status, the review's text, Markdown and JSON,
// notifications, log lines, the problems of a fleet) passes it.
//
// What must hold:
//
//   - A value under a secret-looking name (LooksSecret: a segment of the
//     name, split at _ - . and camelCase, is PASS, PWD, KEY, AUTH,
//     AUTHORIZATION, CREDS, PRIVATE or APIKEY, or holds PASSWORD, PASSWD,
//     PASSPHRASE, SECRET, TOKEN or CREDENTIAL) is never shown: in
//     KEY=value (to the next blank), key: value (to the end of the line or
//     the next "key: "), "key":"value", URL query parameters,
//     --flag=value and --flag value words, and under a map key (Value).
//   - A command's password flag is never shown: redis-cli -a, sshpass -p,
//     mysql -p<pw>, curl -u user:<pw>.
//   - A URL's password is never shown: scheme://user:***@host, nor a user
//     name that is a token (scheme://***@host).
//   - An Authorization header's credential is never shown.
//   - A value the caller knows to be secret (the contents of a fleet's
//     secrets, the values under its secret-looking keys, the configured
//     credentials of fleetd itself) is never shown, wherever it appears.
//
// What must stay: ordinary output is not a pair. A secret word is judged
// as a whole segment (oauth2-proxy, keycloak, unauthorized are not
// secret); repository:tag after a / or after image/pull, and fleetd's own
// "service auth:" and "fleet tokens:" are not pairs; Bearer/Basic/token
// are credentials only after Authorization.
//
// redact imports nothing of fleetd, so that every package, fleets
// included, can use it.
package redact
