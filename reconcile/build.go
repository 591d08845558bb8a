package reconcile

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
)

// builder accumulates one plan. It is used only inside Plan.
type builder struct {
	pol      Policy
	obs      drift.Observed
	actions  []Action
	blocked  []Blocked
	networks map[string]int // network name -> ensure action
	volumes  map[string]int // volume name -> ensure action
	images   map[string]int // image ref -> pull/build action
	// ready holds, per "fleet/service", the actions after which the
	// service's new or healed containers are started, by dependency
	// condition.
	ready map[string]map[string][]int
	// freedBy maps a container name to the action that frees it (a
	// removal or a rename away); a create of that name waits for it.
	freedBy map[string]int
	// pruned are the actions that remove what left the spec; the prune
	// guard counts them.
	pruned []int
	// prunedElsewhere counts the containers of fleets outside the scope
	// that their own applies will prune (see Policy.Scope).
	prunedElsewhere int
	refused         string
	// rollouts are the rollout batches planned; nextAt the earliest time a
	// delayed batch is due.
	rollouts []RolloutStep
	nextAt   time.Time
	// healAt is the earliest time a heal held back by its backoff is due.
	healAt time.Time
}

func newBuilder(obs drift.Observed, pol Policy) *builder {
	return &builder{
		pol:      pol,
		obs:      obs,
		networks: map[string]int{},
		volumes:  map[string]int{},
		images:   map[string]int{},
		ready:    map[string]map[string][]int{},
		freedBy:  map[string]int{},
	}
}

// add appends an action and returns its ID (1-based, in plan order).
func (b *builder) add(a Action) int {
	a.ID = len(b.actions) + 1
	a.After = compactIDs(a.After)
	b.actions = append(b.actions, a)
	return a.ID
}

func (b *builder) block(fleet, service, container, reason string, isErr bool) {
	b.blocked = append(b.blocked, Blocked{Fleet: fleet, Service: service, Container: container, Reason: reason, Error: isErr})
}

// fail blocks a fleet or service that cannot match the spec until
// something changes: f says what, object names the thing whose change
// (an engine event about it) may unblock it.
func (b *builder) fail(fleet, service, container, reason string, f fault.Reason, object string) {
	b.blocked = append(b.blocked, Blocked{Fleet: fleet, Service: service, Container: container, Reason: reason, Error: true, Fault: f, Object: object})
}

// compactIDs sorts ids and drops zeros and duplicates.
func compactIDs(ids []int) []int {
	out := make([]int, 0, len(ids))
	for _, id := range ids {
		if id > 0 {
			out = append(out, id)
		}
	}
	sort.Ints(out)
	return slices.Compact(out)
}

func (b *builder) observedNetwork(name string) bool {
	for _, n := range b.obs.Networks {
		if n.Name == name {
			return true
		}
	}
	return false
}

func (b *builder) observedVolume(name string) bool {
	for _, v := range b.obs.Volumes {
		if v.Name == name {
			return true
		}
	}
	return false
}

// ensureNetworks adds ensure actions for the fleet networks svc uses that
// the host lacks, and returns the action IDs svc's containers wait for.
func (b *builder) ensureNetworks(f fleets.Fleet, svc fleets.Service) []int {
	var ids []int
	for _, att := range svc.Spec.Networks {
		if id, ok := b.networks[att.Network]; ok {
			ids = append(ids, id)
			continue
		}
		if b.observedNetwork(att.Network) {
			continue
		}
		n := fleetNetwork(f, att.Network)
		id := b.add(Action{Op: OpEnsureNetwork, Fleet: f.Name, Target: att.Network, Cause: "network missing", Network: &n})
		b.networks[att.Network] = id
		ids = append(ids, id)
	}
	return ids
}

func fleetNetwork(f fleets.Fleet, name string) fleets.Network {
	for _, n := range f.Networks {
		if n.Name == name {
			return n
		}
	}
	return fleets.Network{Name: name, Key: name}
}

