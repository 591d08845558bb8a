package drift_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// genDesired builds a random set of fleets: some not targeting the host,
// some services not targeting it, replicas 0..3.
func genDesired(r *rand.Rand) []fleets.Fleet {
	var out []fleets.Fleet
	for i := range r.IntN(4) {
		var svcs []fleets.Service
		for j := range r.IntN(4) {
			svcs = append(svcs, service(fmt.Sprintf("s%d", j), r.IntN(4), func(s *fleets.Service) {
				s.Targets = r.IntN(5) > 0
				s.Spec.Image = fmt.Sprintf("img:%d", r.IntN(3))
				if r.IntN(4) == 0 {
					s.Spec.Environment["K"] = strconv.Itoa(r.IntN(3))
				}
				s.Spec.Networks[0].Network = fmt.Sprintf("f%d_default", i)
			}))
		}
		f := fleet(fmt.Sprintf("f%d", i), svcs...)
		f.Targets = r.IntN(5) > 0
		out = append(out, f)
	}
	return out
}

// mutate changes obs at random the ways an engine's state can drift,
// including unmanaged containers squatting on names fleetd wants.
func mutate(r *rand.Rand, obs *drift.Observed, names []string) {
	for range r.IntN(6) {
		if len(obs.Containers) == 0 || r.IntN(4) == 0 {
			name := "stranger"
			if len(names) > 0 && r.IntN(2) == 0 {
				name = names[r.IntN(len(names))]
			}
			u := unmanaged(name + strconv.Itoa(r.IntN(2)))
			u.Labels[fleets.LabelFleet] = "f0"
			u.State = []string{"running", "exited", "paused"}[r.IntN(3)]
			obs.Containers = append(obs.Containers, u)
			continue
		}
		c := &obs.Containers[r.IntN(len(obs.Containers))]
		switch r.IntN(9) {
		case 0:
			c.State = []string{"exited", "paused", "restarting", "dead", "created", "removing"}[r.IntN(6)]
		case 1:
			c.Health = "unhealthy"
		case 2:
			c.Name += "-x"
		case 3:
			c.Networks = nil
		case 4:
			c.Labels[fleets.LabelSlot] = []string{"0", "-1", "x", "", "7"}[r.IntN(5)]
		case 5:
			delete(c.Labels, []string{fleets.LabelFleet, fleets.LabelService, fleets.LabelSpec, fleets.LabelSpecHash, fleets.LabelHashVersion}[r.IntN(5)])
		case 6:
			c.Labels[fleets.LabelSpec] = "{"
			c.Labels[fleets.LabelSpecHash] = "x"
		case 7:
			if c.Inspected != nil {
				c.Inspected.Memory++
			}
		case 8:
			obs.Images[c.Image] = "sha256:other"
		}
	}
}

func TestDiffProperties(t *testing.T) {
	for seed := range uint64(2000) {
		r := rand.New(rand.NewPCG(seed, 1))
		desired := genDesired(r)
		obs := snapshot(desired)
		if items := drift.Diff(desired, obs); len(items) != 0 {
			t.Fatalf("seed %d: snapshot of desired is not in sync:\n%s", seed, lines(items))
		}
		var names []string
		for _, c := range obs.Containers {
			names = append(names, c.Name)
		}
		// Containers fleetd wants but lacks are names unmanaged ones may hold.
		for _, f := range desired {
			for _, s := range f.Services {
				names = append(names, drift.ContainerName(f.Name, s, s.Replicas+1))
			}
		}
		if len(obs.Containers) > 0 && r.IntN(2) == 0 {
			obs.Containers = obs.Containers[1:]
		}
		mutate(r, &obs, names)
		items := drift.Diff(desired, obs)
		checkInvariants(t, seed, obs, items)
		slices.Reverse(obs.Containers)
		if again := drift.Diff(desired, obs); lines(again) != lines(items) {
			t.Fatalf("seed %d: order of observed containers changed the result:\n%s\nvs\n%s", seed, lines(again), lines(items))
		}
	}
}

func checkInvariants(t *testing.T, seed uint64, obs drift.Observed, items []drift.Item) {
	t.Helper()
	byID := map[string]drift.Container{}
	for _, c := range obs.Containers {
		byID[c.ID] = c
	}
	for _, it := range items {
		c, ok := byID[it.ContainerID]
		if ok && !c.Managed() && it.Kind != drift.Conflict {
			t.Fatalf("seed %d: unmanaged container %s yielded %s", seed, c.Name, it.Kind)
		}
		if it.Kind == drift.Conflict && ok && c.Managed() {
			t.Fatalf("seed %d: managed container %s reported as conflict", seed, c.Name)
		}
		for _, f := range it.Fields {
			if f.Field == "environment.DB_PASSWORD" && (f.Want != drift.Redacted || f.Have != drift.Redacted) {
				t.Fatalf("seed %d: secret shown: %+v", seed, f)
			}
		}
	}
	if !slices.IsSortedFunc(items, func(a, b drift.Item) int {
		if a.Fleet != b.Fleet {
			return cmpStr(a.Fleet, b.Fleet)
		}
		return cmpStr(a.Service, b.Service)
	}) {
		t.Fatalf("seed %d: items not sorted:\n%s", seed, lines(items))
	}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
