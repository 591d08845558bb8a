package drift

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/fleetd/fleetd/fleets"
)

// Diff compares the fleets loaded for one host with one observed snapshot of
// that host's engine and returns every difference, sorted by fleet, service,
// slot, container and kind. It returns nil when the host is in sync.
//
// desired is every fleet of the revision as loaded for this host. Only a
// fleet whose Targets is set, and in it only a service whose Targets is set,
// is wanted here; managed containers of any other fleet or service are
// orphans. Containers are matched to replicas by their io.fleetd.fleet,
// service and slot labels, never by name. A container without
// io.fleetd.managed=true yields at most a conflict, and only when it holds a
// name fleetd needs.
//
// On the in-sync path Diff decodes no spec label: equal spec hashes settle
// the spec, and the io.fleetd.spec label is read only to name the fields of
// a spec change.
func Diff(desired []fleets.Fleet, obs Observed) []Item {
	d := newDiffer(desired, obs)
	for i := range obs.Containers {
		d.classify(&obs.Containers[i])
	}
	for i := range desired {
		f := &desired[i]
		if !f.Targets {
			continue
		}
		for j := range f.Services {
			if svc := &f.Services[j]; svc.Targets {
				for slot := 1; slot <= svc.Replicas; slot++ {
					d.checkSlot(f.Name, svc, slot)
				}
			}
		}
		d.checkNetworks(f)
	}
	sortItems(d.items)
	return d.items
}

type serviceKey struct{ fleet, service string }

// slotKey is one replica of a wanted service; the pointer (into desired)
// hashes faster than names.
type slotKey struct {
	svc  *fleets.Service
	slot int
}

// differ holds the indexes one Diff builds over its inputs.
type differ struct {
	obs      Observed
	fleets   map[string]*fleets.Fleet
	services map[serviceKey]*fleets.Service
	byName   map[string]*Container
	networks map[string]*Network
	// claims holds the first container claiming each slot, more the
	// others (duplicates are rare; this keeps the common case allocation
	// free).
	claims  map[slotKey]*Container
	more    map[slotKey][]*Container
	scratch []*Container
	nameBuf []byte
	items   []Item
}

func newDiffer(desired []fleets.Fleet, obs Observed) *differ {
	nsvc := 0
	for i := range desired {
		nsvc += len(desired[i].Services)
	}
	d := &differ{
		obs:      obs,
		fleets:   make(map[string]*fleets.Fleet, len(desired)),
		services: make(map[serviceKey]*fleets.Service, nsvc),
		byName:   make(map[string]*Container, len(obs.Containers)),
		networks: make(map[string]*Network, len(obs.Networks)),
		claims:   make(map[slotKey]*Container, len(obs.Containers)),
		more:     map[slotKey][]*Container{},
	}
	for i := range desired {
		f := &desired[i]
		if _, dup := d.fleets[f.Name]; dup {
			continue
		}
		d.fleets[f.Name] = f
		for j := range f.Services {
			d.services[serviceKey{f.Name, f.Services[j].Name}] = &f.Services[j]
		}
	}
	for i := range obs.Containers {
		d.byName[obs.Containers[i].Name] = &obs.Containers[i]
	}
	for i := range obs.Networks {
		d.networks[obs.Networks[i].Name] = &obs.Networks[i]
	}
	return d
}

func (d *differ) add(it Item) { d.items = append(d.items, it) }

// classify files a managed container under the slot it claims, or reports
// it as tampered, orphaned or beyond the replica count.
func (d *differ) classify(c *Container) {
	if !c.Managed() {
		return
	}
	o, err := OwnerOf(*c)
	base := Item{Fleet: o.Fleet, Service: o.Service, Container: c.Name, ContainerID: c.ID, Slot: o.Slot}
	if o.Fleet == "" || o.Service == "" {
		d.add(with(base, Modified, "labels tampered: "+err.Error()))
		return
	}
	svc, why := d.wanted(o)
	switch {
	case why != "":
		d.add(with(base, Orphan, why))
	case err != nil:
		d.add(with(base, Modified, "labels tampered: "+err.Error()))
	case o.Slot > svc.Replicas:
		d.add(with(base, Extra, fmt.Sprintf("slot %d beyond replicas %d", o.Slot, svc.Replicas)))
	default:
		k := slotKey{svc, o.Slot}
		if d.claims[k] == nil {
			d.claims[k] = c
		} else {
			d.more[k] = append(d.more[k], c)
		}
	}
}

