package drift

import "time"

// Observed is one snapshot of what the engine runs that matters to fleetd:
// every container (managed or not) whose name or labels concern fleetd, every
// network and volume likewise, and the local image tags that desired images
// resolve to.
type Observed struct {
	Containers []Container `json:"containers"`
	Networks   []Network   `json:"networks"`
	Volumes    []Volume    `json:"volumes"`
	// Images maps an image reference (as written in the spec) to the ID of
	// the local image it resolves to now. A reference absent here is not
	// present locally.
	Images map[string]string `json:"images"`
}

// Container is one container as listed by the engine. Inspected is nil unless
// the engine inspected it (only when the list entry did not settle its
// state, or when a full observation was asked for).
type Container struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"` // without the leading slash
	Image   string            `json:"image"`
	ImageID string            `json:"image_id"`
	State   string            `json:"state"`  // created | running | paused | restarting | exited | removing | dead
	Health  string            `json:"health"` // "" | starting | healthy | unhealthy
	Status  string            `json:"status"` // Docker's human status, e.g. "Exited (1) 5 seconds ago"
	Labels  map[string]string `json:"labels"`
	// Networks are the names of the networks the container is attached to.
	Networks  []string   `json:"networks"`
	Created   time.Time  `json:"created"`
	Inspected *Inspected `json:"inspected,omitempty"`
}

// Inspected holds the fields only an inspect reveals: the ones `docker
// update` changes, and state detail.
type Inspected struct {
	Memory            int64     `json:"memory"`
	MemoryReservation int64     `json:"memory_reservation"`
	NanoCPUs          int64     `json:"nano_cpus"`
	CPUShares         int64     `json:"cpu_shares"`
	PidsLimit         int64     `json:"pids_limit"`
	RestartPolicy     string    `json:"restart_policy"` // as Spec.Restart spells it: no | always | unless-stopped | on-failure[:N]
	ExitCode          int       `json:"exit_code"`
	OOMKilled         bool      `json:"oom_killed"`
	RestartCount      int       `json:"restart_count"`
	StartedAt         time.Time `json:"started_at"`
	FinishedAt        time.Time `json:"finished_at"`
	HealthLog         string    `json:"health_log,omitempty"` // output of the last health check
}

// Network is one Docker network.
type Network struct {
	ID     string            `json:"id"`
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// Volume is one Docker volume.
type Volume struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
}

// ObserveOptions says how much an observation inspects beyond the list
// calls.
type ObserveOptions struct {
	// InspectAll inspects every managed container (a full resync; catches
	// `docker update` changes that no list call shows).
	InspectAll bool
	// Inspect names container IDs to inspect in addition to those whose list
	// entry does not settle their state (for example containers that had an
	// "update" event).
	Inspect []string
	// Fleet, when set, lists only the containers labelled as this fleet's
	// (a targeted observation: a heal of one fleet need not wait on a
	// list of every container on the host), each of them inspected (an
	// inspect's state is newer than the list's). Networks, volumes and
	// images are listed whole all the same.
	Fleet string
}
