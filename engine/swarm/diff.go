package swarm

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/swarm"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

// Observed is what the swarm runs of one fleet, and every object that
// could collide with it.
type Observed struct {
	Services map[string]ObservedService // by name
	Networks map[string]ObservedObject  // by name
	Secrets  map[string]ObservedObject  // by name
	Configs  map[string]ObservedObject  // by name
	// NetworkNames maps network IDs to names: a stored service spec names
	// its networks by ID.
	NetworkNames map[string]string
}

// ObservedObject is a network, secret or config: its ID, whether this
// fleetd instance owns it, and for which fleet.
type ObservedObject struct {
	ID    string
	Owned bool
	Fleet string
}

// ObservedService is a service as the swarm holds it.
type ObservedService struct {
	ID      string
	Version uint64
	Owned   bool
	Fleet   string
	Spec    swarm.ServiceSpec
	// Running and Desired count the service's tasks (ServiceStatus).
	Running, Desired uint64
	// Update is the state of the last update (empty if none), with
	// Swarm's message.
	Update        swarm.UpdateState
	UpdateMessage string
	UpdateStarted time.Time // when the last update started; zero if none
	// Failing holds the errors of the service's failed recent tasks.
	Failing []string
}

// holds reports whether the swarm holds an object of fleet that this
// instance owns.
func (o Observed) holds(fleet string) bool {
	for _, s := range o.Services {
		if s.Owned && s.Fleet == fleet {
			return true
		}
	}
	for _, m := range []map[string]ObservedObject{o.Networks, o.Secrets, o.Configs} {
		for _, x := range m {
			if x.Owned && x.Fleet == fleet {
				return true
			}
		}
	}
	return false
}

// Kinds of swarm objects in drift items (drift.Item.Object).
const (
	ObjService = "service"
	ObjNetwork = "network"
	ObjSecret  = "secret"
	ObjConfig  = "config"
)

// Diff compares a translated stack with what the swarm runs, in drift's
// terms: Container is the object's name, Object its kind. It is pure.
func Diff(want Stack, obs Observed) []drift.Item {
	var out []drift.Item
	fleet := want.Namespace
	for _, n := range want.Networks {
		out = append(out, objectItem(fleet, ObjNetwork, n.Name, obs.Networks)...)
	}
	for _, f := range want.Secrets {
		out = append(out, objectItem(fleet, ObjSecret, f.Name, obs.Secrets)...)
	}
	for _, f := range want.Configs {
		out = append(out, objectItem(fleet, ObjConfig, f.Name, obs.Configs)...)
	}
	wanted := map[string]bool{}
	for _, s := range want.Services {
		wanted[s.Name] = true
		out = append(out, serviceItems(fleet, s, obs)...)
	}
	for _, name := range slices.Sorted(maps.Keys(obs.Services)) {
		if s := obs.Services[name]; s.Owned && s.Fleet == fleet && !wanted[name] {
			out = append(out, drift.Item{Fleet: fleet, Service: s.Spec.Labels[fleets.LabelService], Kind: drift.Orphan, Object: ObjService, Container: name})
		}
	}
	out = append(out, extraObjects(fleet, ObjNetwork, obs.Networks, names(want.Networks, func(n Network) string { return n.Name }))...)
	out = append(out, extraObjects(fleet, ObjSecret, obs.Secrets, names(want.Secrets, func(f File) string { return f.Name }))...)
	out = append(out, extraObjects(fleet, ObjConfig, obs.Configs, names(want.Configs, func(f File) string { return f.Name }))...)
	return out
}

func objectItem(fleet, kind, name string, have map[string]ObservedObject) []drift.Item {
	o, ok := have[name]
	switch {
	case !ok:
		return []drift.Item{{Fleet: fleet, Kind: drift.Missing, Object: kind, Container: name}}
	case !o.Owned:
		return []drift.Item{{Fleet: fleet, Kind: drift.Conflict, Object: kind, Container: name, Detail: "exists and is not fleetd's"}}
	case o.Fleet != fleet: // two fleets whose names collide once joined
		return []drift.Item{{Fleet: fleet, Kind: drift.Conflict, Object: kind, Container: name, Detail: "belongs to fleet " + o.Fleet}}
	}
	return nil
}

func extraObjects(fleet, kind string, have map[string]ObservedObject, wanted map[string]bool) []drift.Item {
	var out []drift.Item
	for _, name := range slices.Sorted(maps.Keys(have)) {
		if o := have[name]; o.Owned && o.Fleet == fleet && !wanted[name] {
			out = append(out, drift.Item{Fleet: fleet, Kind: drift.Orphan, Object: kind, Container: name})
		}
	}
	return out
}

func names[T any](list []T, name func(T) string) map[string]bool {
	out := map[string]bool{}
	for _, v := range list {
		out[name(v)] = true
	}
	return out
}