// wanted returns the owner's service, or says why its fleet or service is
// not wanted on this host.
func (d *differ) wanted(o Owner) (*fleets.Service, string) {
	f := d.fleets[o.Fleet]
	switch {
	case f == nil:
		return nil, fmt.Sprintf("fleet %s is not in the spec", o.Fleet)
	case !f.Targets:
		return nil, fmt.Sprintf("fleet %s does not target this host", o.Fleet)
	}
	svc := d.services[serviceKey{o.Fleet, o.Service}]
	switch {
	case svc == nil:
		return nil, fmt.Sprintf("service %s is not in fleet %s", o.Service, o.Fleet)
	case !svc.Targets:
		return nil, fmt.Sprintf("service %s does not target this host", o.Service)
	}
	return svc, ""
}

// checkSlot reports on one wanted replica: missing, duplicated, or the
// drift of the container that holds it.
func (d *differ) checkSlot(fleetName string, svc *fleets.Service, slot int) {
	k := slotKey{svc, slot}
	first := d.claims[k]
	name := d.slotName(fleetName, svc, slot, first)
	base := Item{Fleet: fleetName, Service: svc.Name, Container: name, Slot: slot}
	holder := first
	if first == nil || first.Name != name {
		holder = d.byName[name]
	}
	if holder != nil && !holder.Managed() {
		it := with(base, Conflict, "an unmanaged container holds the name; fleetd will not remove it")
		it.ContainerID = holder.ID
		d.add(it)
	}
	if first == nil {
		it := with(base, Missing, "")
		if holder != nil && holder.Managed() {
			it.Detail = "name held by managed container " + shortID(holder.ID)
		}
		d.add(it)
		return
	}
	cs := append(append(d.scratch[:0], first), d.more[k]...)
	d.scratch = cs
	ci := canonical(cs, name)
	for i, c := range cs {
		if i != ci {
			d.add(duplicate(base, c, cs[ci]))
		}
	}
	d.checkContainer(base, svc, cs[ci])
}

// slotName is ContainerName without an allocation when the slot's first
// claimant already has that name, the common case.
func (d *differ) slotName(fleetName string, svc *fleets.Service, slot int, first *Container) string {
	if svc.Spec.ContainerName != "" {
		return svc.Spec.ContainerName
	}
	b := append(d.nameBuf[:0], fleetName...)
	b = append(append(append(b, '-'), svc.Name...), '-')
	b = strconv.AppendInt(b, int64(slot), 10)
	d.nameBuf = b
	if first != nil && first.Name == string(b) {
		return first.Name
	}
	return string(b)
}

// canonical picks the container that holds a slot when several claim it:
// the one with the slot's name, else one that replaces nothing, else the
// oldest.
func canonical(cs []*Container, name string) int {
	rank := func(c *Container) int {
		switch {
		case c.Name == name:
			return 0
		case c.Labels[fleets.LabelReplaces] == "":
			return 1
		}
		return 2
	}
	best := 0
	for i := 1; i < len(cs); i++ {
		a, b := cs[i], cs[best]
		if cmp.Or(cmp.Compare(rank(a), rank(b)), a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID)) < 0 {
			best = i
		}
	}
	return best
}

func duplicate(base Item, c, canon *Container) Item {
	it := base
	it.Kind, it.Container, it.ContainerID = Extra, c.Name, c.ID
	it.Detail = fmt.Sprintf("duplicate in slot %d, held by %s", base.Slot, canon.Name)
	if r := c.Labels[fleets.LabelReplaces]; r != "" {
		it.Detail += "; replaces " + r + " (rollout in progress)"
	}
	return it
}

