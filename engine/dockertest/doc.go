// Package dockertest is the harness for tests that run against a real Docker
// engine: a pinged client that skips loudly (or fails, in CI) when there is no
// daemon, collision-free names, a locally built test image, an in-process
// registry for pull tests with no internet, and a sweep that removes every
// object a test process created.
//
// Everything created through this package, or named with [Name], carries the
// process's [RunID], so parallel test processes on one daemon never collide
// and [Cleanup] never touches anything it does not own. A typical test:
//
//	cli := dockertest.Client(t)
//	dockertest.Cleanup(t, cli)
//	ref, _ := dockertest.TestImage(t, cli, "v1")
//	name := dockertest.Name(t, "web") // a container, network, volume or project name
//
// It must not be imported by non-test code: it pulls in a registry server.
package dockertest
