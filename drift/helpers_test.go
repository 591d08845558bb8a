package drift_test

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/fleets/fleetstest"
)

// service builds a targeting service with its hash computed after mods.
func service(name string, replicas int, mods ...func(*fleets.Service)) fleets.Service {
	s := fleets.Service{
		Name:     name,
		Replicas: replicas,
		Targets:  true,
		Spec: fleets.Spec{
			Image:       "app:v1",
			Environment: map[string]string{"LOG_LEVEL": "info", "DB_PASSWORD": "hunter2"},
			Networks:    []fleets.NetworkAttachment{{Network: "web_default", Aliases: []string{name}}},
			Restart:     "unless-stopped",
			Resources:   fleets.Resources{Memory: 256 << 20},
		},
		PublicEnv: []string{"LOG_LEVEL"},
	}
	for _, m := range mods {
		m(&s)
	}
	return rehash(s)
}

var rehash = fleetstest.Rehash

func fleet(name string, svcs ...fleets.Service) fleets.Fleet {
	return fleets.Fleet{
		Name:     name,
		Targets:  true,
		Services: svcs,
		Networks: []fleets.Network{{Key: "default", Name: name + "_default"}},
	}
}

func imageID(ref string) string { return "sha256:0123456789abcdef-" + ref }

// replica is the container fleetd would have created for slot of s, running
// and fully inspected.
func replica(fleetName string, s fleets.Service, slot int) drift.Container {
	spec, err := fleets.EncodeSpec(s.Spec)
	if err != nil {
		panic(err)
	}
	name := drift.ContainerName(fleetName, s, slot)
	var nets []string
	for _, a := range s.Spec.Networks {
		nets = append(nets, a.Network)
	}
	r := s.Spec.Resources
	return drift.Container{
		ID:      "id-" + name,
		Name:    name,
		Image:   s.Spec.Image,
		ImageID: imageID(s.Spec.Image),
		State:   "running",
		Status:  "Up 2 hours",
		Labels: map[string]string{
			fleets.LabelManaged:     "true",
			fleets.LabelFleet:       fleetName,
			fleets.LabelService:     s.Name,
			fleets.LabelSlot:        strconv.Itoa(slot),
			fleets.LabelSpecHash:    s.Hash,
			fleets.LabelHashVersion: fleets.HashVersion,
			fleets.LabelSpec:        spec,
			fleets.LabelImageID:     imageID(s.Spec.Image),
		},
		Networks: nets,
		Created:  time.Date(2025, 1, 1, 0, 0, slot, 0, time.UTC),
		Inspected: &drift.Inspected{
			Memory: r.Memory, MemoryReservation: r.MemoryReservation, NanoCPUs: r.NanoCPUs,
			CPUShares: r.CPUShares, PidsLimit: r.PidsLimit, RestartPolicy: s.Spec.Restart,
		},
	}
}

// snapshot is what the engine observes after fleetd converged desired.
func snapshot(desired []fleets.Fleet) drift.Observed {
	obs := drift.Observed{Images: map[string]string{}}
	for _, f := range desired {
		if !f.Targets {
			continue
		}
		for _, n := range f.Networks {
			obs.Networks = append(obs.Networks, drift.Network{ID: "net-" + n.Name, Name: n.Name,
				Labels: map[string]string{fleets.LabelManaged: "true", fleets.LabelFleet: f.Name}})
		}
		for _, s := range f.Services {
			if !s.Targets {
				continue
			}
			obs.Images[s.Spec.Image] = imageID(s.Spec.Image)
			for slot := 1; slot <= s.Replicas; slot++ {
				obs.Containers = append(obs.Containers, replica(f.Name, s, slot))
			}
		}
	}
	return obs
}

// lines renders items one per line for inline expectations:
// fleet/service#slot container kind [field: have→want ...] detail
func lines(items []drift.Item) string {
	var b strings.Builder
	for _, it := range items {
		fmt.Fprintf(&b, "%s/%s#%d %s %s", it.Fleet, it.Service, it.Slot, it.Container, it.Kind)
		for _, f := range it.Fields {
			fmt.Fprintf(&b, " [%s: %s→%s]", f.Field, f.Have, f.Want)
		}
		if it.Detail != "" {
			fmt.Fprintf(&b, " (%s)", it.Detail)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// find returns a pointer to the named container in obs.
func find(obs *drift.Observed, name string) *drift.Container {
	for i := range obs.Containers {
		if obs.Containers[i].Name == name {
			return &obs.Containers[i]
		}
	}
	panic("no container " + name)
}

func remove(obs *drift.Observed, name string) {
	for i := range obs.Containers {
		if obs.Containers[i].Name == name {
			obs.Containers = append(obs.Containers[:i], obs.Containers[i+1:]...)
			return
		}
	}
	panic("no container " + name)
}

func unmanaged(name string) drift.Container {
	return drift.Container{ID: "u-" + name, Name: name, Image: "nginx", State: "running",
		Labels: map[string]string{"maintainer": "someone"}}
}
