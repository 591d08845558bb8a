package reconcile

import (
	"fmt"
	"strings"
	"text/tabwriter"
)

// String renders the plan as text, the format `fleetd plan` prints and the
// planner's tests compare: actions grouped by fleet in plan order, each with
// its number, operation, target, cause and the actions it waits for; then
// what was left alone and why.
func (p ActionPlan) String() string {
	var sb strings.Builder
	if p.Empty() && len(p.Blocked) == 0 && p.Refused == "" {
		return "nothing to do\n"
	}
	tw := tabwriter.NewWriter(&sb, 0, 4, 2, ' ', 0)
	fleet := "\x00"
	for _, a := range p.Actions {
		if a.Fleet != fleet {
			fleet = a.Fleet
			fmt.Fprintf(tw, "fleet %s\n", fleet)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s%s\n", a.ID, a.Op, a.describeTarget(), a.Cause, afterList(a.After))
	}
	tw.Flush()
	for _, bl := range p.Blocked {
		fmt.Fprintf(&sb, "left alone: %s\n", bl.describe())
	}
	if p.Refused != "" {
		fmt.Fprintf(&sb, "refused: %s\n", p.Refused)
	}
	return sb.String()
}

func (a Action) describeTarget() string {
	switch a.Op {
	case OpRename:
		return a.Target + " → " + a.NewName
	case OpConnect:
		if a.Attachment != nil {
			return a.Target + " → " + a.Attachment.Network
		}
	}
	return a.Target
}

func afterList(ids []int) string {
	if len(ids) == 0 {
		return ""
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return " [after " + strings.Join(s, " ") + "]"
}

func (bl Blocked) describe() string {
	where := bl.Fleet
	if bl.Service != "" {
		where += "/" + bl.Service
	}
	if bl.Container != "" {
		where += " " + bl.Container
	}
	return where + ": " + bl.Reason
}

// Plural picks the word for n things.
func Plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