func serviceItems(fleet string, want Service, obs Observed) []drift.Item {
	item := func(kind drift.Kind) drift.Item {
		return drift.Item{Fleet: fleet, Service: want.Key, Kind: kind, Object: ObjService, Container: want.Name}
	}
	have, ok := obs.Services[want.Name]
	switch {
	case !ok:
		return []drift.Item{item(drift.Missing)}
	case !have.Owned:
		it := item(drift.Conflict)
		it.Detail = "exists and is not fleetd's"
		return []drift.Item{it}
	case have.Fleet != fleet:
		// Fleet a's service b_web and fleet a_b's service web share a name.
		it := item(drift.Conflict)
		it.Detail = "belongs to fleet " + have.Fleet
		return []drift.Item{it}
	}
	var out []drift.Item
	fields := SpecFields(want.Spec, have.Spec, obs.NetworkNames)
	switch {
	case have.Spec.Labels[LabelSpecHash] != want.Hash:
		it := item(drift.SpecChange)
		it.Fields = fields
		out = append(out, it)
	case len(fields) > 0:
		it := item(drift.Modified)
		it.Fields = fields
		out = append(out, it)
	}
	if have.Update == swarm.UpdateStateUpdating || have.Update == swarm.UpdateStateRollbackStarted {
		it := item(drift.RollingOut)
		it.Detail = string(have.Update)
		out = append(out, it)
	}
	if have.Running < have.Desired {
		detail := fmt.Sprintf("%d of %d tasks running", have.Running, have.Desired)
		if len(have.Failing) > 0 {
			detail += "; failing: " + strings.Join(have.Failing, "; ")
		}
		it := item(drift.Tasks)
		it.Detail = detail
		out = append(out, it)
	}
	return out
}

// SpecFields names the fields of a service spec that differ between the
// one fleetd wants and the one the swarm holds, comparing what fleetd sets
// and reading the stored spec as Swarm normalises it (networks by ID,
// secret and config IDs filled in, default endpoint mode).
//
// Environment values are compared but never shown: a field of the
// environment reads container.Env.<KEY>, with drift.Redacted for values.
func SpecFields(want, have swarm.ServiceSpec, networkNames map[string]string) []drift.Field {
	w, h := projection(want, nil), projection(have, networkNames)
	var out []drift.Field
	for _, k := range slices.Sorted(maps.Keys(w)) {
		if w[k] != h[k] {
			out = append(out, drift.Field{Field: k, Want: w[k], Have: h[k]})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if _, ok := w[k]; !ok {
			out = append(out, drift.Field{Field: k, Want: "", Have: h[k]})
		}
	}
	for i, f := range out {
		if strings.HasPrefix(f.Field, envField+".") {
			out[i].Want, out[i].Have = redact(f.Want), redact(f.Have)
		}
	}
	return out
}

const envField = "container.Env"

func redact(v string) string {
	if v == "" {
		return "(unset)"
	}
	return drift.Redacted
}

// projection flattens the fields fleetd sets into path → JSON value;
// zero values are left out at every depth, so an unset field and its zero
// compare equal (Swarm stores MaxAttempts: 0 for an unset one, say).
func projection(s swarm.ServiceSpec, networkNames map[string]string) map[string]string {
	out := map[string]string{}
	put := func(path string, v any) {
		b, err := json.Marshal(v)
		if err != nil {
			b = []byte(fmt.Sprint(v))
		}
		var tree any
		if json.Unmarshal(b, &tree) == nil {
			if tree = dropZero(tree); tree == nil {
				return
			}
			b, _ = json.Marshal(tree)
		}
		out[path] = string(b)
	}
	labels := maps.Clone(s.Labels)
	delete(labels, LabelSpecHash)
	put("labels", labels)
	put("mode", s.Mode)
	put("update_config", s.UpdateConfig)
	put("rollback_config", s.RollbackConfig)
	if e := s.EndpointSpec; e != nil {
		mode := e.Mode
		if mode == swarm.ResolutionModeVIP {
			mode = ""
		}
		put("endpoint_mode", mode)
		put("ports", e.Ports)
	}
	t := s.TaskTemplate
	put("resources", t.Resources)
	put("restart_policy", t.RestartPolicy)
	if p := t.Placement; p != nil {
		put("placement.constraints", p.Constraints)
		put("placement.preferences", p.Preferences)
		put("placement.max_replicas", p.MaxReplicas)
	}
	put("log_driver", t.LogDriver)
	var nets []string
	for _, n := range t.Networks {
		target := n.Target
		if name, ok := networkNames[target]; ok {
			target = name
		}
		nets = append(nets, target+" "+strings.Join(n.Aliases, ","))
	}
	slices.Sort(nets)
	put("networks", nets)
	if c := t.ContainerSpec; c != nil {
		cc := *c
		for _, kv := range c.Env {
			k, v, _ := strings.Cut(kv, "=")
			put(envField+"."+k, v)
		}
		cc.Env = nil
		cc.Secrets, cc.Configs, cc.Mounts = nil, nil, nil
		cc.Isolation = ""
		b, _ := json.Marshal(cc)
		var fields map[string]json.RawMessage
		_ = json.Unmarshal(b, &fields)
		for k, v := range fields {
			put("container."+k, v)
		}
		var secrets, configs []string
		for _, r := range c.Secrets {
			secrets = append(secrets, fmt.Sprintf("%s→%v", r.SecretName, r.File))
		}
		for _, r := range c.Configs {
			configs = append(configs, fmt.Sprintf("%s→%v", r.ConfigName, r.File))
		}
		put("container.Secrets", secrets)
		put("container.Configs", configs)
		put("container.Mounts", c.Mounts)
	}
	return out
}

// dropZero removes zero values (null, false, 0, "", empty objects and
// arrays) from a decoded JSON tree, and returns nil if nothing is left.
func dropZero(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e = dropZero(e); e == nil {
				delete(v, k)
			} else {
				v[k] = e
			}
		}
		if len(v) == 0 {
			return nil
		}
		return v
	case []any:
		if len(v) == 0 {
			return nil
		}
		for i, e := range v {
			v[i] = dropZero(e) // kept in place: positions matter in a list
		}
		return v
	case bool:
		if !v {
			return nil
		}
	case float64:
		if v == 0 {
			return nil
		}
	case string:
		if v == "" {
			return nil
		}
	case nil:
		return nil
	}
	return v
}
