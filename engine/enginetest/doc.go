// Package enginetest provides Fake, a stateful in-memory reconcile.Engine
// for fast tests of planning and execution.
//
// Fake keeps containers, networks, volumes and images and enforces the rules
// the Docker adapter (package engine) and Docker itself enforce: names are
// unique, an object without io.fleetd.managed=true is never changed or
// removed (ErrNotManaged), a name held by an unmanaged object is a conflict
// (ErrConflict), a network with containers attached cannot be removed, a
// container cannot be created from an image that is not present locally,
// nor started while a host port it publishes is taken. It is stricter in
// one place: a running container cannot be removed (`docker rm` without
// force), where engine.Docker stops it first, so that a plan that removes
// without stopping is caught. Observe returns what engine.Docker would:
// every container, network and volume sorted by name, every local image
// reference, and Inspected only for the managed containers whose state a
// list call does not settle.
//
// Failures are classified as engine.Docker classifies them (package
// fault), around the sentinel errors above so that errors.Is keeps
// working: a conflict is Permanent Conflict, a refusal Permanent
// NotManaged, a missing external network or volume Permanent NotFound, each
// naming the object; a missing image (create, pull) Permanent
// ImageNotFound naming the reference; a taken port Permanent PortAllocated
// naming the host address; a wait that sees the container exit or turn
// unhealthy Retryable Unhealthy naming it, one that runs out of time
// Retryable Timeout; any call while SetDown(true) Retryable
// EngineUnreachable. Injected failures are returned as they are given. The
// suite in package engine/conformance holds the fake and engine.Docker to
// the same behaviour.
//
// Tests change state out of band with the helpers in oob.go (Stop, Kill,
// Pause, SetHealth, Rename, Disconnect, SetResources, AddUnmanaged,
// HoldPort, …), inject failures with FailOn, FailOnce and SetDown (a
// failing lifecycle hook: FailOn("ExecHook", container, err)), and read
// the operations applied with Calls and the hooks run with HookRuns. It
// must not import the Docker SDK.
package enginetest
