// Package server is fleetd's HTTP API: health and readiness probes,
// Prometheus metrics, the status document, the manual sync endpoint and the
// webhook receivers for GitHub, GitLab, Gitea/Forgejo and a generic HMAC
// sender.
//
// It is a thin adapter: it knows nothing of the engine, the source or the
// reconcile loop. The caller hands it funcs (Ready, Status, Sync) and a
// Metrics value, and wires it in cmd/fleetd.
//
// Exposure is decided by two pure functions: accessOf (who may call an
// endpoint: open probes, reads behind an optional read token, sync behind
// the API token, webhooks behind their signature) and placement (which
// listener serves it: with Config.WebhookAddr, /hooks/* and /healthz on
// the webhook listener, everything else on Addr only).
//
// A webhook delivery that triggered a sync is remembered by its forge's
// delivery ID (replayCache: a TTL and a size bound, the time passed in);
// the same ID again is answered 200 "duplicate delivery, ignored".
//
// Every handler returns an error; errorStatus maps errors to a status code
// and a JSON body {"error": "..."} in one place, and serveError logs each
// failed request once.
//
// Sync is never called on a request goroutine: triggers go through a
// coalescing trigger that runs at most one Sync at a time and keeps at most
// one pending reason, so a slow Sync never holds a webhook response and a
// burst of pushes costs at most two calls. The caller's Sync should still be
// cheap (reconcile.Agent.Trigger is: it only sets flags).
//
// The package also holds the client side used by `fleetd status` and
// `fleetd sync`: FetchStatus and TriggerSync.
package server
