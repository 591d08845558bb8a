package enginetest

import (
	"maps"
	"net"
	"slices"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// The helpers below change state out of band, as a person with the docker
// CLI or the daemon itself would: they ignore fleetd's labels, are not
// logged in Calls and ignore injected failures. An unknown container name
// fails the test.

// Container returns the named container as Observe with InspectAll would.
func (f *Fake) Container(name string) (drift.Container, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	x := f.byName(name)
	if x == nil {
		return drift.Container{}, false
	}
	c := x.view()
	in := x.in
	c.Inspected = &in
	return c, true
}

// Names returns the names of all containers, sorted.
func (f *Fake) Names() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, x := range f.containers {
		out = append(out, x.c.Name)
	}
	slices.Sort(out)
	return out
}

// Stop stops the container with exit code 0 (`docker stop`).
func (f *Fake) Stop(name string) { f.Kill(name, 0) }

// Kill stops the container with exitCode (a crash; 137 for SIGKILL).
func (f *Fake) Kill(name string, exitCode int) {
	f.mutate(name, func(x *ctr) { f.stop(x, exitCode) })
}

// OOMKill stops the container as the kernel's OOM killer would.
func (f *Fake) OOMKill(name string) {
	f.mutate(name, func(x *ctr) {
		f.stop(x, 137)
		x.in.OOMKilled = true
	})
}

// SetState sets the container's state (running, restarting, dead, …)
// directly; restarting counts one restart.
func (f *Fake) SetState(name, state string) {
	f.mutate(name, func(x *ctr) {
		x.c.State = state
		if state == "restarting" {
			x.in.RestartCount++
		}
	})
}

// Pause pauses the container (`docker pause`).
func (f *Fake) Pause(name string) { f.SetState(name, "paused") }

// SetHealth sets the container's health status ("", starting, healthy,
// unhealthy); log becomes the last health check's output.
func (f *Fake) SetHealth(name, health, log string) {
	f.mutate(name, func(x *ctr) { x.c.Health, x.in.HealthLog = health, log })
}

// Rename renames the container (`docker rename`).
func (f *Fake) Rename(name, newName string) {
	f.mutate(name, func(x *ctr) {
		if f.byName(newName) != nil {
			f.t.Fatalf("enginetest: rename %s: name %s in use", name, newName)
		}
		x.c.Name = newName
	})
}

// Disconnect detaches the container from a network (`docker network
// disconnect`).
func (f *Fake) Disconnect(name, network string) {
	f.mutate(name, func(x *ctr) {
		x.c.Networks = slices.DeleteFunc(x.c.Networks, func(n string) bool { return n == network })
	})
}

// SetResources changes the container's limits (`docker update`).
func (f *Fake) SetResources(name string, r fleets.Resources) {
	f.mutate(name, func(x *ctr) {
		x.in.Memory, x.in.MemoryReservation, x.in.NanoCPUs = r.Memory, r.MemoryReservation, r.NanoCPUs
		x.in.CPUShares, x.in.PidsLimit = r.CPUShares, r.PidsLimit
	})
}

// SetRestart changes the container's restart policy (`docker update
// --restart`).
func (f *Fake) SetRestart(name, policy string) {
	f.mutate(name, func(x *ctr) { x.in.RestartPolicy = policy })
}

// SetLabel sets (or with value "" deletes) one label, to simulate
// tampering; Docker cannot do this, a recreated container can.
func (f *Fake) SetLabel(name, key, value string) {
	f.mutate(name, func(x *ctr) {
		if value == "" {
			delete(x.c.Labels, key)
		} else {
			x.c.Labels[key] = value
		}
	})
}

// Remove removes the container whatever its state (`docker rm -f`).
func (f *Fake) Remove(name string) {
	f.mutate(name, func(x *ctr) { delete(f.containers, x.c.ID) })
}

// AddUnmanaged adds a running container without fleetd's labels, with the
// given extra labels; it returns its ID.
func (f *Fake) AddUnmanaged(name string, labels map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byName(name) != nil {
		f.t.Fatalf("enginetest: add %s: name in use", name)
	}
	x := &ctr{c: drift.Container{
		ID: f.newID("container", name), Name: name, Image: "busybox", State: "running",
		Labels: maps.Clone(labels), Created: f.tick(),
	}}
	if x.c.Labels == nil {
		x.c.Labels = map[string]string{}
	}
	f.containers[x.c.ID] = x
	return x.c.ID
}

// AddUnmanagedNetwork adds a network without fleetd's labels.
func (f *Fake) AddUnmanagedNetwork(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.networks[name] = &drift.Network{ID: f.newID("network", name), Name: name, Labels: map[string]string{}}
}

// HoldPort holds the TCP host address addr ("0.0.0.0:8080"), as a process
// listening there or a container publishing it would: a managed container
// publishing an overlapping address cannot start until ReleasePort.
func (f *Fake) HoldPort(addr string) {
	f.t.Helper()
	if _, _, err := net.SplitHostPort(addr); err != nil {
		f.t.Fatalf("enginetest: hold port %s: %v", addr, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heldPorts[addr] = true
}

// ReleasePort releases what HoldPort held.
func (f *Fake) ReleasePort(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.heldPorts, addr)
}

func (f *Fake) mutate(name string, fn func(*ctr)) {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	x := f.byName(name)
	if x == nil {
		f.t.Fatalf("enginetest: no container %s", name)
		return
	}
	fn(x)
}