// ensureVolumes is ensureNetworks for named volumes. Volumes are created,
// never removed.
func (b *builder) ensureVolumes(f fleets.Fleet, svc fleets.Service) []int {
	var ids []int
	for _, m := range svc.Spec.Mounts {
		if m.Type != "volume" || m.Source == "" {
			continue
		}
		if id, ok := b.volumes[m.Source]; ok {
			ids = append(ids, id)
			continue
		}
		v, declared := fleetVolume(f, m.Source)
		if !declared || b.observedVolume(m.Source) {
			continue
		}
		id := b.add(Action{Op: OpEnsureVolume, Fleet: f.Name, Target: m.Source, Cause: "volume missing", Volume: &v})
		b.volumes[m.Source] = id
		ids = append(ids, id)
	}
	return ids
}

func fleetVolume(f fleets.Fleet, name string) (fleets.Volume, bool) {
	for _, v := range f.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return fleets.Volume{}, false
}

// imageObtainable returns an error when svc's image is not present and the
// service's pull policy forbids getting it.
func (b *builder) imageObtainable(svc fleets.Service) error {
	if _, present := b.obs.Images[svc.Spec.Image]; !present && svc.Build == nil && svc.PullPolicy == "never" {
		return fmt.Errorf("image %s is not present and pull_policy is never", svc.Spec.Image)
	}
	return nil
}

// ensureImage returns the pull or build action svc's new containers wait
// for (0 when the image is present). imageObtainable has been checked.
func (b *builder) ensureImage(f fleets.Fleet, svc fleets.Service) int {
	ref := svc.Spec.Image
	if id, ok := b.images[ref]; ok {
		return id
	}
	_, present := b.obs.Images[ref]
	var a Action
	switch {
	case svc.Build != nil && !present:
		a = Action{Op: OpBuild, Fleet: f.Name, Service: svc.Name, Target: ref, Cause: "image not built for this build context", Build: svc.Build}
	case svc.Build != nil:
		return 0
	case svc.PullPolicy == "always":
		a = Action{Op: OpPull, Fleet: f.Name, Service: svc.Name, Target: ref, Cause: "pull_policy always"}
	case present:
		return 0
	default:
		a = Action{Op: OpPull, Fleet: f.Name, Service: svc.Name, Target: ref, Cause: "image not present"}
	}
	id := b.add(a)
	b.images[ref] = id
	return id
}

// instance is the container fleetd wants in slot of svc, named name.
func (b *builder) instance(f fleets.Fleet, svc fleets.Service, slot int, name, replaces string) *fleets.Instance {
	specLabel, err := fleets.EncodeSpec(svc.Spec)
	if err != nil {
		specLabel = "" // drift reports a missing spec label; the hash still decides
	}
	labels := map[string]string{
		fleets.LabelManaged:           "true",
		fleets.LabelFleet:             f.Name,
		fleets.LabelService:           svc.Name,
		fleets.LabelSlot:              strconv.Itoa(slot),
		fleets.LabelSpecHash:          svc.Hash,
		fleets.LabelHashVersion:       fleets.HashVersion,
		fleets.LabelSpec:              specLabel,
		fleets.LabelComposeProject:    f.Name,
		fleets.LabelComposeService:    svc.Name,
		fleets.LabelComposeNumber:     strconv.Itoa(slot),
		fleets.LabelComposeOneoff:     "False",
		fleets.LabelComposeConfigHash: svc.Hash,
	}
	if b.pol.Revision != "" {
		labels[fleets.LabelRevision] = b.pol.Revision
	}
	if d := fleets.HooksDigest(svc.PreStop); d != "" {
		labels[fleets.LabelPreStop] = d
	}
	if replaces != "" {
		labels[fleets.LabelReplaces] = replaces
	}
	if id, ok := b.obs.Images[svc.Spec.Image]; ok {
		labels[fleets.LabelImageID] = id
	}
	return &fleets.Instance{
		Name: name, Fleet: f.Name, Service: svc.Name, Slot: slot,
		Spec: svc.Spec, Labels: labels, RepoDir: b.pol.RepoDir, CheckoutDir: b.pol.CheckoutDir,
	}
}

// causeOf renders a drift item as the cause of an action.
func causeOf(it drift.Item) string {
	var parts []string
	for _, f := range it.Fields {
		parts = append(parts, fmt.Sprintf("%s: %s → %s", f.Field, f.Have, f.Want))
	}
	s := string(it.Kind)
	if len(parts) > 0 {
		s += " (" + strings.Join(parts, "; ") + ")"
	} else if it.Detail != "" {
		s += " (" + it.Detail + ")"
	}
	return s
}
