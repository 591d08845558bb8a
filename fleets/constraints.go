package fleets

import (
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// constraints parses deploy.placement.constraints. fleetd knows the host's
// name and labels, so it honours node.hostname and node.labels.<key> with
// == and !=; anything else (node.role, engine.labels, ...) is an error
// rather than a constraint silently ignored.
func (c *converter) constraints(s types.ServiceConfig) []Constraint {
	if s.Deploy == nil {
		return nil
	}
	var out []Constraint
	for i, expr := range s.Deploy.Placement.Constraints {
		con, ok := parseConstraint(expr)
		if !ok {
			c.r.servicef(s.Name, "deploy.placement.constraints."+itoa(int64(i)),
				"unsupported constraint %q: use node.hostname or node.labels.<key> with == or !=", expr)
			continue
		}
		out = append(out, con)
	}
	return out
}

func parseConstraint(expr string) (Constraint, bool) {
	for _, op := range []string{"==", "!="} {
		field, value, found := strings.Cut(expr, op)
		if !found {
			continue
		}
		field, value = strings.TrimSpace(field), strings.TrimSpace(value)
		label, isLabel := strings.CutPrefix(field, "node.labels.")
		if field != "node.hostname" && (!isLabel || label == "") {
			return Constraint{}, false
		}
		if value == "" {
			return Constraint{}, false
		}
		return Constraint{Field: field, Op: op, Value: value}, true
	}
	return Constraint{}, false
}
