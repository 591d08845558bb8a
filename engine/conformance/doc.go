// Package conformance is the one test suite every reconcile.Engine must
// pass: the same test functions run against the real Docker adapter
// (engine.Docker, from engine/conformance_test.go) and the in-memory fake
// (enginetest.Fake, from engine/enginetest/conformance_test.go), so that the
// fake cannot drift from Docker's behaviour. Each case asserts what the
// engine does and how it classifies the failure (package fault: class,
// reason and the object at fault), since the agent decides by those.
//
// An engine under test is plugged in with a Harness: the engine, an image,
// unique names, and the out-of-band hands a person with the docker CLI has
// (squatting names, holding a port, stopping and removing containers).
//
// It is test code in non-test files: only tests import it, never a program
// (it imports package testing).
package conformance
