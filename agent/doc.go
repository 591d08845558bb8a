// Package agent is the daemon: it follows the fleet repository and keeps
// every fleet on this host converged, one fleet at a time and never one
// fleet held back by another.
//
// Its decisions are one pure function, Next(state, input, now, rules),
// that returns the next state and the effects to run: fetch the source,
// load an older revision, apply a fleet, watch the engine, notify, arm the
// timer, persist. Each fleet has its own pending wake-ups, backoff, stall
// and conditions (Ready, Progressing, Degraded, Stalled). Agent is the
// shell around it: it turns triggers, engine events, timer expiries and
// the results of effects into inputs, runs the effects, and decides
// nothing. The only decision-free work it does is running an apply
// (observe, plan, execute through package reconcile) and summarizing its
// outcome as an input.
//
// It imports the domain (fleets, drift, reconcile, fault), never an
// adapter: cmd/fleetd plugs in the engine, the source, the notifier, the
// metrics and the store.
package agent
