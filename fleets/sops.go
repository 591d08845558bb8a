package fleets

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/fleetd/fleetd/sopsfile"
)

// Files a fleet reads may be SOPS-encrypted (env_file, secret and config
// files). They are decrypted in memory with the host's keys
// (sopsfile.HostKeys); the model holds keyed digests of the plaintext
// (sopsfile.Plain.Digest), never the plaintext in anything that is
// encoded: a changed secret changes the spec hash, and labels, plans and
// the state directory see only the digest. A file that does not decrypt
// (no key of this host, a MAC mismatch) makes the fleet invalid, naming
// the file, so the host keeps its last good revision.

// readDataFile reads a secret or config file (confined and size-checked
// by checkProjectFiles), decrypting it when SOPS encrypted it. digest is
// the keyed digest for an encrypted file, "" for a plain one.
func readDataFile(kind, p string) (data []byte, digest string, err error) {
	data, err = readFile(p, maxDataFileSize)
	if err != nil {
		return nil, "", err
	}
	if sopsfile.Encrypted(p, data) {
		plain, err := sopsfile.Decrypt(p, data, sopsfile.HostKeys())
		if err != nil {
			return nil, "", fmt.Errorf("%s does not decrypt (sops): %w", filepath.Base(p), err)
		}
		data, digest = plain.Data, plain.Digest
	}
	if kind == "secrets" {
		if err := checkSecretFile(p, data); err != nil {
			return nil, "", err
		}
	}
	return data, digest, nil
}

// Encrypted reports whether the file is SOPS-encrypted: its digest is the
// keyed one the loader gives such files.
func (r FileRef) Encrypted() bool { return isSopsDigest(r.Digest) }

// isSopsDigest reports whether a secret's or config's digest is the keyed
// digest of a SOPS-encrypted file's plaintext.
func isSopsDigest(digest string) bool { return strings.HasPrefix(digest, "hmac-sha256:") }

// SecretValue is an environment value that came from a SOPS-encrypted
// env_file. Only its digest is encoded (JSON, so the spec hash and the
// spec label, and every fmt verb): the plaintext stays in memory, for
// the engine to put in the container's environment at create.
type SecretValue struct {
	Digest string
	value  string
	known  bool
}

// Value is the plaintext; ok is false for a value decoded from JSON (a
// spec read back from a label or the state directory).
func (v SecretValue) Value() (string, bool) { return v.value, v.known }

func (v SecretValue) String() string             { return v.Digest }
func (v SecretValue) GoString() string           { return v.Digest }
func (v SecretValue) Format(f fmt.State, _ rune) { fmt.Fprint(f, v.Digest) }

func (v SecretValue) MarshalJSON() ([]byte, error) { return json.Marshal(v.Digest) }

func (v *SecretValue) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &v.Digest) }

// ContainerEnv is the container's environment: Environment and the
// plaintext of SecretEnv. It fails when a secret value is known by its
// digest only (a spec decoded from JSON, as a rollback's).
func (s Spec) ContainerEnv() (map[string]string, error) {
	if len(s.SecretEnv) == 0 {
		return s.Environment, nil
	}
	env := maps.Clone(s.Environment)
	if env == nil {
		env = map[string]string{}
	}
	for _, k := range slices.Sorted(maps.Keys(s.SecretEnv)) {
		v, ok := s.SecretEnv[k].Value()
		if !ok {
			return nil, fmt.Errorf("environment %s: the SOPS-encrypted value is not available (digest %s); its file changed since this spec was applied", k, s.SecretEnv[k].Digest)
		}
		env[k] = v
	}
	return env, nil
}

// RestoreSecretEnv gives the secret values of a spec decoded from JSON
// (a rollback's previous spec, from its label) their plaintext back from
// the current spec's values with the same digest. A value that changed
// since keeps none, and creating the container fails with a clear error
// (ContainerEnv) rather than run with the wrong value.
func RestoreSecretEnv(prev, cur map[string]SecretValue) map[string]SecretValue {
	if len(prev) == 0 {
		return prev
	}
	byDigest := map[string]SecretValue{}
	for _, v := range cur {
		if v.known {
			byDigest[v.Digest] = v
		}
	}
	out := make(map[string]SecretValue, len(prev))
	for k, v := range prev {
		if src, ok := byDigest[v.Digest]; ok {
			v = src
		}
		out[k] = v
	}
	return out
}

// sopsEnvKey is the extension under which resolveSopsEnv leaves a
// service's secret values for the converter. Its value has a Go type YAML
// cannot produce, so a compose file cannot forge it.
const sopsEnvKey = "x-fleetd\x00sops-env"

// resolveSopsEnv resolves the environment of each service that has a
// SOPS-encrypted env_file as compose-go would (WithServicesEnvironment
// Resolved: environment: entries without a value from the project
// environment, then each env_file in order, a later one overriding an
// earlier, then environment: overriding them all), decrypting those
// files in memory; it leaves those services without env_file, so that
// resolveFiles does not read them again. It must run only after
// checkProjectFiles.
func resolveSopsEnv(p *types.Project) error {
	var errs []error
	for name, s := range p.Services {
		if err := refuseSopsLabelFiles(name, s); err != nil {
			errs = append(errs, err)
			continue
		}
		if !hasSopsEnvFile(s) {
			continue
		}
		secret, err := sopsEnvironment(&s, p.Environment)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %s: %w", name, err))
			continue
		}
		if s.Extensions == nil {
			s.Extensions = types.Extensions{}
		}
		s.Extensions[sopsEnvKey] = secret
		p.Services[name] = s
	}
	return errors.Join(errs...)
}

