// Package proxy is the data plane of fleetd's ingress: a reverse proxy that
// serves an ingress.Table. HTTP listeners route requests by host and path
// (ingress.Match) to a route's backends through httputil.ReverseProxy;
// TCP listeners copy bytes both ways to one route's backends. Backends are
// chosen with ingress.Pick among the usable ones (not draining, not found
// unhealthy by the active checks, not ejected after passive failures).
//
// A Server swaps in a new table at once or refuses it whole (Apply),
// keeps the listeners whose port, protocol and TLS did not change, drains
// the ones that left, persists the last table in its state directory so a
// restarted ingress serves it before the agent reconnects, and answers
// the agent on a unix control socket (Serve, ControlHandler, Client).
package proxy
