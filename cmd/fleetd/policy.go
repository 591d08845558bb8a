package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/fleetd/fleetd/fleets"
)

// policyConfig is the configuration's policy: section, what this host lets
// fleets ask of it (fleets.HostPolicy). A key left out keeps its default
// (fleets.DefaultHostPolicy): everything Docker allows, but binds that
// reach the Docker or containerd sockets or /proc (and volumes_from a
// container fleetd did not create, whose binds it cannot see); an empty
// list allows none.
type policyConfig struct {
	Privileged     *bool     `yaml:"privileged"`
	CapAdd         *[]string `yaml:"cap_add"`
	HostNamespaces *[]string `yaml:"host_namespaces"`
	Binds          *[]string `yaml:"binds"`
	DenyBinds      *[]string `yaml:"deny_binds"`
	Devices        *[]string `yaml:"devices"`
}

// hostPolicy is the policy the section describes, checked.
func (c policyConfig) hostPolicy() (fleets.HostPolicy, error) {
	p := fleets.DefaultHostPolicy()
	if c.Privileged != nil {
		p.Privileged = *c.Privileged
	}
	for _, l := range []struct {
		src *[]string
		dst *[]string
	}{
		{c.CapAdd, &p.CapAdd}, {c.HostNamespaces, &p.HostNamespaces}, {c.Binds, &p.Binds},
		{c.DenyBinds, &p.DenyBinds}, {c.Devices, &p.Devices},
	} {
		if l.src != nil {
			*l.dst = slices.Clone(*l.src)
		}
	}
	if err := p.Validate(); err != nil {
		return p, fmt.Errorf("policy.%w", err)
	}
	return p, nil
}

// readPolicyFile reads the policy: section of a YAML file — the agent's
// own configuration file, or a file holding only that section — for the
// commands' --policy flag. Other top-level keys are ignored; the section's
// own are checked as strictly as the configuration's.
func readPolicyFile(path string) (fleets.HostPolicy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fleets.HostPolicy{}, fmt.Errorf("--policy: %w", err)
	}
	if len(data) > maxConfigSize {
		return fleets.HostPolicy{}, fmt.Errorf("--policy %s: larger than %d bytes", path, maxConfigSize)
	}
	var cfg struct {
		Policy *policyConfig `yaml:"policy"`
		// Other is the rest of an agent's configuration file, not read.
		Other map[string]yaml.Node `yaml:",inline"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
		return fleets.HostPolicy{}, explainConfig(path, data, err)
	}
	if cfg.Policy == nil {
		return fleets.HostPolicy{}, fmt.Errorf("--policy %s: no policy: section", path)
	}
	p, err := cfg.Policy.hostPolicy()
	if err != nil {
		return p, fmt.Errorf("--policy %s: %w", path, err)
	}
	return p, nil
}
