// Package swarm runs swarm fleets (x-fleetd engine: swarm) on Docker Swarm.
//
// Translate maps a fleet to Swarm objects as a pure function: services
// (replicated or global, placement, resources, restart, update and
// rollback configs, healthcheck, endpoint mode, ingress or host ports),
// attachable overlay networks, node-local volumes (as mounts with volume
// options: Swarm creates a volume on each node a task lands on), and
// secrets and configs named by a digest of their contents, all labelled
// with docker stack's namespace label and fleetd's ownership labels.
package swarm
