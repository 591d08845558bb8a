// Package enginetest provides Fake, a stateful in-memory reconcile.Engine
// for fast tests of planning and execution.
//
// Fake keeps containers, networks, volumes and images and enforces the rules
// the Docker adapter (package engine) and Docker itself enforce: names are
// unique, a running container cannot be removed, an object without
// io.fleetd.managed=true is never changed or removed (ErrNotManaged), a name
// held by an unmanaged object is a conflict (ErrConflict), a network with
// containers attached cannot be removed, a container cannot be created from
// an image that is not present locally. Observe returns what engine.Docker
// would: every container, network and volume sorted by name, every local
// image reference, and Inspected only for the managed containers whose
// state a list call does not settle.
//
// Tests change state out of band with the helpers in oob.go (Stop, Kill,
// Pause, SetHealth, Rename, Disconnect, SetResources, AddUnmanaged, …),
// inject failures with FailOn and FailOnce, and read the operations applied
// with Calls. It must not import the Docker SDK.
package enginetest
