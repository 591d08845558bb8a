package fleets

import (
	"slices"

	"github.com/fleetd/fleetd/redact"
)

// knownSecrets gathers the values the fleet holds that are secret: the
// contents of its secrets (secretData, recorded as they are read), and
// the values under secret-looking keys in the interpolation environment
// (.env) and in each service's environment, labels and logging options,
// but for environment keys the service makes public. Every service gets
// the whole list: a value may leak through any of them.
func (c *converter) knownSecrets(services []Service) []SecretBytes {
	out := slices.Clone(c.secretData)
	add := func(m map[string]string, public []string) {
		for k, v := range m {
			if v != "" && redact.LooksSecret(k) && !slices.Contains(public, k) {
				out = append(out, SecretBytes(v))
			}
		}
	}
	add(c.project.Environment, nil)
	for _, s := range services {
		add(s.Spec.Environment, s.PublicEnv)
		for _, sv := range s.Spec.SecretEnv { // from SOPS files: always secret
			if v, ok := sv.Value(); ok && v != "" {
				out = append(out, SecretBytes(v))
			}
		}
		add(s.Spec.Labels, nil)
		if s.Spec.Logging != nil {
			add(s.Spec.Logging.Options, nil)
		}
	}
	slices.SortFunc(out, func(a, b SecretBytes) int { return slices.Compare(a, b) })
	return slices.CompactFunc(out, func(a, b SecretBytes) bool { return slices.Equal(a, b) })
}

// SecretValues returns the fleet's known secret values as text, for
// redact.New.
func (f Fleet) SecretValues() []string { return SecretValuesOf([]Fleet{f}) }

// SecretValuesOf returns the known secret values of every fleet, sorted
// and without repeats, for redact.New.
func SecretValuesOf(fs []Fleet) []string {
	var out []string
	for _, f := range fs {
		for _, s := range f.Services {
			out = append(out, s.SecretValues()...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// SecretValues returns the service's known secret values as text.
func (s Service) SecretValues() []string {
	out := make([]string, len(s.Secrets))
	for i, v := range s.Secrets {
		out[i] = string(v)
	}
	return out
}
