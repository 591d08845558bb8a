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
}

func (h *hostFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&h.name, "host", "", "host name to load the fleets for (default: this machine's hostname)")
	cmd.Flags().StringArrayVar(&h.labels, "label", nil, "host label key=value (repeatable)")
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
