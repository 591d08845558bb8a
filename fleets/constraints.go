package fleets

import (
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// constraints parses deploy.placement.constraints. fleetd knows the host's
// name and labels, so it honours node.hostname and node.labels.<key> with
// == and !=; anything else (node.role, engine.labels, ...) is an error
// rather than a constraint silently ignored. A swarm fleet's constraints go
// to Swarm, which also knows node.id, node.role, node.platform.os,
// node.platform.arch and engine.labels.<key>.
func (c *converter) constraints(s types.ServiceConfig) []Constraint {
	if s.Deploy == nil {
		return nil
	}
	var out []Constraint
	for i, expr := range s.Deploy.Placement.Constraints {
		con, ok := parseConstraint(expr, c.fleet.Engine == EngineSwarm)
		if !ok {
			c.r.servicef(s.Name, "deploy.placement.constraints."+itoa(int64(i)),
				"unsupported constraint %q: use node.hostname or node.labels.<key> with == or !=", expr)
			continue
		}
		out = append(out, con)
	}
	return out
}

func parseConstraint(expr string, swarm bool) (Constraint, bool) {
	for _, op := range []string{"==", "!="} {
		field, value, found := strings.Cut(expr, op)
		if !found {
			continue
		}
		field, value = strings.TrimSpace(field), strings.TrimSpace(value)
		label, isLabel := strings.CutPrefix(field, "node.labels.")
		if swarm && !isLabel {
			label, isLabel = strings.CutPrefix(field, "engine.labels.")
		}
		swarmOnly := swarm && (field == "node.id" || field == "node.role" || field == "node.platform.os" || field == "node.platform.arch")
		if field != "node.hostname" && !swarmOnly && (!isLabel || label == "") {
			return Constraint{}, false
		}
		if value == "" {
			return Constraint{}, false
		}
		return Constraint{Field: field, Op: op, Value: value}, true
	}
	return Constraint{}, false
}
