package agent

import (
	"cmp"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// problemText is the problems, one per line, or the load error.
func problemText(ps []fleets.Problem, loadErr string) string {
	if len(ps) == 0 {
		return loadErr
	}
	return fleets.ProblemList(ps).Error()
}

func problemsOf(ps []fleets.Problem, fleet string) []fleets.Problem {
	var out []fleets.Problem
	for _, p := range ps {
		if p.Fleet == fleet {
			out = append(out, p)
		}
	}
	return out
}

// faultText is the faults' messages, one per line.
func faultText(fs []Fault) string {
	msgs := make([]string, 0, len(fs))
	for _, f := range fs {
		msgs = append(msgs, f.Message)
	}
	return strings.Join(slices.Compact(msgs), "\n")
}

// stallOf is the stall that permanent faults make: the first reason (by
// reason, for a stable answer), every object they name.
func stallOf(fs []Fault, now time.Time) Stall {
	slices.SortFunc(fs, func(a, b Fault) int { return cmp.Compare(a.Reason, b.Reason) })
	st := Stall{Reason: fs[0].Reason, Message: faultText(fs), Faults: fs, Since: now}
	for _, f := range fs {
		if f.Object != "" {
			st.Objects = append(st.Objects, f.Object)
		}
	}
	slices.Sort(st.Objects)
	st.Objects = slices.Compact(st.Objects)
	return st
}

// waitsOn says in words what a stall waits for besides a new revision
// or a sync.
func waitsOn(st Stall) string {
	switch st.Reason {
	case fault.ImageNotFound:
		return "the images (" + strings.Join(st.Objects, ", ") + ")"
	case fault.PortAllocated:
		return "the ports' holders (" + strings.Join(st.Objects, ", ") + ")"
	}
	if len(st.Objects) > 0 {
		return strings.Join(st.Objects, ", ")
	}
	return "nothing on the host"
}

func revOf(f Fleet) *reconcile.Revision {
	if f.Rev.Commit == "" {
		return nil
	}
	r := f.Rev
	return &r
}

func kindsOf(items []drift.Item) string {
	seen := map[string]bool{}
	for _, it := range items {
		seen[string(it.Kind)] = true
	}
	return strings.Join(slices.Sorted(maps.Keys(seen)), ", ")
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
