// Package engine is fleetd's adapter to the Docker Engine API and the only
// package that imports the Docker SDK. Docker implements reconcile.Engine:
// Observe takes one snapshot of the host, and the operations create, start,
// stop, update and remove the objects fleetd owns.
//
// What must hold:
//
//   - fleetd never changes what it did not create. Every operation that
//     stops, removes, renames, updates, unpauses, restarts, kills or pauses a
//     container, or runs a hook in it (ExecHook), or removes a network,
//     first inspects the object and refuses with ErrNotManaged unless it
//     carries io.fleetd.managed=true. Volumes are never removed, and
//     containers are removed with RemoveVolumes=false so that even their
//     anonymous volumes survive.
//   - The engine never pulls implicitly: ContainerCreate of a missing image
//     fails instead of reaching a public registry. Pulls happen only through
//     PullImage, which reconcile calls by policy.
//   - The API version is negotiated (Docker 20.10, API 1.41, and newer).
//     Features that need a newer API degrade: below 1.44 a container is
//     created on its first network and connected to the others before it
//     starts, and a healthcheck's start_interval is dropped.
//
// # Observation cost
//
// Observe makes four list calls, concurrently: containers (all=true, no
// filter), networks, volumes and images. An in-sync host costs exactly
// these four calls and no inspect. A container is inspected only when its
// list entry does not settle its state: unhealthy (for the health log),
// exited, dead or restarting (exit code, OOM kill, restart count), when its
// ID is in ObserveOptions.Inspect, or for every managed container when
// ObserveOptions.InspectAll is set. Unmanaged containers are never inspected.
//
// The container list is unfiltered on purpose. Conflict detection needs the
// unmanaged containers that hold a name fleetd wants, and Observe does not
// know the wanted names (drift decides conflicts, from the snapshot). A label
// filter would hide exactly those containers; a second, name-filtered list
// would need the desired names. The daemon walks every container for a
// filtered list as well, so the extra cost of the unfiltered list is only the
// JSON of unmanaged entries (about 1 KiB each): on a host with thousands of
// unmanaged containers that is a few MiB per observation, paid once per
// resync, not per event. Measured on Docker 20.10 with 200 containers, a
// label-filtered list took 60-140 ms and an unfiltered one 85-125 ms: the
// daemon's per-container work dominates, and BenchmarkObserve (4 calls, no
// inspect) runs at about 150 ms per observation. Unmanaged entries are kept as listed, never
// inspected, and drift ignores them except for name conflicts. If that ever
// matters, the fix is to pass the wanted names in ObserveOptions and list
// with a label filter plus one name filter.
//
// Observed.Images maps every local tag and digest reference, in both its
// familiar ("nginx:latest", "nginx") and fully qualified
// ("docker.io/library/nginx:latest") spelling, to the image ID, so a spec's
// reference can be looked up however it is written.
//
// # Secrets and configs
//
// Secrets and configs are delivered as files copied into the container
// (CopyToContainer of a tar, mode FileRef.Mode or 0444) after create and
// before start. Their contents never enter a label, an environment variable
// or a bind mount of the repository, and the file lives in the container's
// writable layer, so it disappears with the container. A container with a
// read-only root filesystem cannot be copied into (the daemon refuses); its
// files are bind-mounted read-only from their sources instead, and then keep
// the source file's mode and owner rather than FileRef.Mode.
//
// A SOPS-encrypted secret or config is the exception, read-only root or
// not: its plaintext must reach no disk, and the writable layer is on
// disk (docker export and commit read it). It is written to a directory
// of its own under secretsRoot, which must be on a tmpfs (statfs checks),
// and each file is bind-mounted read-only (a mount, not a bind: a missing
// source fails the create instead of becoming an empty directory). The
// directory is removed with the container; PruneSecretDirs removes those
// no container mounts, before each such create.
//
// # Call counting
//
// The client's HTTP transport is wrapped to count requests per normalised
// operation ("GET /containers/{id}/json"); Calls and ResetCalls expose the
// counts so tests and benchmarks can assert on the API cost of an operation.
package engine
