// Package ui is fleetd's web dashboard: html/template pages with their
// assets embedded, live through Server-Sent Events, served by the agent
// at /ui/ on its status listener and by `fleetd dashboard` for several
// agents.
//
// It owns the pages (overview, fleet detail, rollouts, events, plan
// preview), the pure view models they render (Overview, Timeline,
// FilterEvents, …), the login with a session cookie signed with the API
// tokens, the CSRF check of its two actions (sync now, resume a paused
// rollout, both a manual sync), the security headers, the event log (a
// ring of recent events, an agent.Notifier in front of the dispatcher),
// and the Backend that feeds the pages: Local for one agent in process,
// Remote for agents read over HTTP.
//
// It must not import the engine or another adapter: the engine is reached
// through the Observer it declares, the agent through Agent.
package ui
