// Package fleets owns fleetd's desired-state model: it discovers fleets in a
// directory of Compose files, loads them with compose-go, validates them and
// converts them into fleetd's canonical types (Fleet, Service, Spec), and
// computes the versioned spec hash.
//
// It must not import the Docker SDK, touch the network, or expose compose-go
// types: everything downstream (drift, reconcile, engine) sees only the types
// declared here.
package fleets
