package reconcile

import (
	"container/heap"
	"slices"
)

// orderNameReuse makes every action that gives a container a name (a
// create, a rename) wait for the action that frees that name when a
// managed container of another slot, service or fleet holds it now (a
// removal or a rename back of the holder). Such pairs can span services
// and fleets, whose actions are planned in a fixed order, so when a freeing
// action comes later in the plan, the plan is reordered (stably, keeping
// plan order wherever the dependencies allow) and renumbered.
func (b *builder) orderNameReuse() {
	holder := map[string]string{} // container name -> ID of the managed container holding it
	for _, c := range b.obs.Containers {
		if c.Managed() {
			holder[c.Name] = c.ID
		}
	}
	frees := map[string]int{} // container ID -> action that frees its name
	for _, a := range b.actions {
		if (a.Op == OpRemove || a.Op == OpRename) && a.ContainerID != "" {
			frees[a.ContainerID] = a.ID
		}
	}
	backward := false
	for i := range b.actions {
		a := &b.actions[i]
		name := a.Target
		if a.Op == OpRename {
			name = a.NewName
		} else if a.Op != OpCreate {
			continue
		}
		id, held := holder[name]
		dep, freed := frees[id]
		if !held || !freed || id == a.ContainerID || dep == a.ID || slices.Contains(a.After, dep) || b.waitsFor(dep, a.ID) {
			continue // two containers swapped names: no order frees either name
		}
		a.After = compactIDs(append(a.After, dep))
		backward = backward || dep > a.ID
	}
	if backward {
		b.renumber(topoOrder(b.actions))
	}
}

// waitsFor reports whether action id waits, directly or not, for action
// target.
func (b *builder) waitsFor(id, target int) bool {
	seen := map[int]bool{}
	stack := []int{id}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == target {
			return true
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, b.actions[n-1].After...)
	}
	return false
}

// topoOrder returns action IDs so that each comes after those it waits
// for, preferring the lowest ID among the ready ones.
func topoOrder(actions []Action) []int {
	waiting := make([]int, len(actions)+1)
	next := make([][]int, len(actions)+1)
	ready := &idHeap{}
	for _, a := range actions {
		waiting[a.ID] = len(a.After)
		for _, dep := range a.After {
			next[dep] = append(next[dep], a.ID)
		}
		if len(a.After) == 0 {
			heap.Push(ready, a.ID)
		}
	}
	var order []int
	for ready.Len() > 0 {
		id := heap.Pop(ready).(int)
		order = append(order, id)
		for _, n := range next[id] {
			if waiting[n]--; waiting[n] == 0 {
				heap.Push(ready, n)
			}
		}
	}
	return order
}

// renumber puts the actions in order (old IDs) and renumbers them.
func (b *builder) renumber(order []int) {
	if len(order) != len(b.actions) {
		return // a cycle: cannot happen, as a name is freed by an action that takes none
	}
	newID := make(map[int]int, len(order))
	for i, old := range order {
		newID[old] = i + 1
	}
	out := make([]Action, len(order))
	for i, old := range order {
		a := b.actions[old-1]
		a.ID = i + 1
		if a.ImageFrom != 0 {
			a.ImageFrom = newID[a.ImageFrom]
		}
		after := make([]int, len(a.After))
		for j, dep := range a.After {
			after[j] = newID[dep]
		}
		a.After = compactIDs(after)
		out[i] = a
	}
	b.actions = out
}

type idHeap []int

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h idHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *idHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *idHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
