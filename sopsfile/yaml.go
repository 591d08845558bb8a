package sopsfile

import "gopkg.in/yaml.v3"

// yamlHasSops reports whether a YAML document has a top-level "sops"
// mapping with a mac.
func yamlHasSops(data []byte) bool {
	var top struct {
		Sops struct {
			MAC string `yaml:"mac"`
		} `yaml:"sops"`
	}
	return yaml.Unmarshal(data, &top) == nil && top.Sops.MAC != ""
}
