package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/fleetd/fleetd/fleets"
)

// hostFlags are the --host and --label flags every command that loads
// fleets for a host takes.
type hostFlags struct {
	name   string
	labels []string
	policy string // --policy: a file with the host's policy: section
}

func (h *hostFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&h.name, "host", "", "host name to load the fleets for (default: this machine's hostname)")
	cmd.Flags().StringArrayVar(&h.labels, "label", nil, "host label key=value (repeatable)")
	cmd.Flags().StringVar(&h.policy, "policy", "", "the host's access policy: a YAML file with a policy: section, such as the agent's configuration file (default: the agent's default policy)")
}

// policyOptions is the load option that enforces the host's policy: the
// --policy file's, or, when there is none and byDefault, the default
// policy, as an agent without a policy: section enforces it.
func (h *hostFlags) policyOptions(byDefault bool) ([]fleets.Option, error) {
	if h.policy == "" {
		if !byDefault {
			return nil, nil
		}
		return []fleets.Option{fleets.Enforce(fleets.DefaultHostPolicy())}, nil
	}
	p, err := readPolicyFile(h.policy)
	if err != nil {
		return nil, usageError("%w", err)
	}
	return []fleets.Option{fleets.Enforce(p)}, nil
}

func (h *hostFlags) host() (fleets.Host, error) {
	name := h.name
	if name == "" {
		n, err := os.Hostname()
		if err != nil {
			return fleets.Host{}, fmt.Errorf("hostname: %w", err)
		}
		name = n
	}
	labels, err := parseLabels(h.labels)
	if err != nil {
		return fleets.Host{}, err
	}
	return fleets.Host{Name: name, Labels: labels}, nil
}

func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageError("--label %q: want key=value", kv)
		}
		labels[k] = v
	}
	return labels, nil
}