// refuseSopsDotEnv refuses a SOPS-encrypted .env: its values would be
// interpolated into the compose file, and from there into the spec, its
// label and plans.
func refuseSopsDotEnv(data []byte) error {
	if sopsfile.Encrypted(".env", data) {
		return errors.New("the .env is SOPS-encrypted: its values would be interpolated into the spec and its label; put secrets in an env_file or a secret file")
	}
	return nil
}

// refuseSopsLabelFiles refuses a SOPS-encrypted label_file: labels are
// readable by anyone who can list containers.
func refuseSopsLabelFiles(name string, s types.ServiceConfig) error {
	for _, lf := range s.LabelFiles {
		if data, err := readFile(lf, maxDataFileSize); err == nil && sopsfile.Encrypted(lf, data) {
			return fmt.Errorf("service %s: label_file %s is SOPS-encrypted: labels are readable by anyone who can list containers", name, filepath.Base(lf))
		}
	}
	return nil
}

func hasSopsEnvFile(s types.ServiceConfig) bool {
	for _, ef := range s.EnvFiles {
		if data, err := readFile(ef.Path, maxDataFileSize); err == nil && sopsfile.Encrypted(ef.Path, data) {
			return true
		}
	}
	return false
}

// sopsEnvironment resolves s's environment in place and returns the
// values that came from an encrypted file and stayed, with their digests.
func sopsEnvironment(s *types.ServiceConfig, projectEnv types.Mapping) (map[string]SecretValue, error) {
	s.Environment = s.Environment.Resolve(projectEnv.Resolve)
	env := s.Environment.ToMapping()
	secret := map[string]SecretValue{}
	lookup := func(k string) (string, bool) {
		if v, ok := projectEnv.Resolve(k); ok {
			return v, true
		}
		if v, ok := s.Environment[k]; ok && v != nil {
			return *v, true
		}
		return "", false
	}
	for _, ef := range s.EnvFiles {
		data, err := readFile(ef.Path, maxDataFileSize)
		if errors.Is(err, fs.ErrNotExist) && !bool(ef.Required) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("env_file %s: %w", filepath.Base(ef.Path), err)
		}
		var plain *sopsfile.Plain
		if sopsfile.Encrypted(ef.Path, data) {
			pl, err := sopsfile.Decrypt(ef.Path, data, sopsfile.HostKeys())
			if err != nil {
				return nil, fmt.Errorf("env_file %s does not decrypt (sops): %w", filepath.Base(ef.Path), err)
			}
			plain, data = &pl, pl.Data
		}
		vars := types.Mapping{}
		if err := dotenv.ParseWithFormat(bytes.NewReader(data), ef.Path, vars, lookup, ef.Format); err != nil {
			// The parser's errors may quote a line: name the file only.
			if plain != nil {
				return nil, fmt.Errorf("env_file %s: not a valid env file once decrypted", filepath.Base(ef.Path))
			}
			return nil, fmt.Errorf("env_file %s: %w", filepath.Base(ef.Path), err)
		}
		for k, v := range vars {
			env[k] = v
			if plain != nil {
				secret[k] = SecretValue{Digest: plain.DigestOf([]byte(v)), value: v, known: true}
			} else {
				delete(secret, k)
			}
		}
	}
	for k, v := range s.Environment {
		if v != nil {
			delete(secret, k) // environment: wins, and is not secret
		}
	}
	s.Environment = env.ToMappingWithEquals().OverrideBy(s.Environment)
	s.EnvFiles = nil
	return secret, nil
}

// withSopsEnv moves a service's values from encrypted env files out of
// Environment into SecretEnv, and out of the public_env list: their
// values are never shown, whatever x-fleetd says.
func (c *converter) withSopsEnv(svc *Service, s types.ServiceConfig) {
	secret, ok := s.Extensions[sopsEnvKey].(map[string]SecretValue)
	if !ok || len(secret) == 0 {
		return
	}
	env := maps.Clone(svc.Spec.Environment)
	for k := range secret {
		delete(env, k)
	}
	svc.Spec.Environment = mapOrNil(env)
	if c.fleet.Engine == EngineSwarm {
		// A swarm service's environment is stored, readable, in the
		// swarm's service spec. The fleet is invalid; its plaintext is
		// dropped all the same, so that nothing can use it.
		c.r.servicef(s.Name, "env_file", "a SOPS-encrypted env_file is not supported by swarm fleets: give the values as secrets")
		return
	}
	svc.Spec.SecretEnv = secret
	svc.PublicEnv = slices.DeleteFunc(svc.PublicEnv, func(k string) bool { _, ok := secret[k]; return ok })
	if len(svc.PublicEnv) == 0 {
		svc.PublicEnv = nil
	}
}
