package fleets

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"
)

// Hook is a lifecycle hook (post_start, pre_stop): a command run in a
// container of the service with exec, as docker compose runs it, after
// fleetd starts the container or before fleetd stops it.
//
// Hooks live on Service, not in Spec: they do not shape the container, so
// they are not hashed, and changing one recreates nothing; the containers
// already running get the new hooks at their next start or stop.
type Hook struct {
	Command    []string `json:"command"`
	User       string   `json:"user,omitempty"`
	Privileged bool     `json:"privileged,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
	// Environment is added to the container's for the command. Its values
	// are shown nowhere (plans, diffs, messages), like the service's.
	Environment map[string]string `json:"environment,omitempty"`
}

// HooksDigest is the hex sha256 of hooks (their JSON), "" for none: the
// io.fleetd.pre-stop label, which says which pre_stop hooks a container
// was created with without showing them.
func HooksDigest(hooks []Hook) string {
	if len(hooks) == 0 {
		return ""
	}
	b, err := json.Marshal(hooks)
	if err != nil {
		return "" // a Hook holds nothing encoding/json rejects
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// hooks converts a service's post_start or pre_stop hooks (field names
// it in problems); a hook without a command is reported.
func (c *converter) hooks(service, field string, in []types.ServiceHook) []Hook {
	var out []Hook
	for i, h := range in {
		if len(h.Command) == 0 {
			c.r.servicef(service, field, "hook %d has no command", i+1)
			continue
		}
		out = append(out, Hook{
			Command:     slices.Clone([]string(h.Command)),
			User:        h.User,
			Privileged:  h.Privileged,
			WorkingDir:  h.WorkingDir,
			Environment: environment(h.Environment),
		})
	}
	return out
}
