package swarm

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/swarm"
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
	// Failing holds the errors of the service's failed recent tasks.
	Failing []string
}

// Kinds of swarm drift.
const (
	KindMissing    = "missing"     // a service, network, secret or config of the fleet does not exist
	KindChanged    = "changed"     // the fleet's spec changed in Git
	KindModified   = "modified"    // the service was changed out of band (docker service update/scale)
	KindTasks      = "tasks"       // fewer tasks run than desired
	KindExtra      = "extra"       // an owned object of the fleet that Git no longer has
	KindConflict   = "conflict"    // an object of the fleet's name that fleetd does not own
	KindRollingOut = "rolling-out" // Swarm's updater is at work
)

// Item is one difference, naming the object and the fields.
type Item struct {
	Kind   string  `json:"kind"`
	Object string  `json:"object"` // "service shop_api", "secret shop_token_…"
	Fields []Field `json:"fields,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

// Field is one spec field, wanted vs actual.
type Field struct {
	Path   string `json:"path"`
	Wanted string `json:"wanted"`
	Actual string `json:"actual"`
}

func (i Item) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", i.Object, i.Kind)
	if i.Detail != "" {
		b.WriteString(": " + i.Detail)
	}
	for _, f := range i.Fields {
		fmt.Fprintf(&b, "\n  %s: want %s, have %s", f.Path, f.Wanted, f.Actual)
	}
	return b.String()
}

// Diff compares a translated stack with what the swarm runs. It is pure.
func Diff(want Stack, obs Observed) []Item {
	var out []Item
	for _, n := range want.Networks {
		out = append(out, objectItem("network", n.Name, obs.Networks)...)
	}
	for _, f := range want.Secrets {
		out = append(out, objectItem("secret", f.Name, obs.Secrets)...)
	}
	for _, f := range want.Configs {
		out = append(out, objectItem("config", f.Name, obs.Configs)...)
	}
	wanted := map[string]bool{}
	for _, s := range want.Services {
		wanted[s.Name] = true
		out = append(out, serviceItems(s, obs)...)
	}
	for _, name := range slices.Sorted(maps.Keys(obs.Services)) {
		if s := obs.Services[name]; s.Owned && s.Fleet == want.Namespace && !wanted[name] {
			out = append(out, Item{Kind: KindExtra, Object: "service " + name})
		}
	}
	out = append(out, extraObjects("network", want.Namespace, obs.Networks, names(want.Networks, func(n Network) string { return n.Name }))...)
	out = append(out, extraObjects("secret", want.Namespace, obs.Secrets, names(want.Secrets, func(f File) string { return f.Name }))...)
	out = append(out, extraObjects("config", want.Namespace, obs.Configs, names(want.Configs, func(f File) string { return f.Name }))...)
	return out
}

func objectItem(kind, name string, have map[string]ObservedObject) []Item {
	o, ok := have[name]
	switch {
	case !ok:
		return []Item{{Kind: KindMissing, Object: kind + " " + name}}
	case !o.Owned:
		return []Item{{Kind: KindConflict, Object: kind + " " + name, Detail: "exists and is not fleetd's"}}
	}
	return nil
}

func extraObjects(kind, fleet string, have map[string]ObservedObject, wanted map[string]bool) []Item {
	var out []Item
	for _, name := range slices.Sorted(maps.Keys(have)) {
		if o := have[name]; o.Owned && o.Fleet == fleet && !wanted[name] {
			out = append(out, Item{Kind: KindExtra, Object: kind + " " + name})
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

func serviceItems(want Service, obs Observed) []Item {
	object := "service " + want.Name
	have, ok := obs.Services[want.Name]
	switch {
	case !ok:
		return []Item{{Kind: KindMissing, Object: object}}
	case !have.Owned:
		return []Item{{Kind: KindConflict, Object: object, Detail: "exists and is not fleetd's"}}
	}
	var out []Item
	fields := SpecFields(want.Spec, have.Spec, obs.NetworkNames)
	switch {
	case have.Spec.Labels[LabelSpecHash] != want.Hash:
		out = append(out, Item{Kind: KindChanged, Object: object, Fields: fields})
	case len(fields) > 0:
		out = append(out, Item{Kind: KindModified, Object: object, Fields: fields})
	}
	if have.Update == swarm.UpdateStateUpdating || have.Update == swarm.UpdateStateRollbackStarted {
		out = append(out, Item{Kind: KindRollingOut, Object: object, Detail: string(have.Update)})
	}
	if have.Running < have.Desired {
		detail := fmt.Sprintf("%d of %d tasks running", have.Running, have.Desired)
		if len(have.Failing) > 0 {
			detail += "; failing: " + strings.Join(have.Failing, "; ")
		}
		out = append(out, Item{Kind: KindTasks, Object: object, Detail: detail})
	}
	return out
}

// SpecFields names the fields of a service spec that differ between the
// one fleetd wants and the one the swarm holds, comparing what fleetd sets
// and reading the stored spec as Swarm normalises it (networks by ID,
// secret and config IDs filled in, default endpoint mode).
func SpecFields(want, have swarm.ServiceSpec, networkNames map[string]string) []Field {
	w, h := projection(want, nil), projection(have, networkNames)
	var out []Field
	for _, k := range slices.Sorted(maps.Keys(w)) {
		if w[k] != h[k] {
			out = append(out, Field{Path: k, Wanted: w[k], Actual: h[k]})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if _, ok := w[k]; !ok {
			out = append(out, Field{Path: k, Wanted: "", Actual: h[k]})
		}
	}
	return out
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