// checkContainer reports the drift of the container holding a wanted slot.
func (d *differ) checkContainer(base Item, svc *fleets.Service, c *Container) {
	base.ContainerID = c.ID
	applied, specItem := specDrift(base, svc, c)
	if specItem != nil {
		d.add(*specItem)
	} else if it, ok := d.imageDrift(base, svc, c); ok {
		d.add(it)
	}
	if it, ok := stateDrift(base, c); ok {
		d.add(it)
	}
	if fs := append(modifiedFields(base.Container, applied, c), d.peerFields(svc, c)...); len(fs) > 0 {
		it := with(base, Modified, "changed out of band")
		it.Fields = fs
		d.add(it)
	}
}

// peerFields names the containers a container joined at create (its
// io.fleetd.peers label) that are no longer running: the network, pid or
// ipc namespace it shares, or the volumes it took, went with them, and
// only a new container joins the peer's replacement.
func (d *differ) peerFields(svc *fleets.Service, c *Container) []Field {
	raw := c.Labels[fleets.LabelPeers]
	if raw == "" || len(svc.Spec.PeerServices()) == 0 {
		return nil // an image's label is no record of fleetd's
	}
	var fs []Field
	for _, p := range strings.Split(raw, ",") {
		name, id, _ := strings.Cut(p, "=")
		have := "gone"
		if i := slices.IndexFunc(d.obs.Containers, func(o Container) bool { return o.ID == id }); i >= 0 {
			if d.obs.Containers[i].State == "running" {
				continue
			}
			have = d.obs.Containers[i].State
		}
		fs = append(fs, Field{Field: "peers." + name, Want: "a running container of " + name, Have: shortID(id) + " " + have})
	}
	return fs
}

// imageDrift reports a container whose tag now resolves to another local
// image. A tag absent locally is not drift: the planner pulls it.
func (d *differ) imageDrift(base Item, svc *fleets.Service, c *Container) (Item, bool) {
	want, ok := d.obs.Images[svc.Spec.Image]
	if !ok || want == "" || c.ImageID == "" || want == c.ImageID {
		return Item{}, false
	}
	it := with(base, Image, svc.Spec.Image+" now resolves to another image")
	it.Fields = []Field{{Field: "image_id", Want: shortID(want), Have: shortID(c.ImageID)}}
	return it, true
}

// checkNetworks reports unmanaged networks holding the name of one of the
// fleet's own (non-external) networks.
func (d *differ) checkNetworks(f *fleets.Fleet) {
	for _, n := range f.Networks {
		if n.External {
			continue
		}
		if on := d.networks[n.Name]; on != nil && !on.Managed() {
			d.add(Item{Fleet: f.Name, Container: n.Name, ContainerID: on.ID, Kind: Conflict,
				Detail: "an unmanaged network holds the name of network " + n.Key})
		}
	}
}

func with(base Item, k Kind, detail string) Item {
	base.Kind, base.Detail = k, detail
	return base
}

// shortID is the 12-character form Docker prints.
func shortID(id string) string {
	if len(id) > 7 && id[:7] == "sha256:" {
		id = id[7:]
	}
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

var kindRank = map[Kind]int{
	Missing: 0, Extra: 1, SpecChange: 2, Image: 3, Stopped: 4, Paused: 5,
	Restarting: 6, Unhealthy: 7, Modified: 8, Orphan: 9, Conflict: 10,
}

func sortItems(items []Item) {
	slices.SortFunc(items, func(a, b Item) int {
		return cmp.Or(
			cmp.Compare(a.Fleet, b.Fleet),
			cmp.Compare(a.Service, b.Service),
			cmp.Compare(a.Slot, b.Slot),
			cmp.Compare(a.Container, b.Container),
			cmp.Compare(kindRank[a.Kind], kindRank[b.Kind]),
			cmp.Compare(a.ContainerID, b.ContainerID),
		)
	})
}
