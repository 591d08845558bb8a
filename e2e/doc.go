// Package e2e holds the whole-binary end-to-end tests of fleetd: TestMain
// builds cmd/fleetd once, and each test writes a fleet repository to a
// temporary directory, runs the binary against the real Docker engine
// (validate, diff, plan --live, apply), changes things out of band the way an
// operator would, and checks the engine's state through the SDK.
//
// Every fleet is named with dockertest.Name, so parallel runs on one daemon
// never collide, and dockertest.Cleanup removes everything a run created.
// Each top-level test runs fleetd as an instance of its own
// (FLEETD_INSTANCE), so it neither reports nor prunes the managed containers
// of other tests or other processes on the shared engine. The package has no
// non-test code.
package e2e
