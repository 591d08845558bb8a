// Package drift compares the desired fleets for one host with one observed
// snapshot of the Docker engine. Diff is a pure function: it makes no API
// calls, reads no clock and mutates nothing. The package owns the Observed
// snapshot type that the engine adapter fills in.
package drift
