// Package reconcile decides and applies: Plan is a pure function of the
// desired fleets, an observed snapshot, policy and the time, returning typed
// actions with their causes; Execute applies a plan through the Engine
// interface with bounded parallelism and does no deciding.
package reconcile
