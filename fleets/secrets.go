package fleets

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"
)

// fileObject is a top-level secret or config, whichever it is.
type fileObject struct {
	kind   string // "secrets" or "configs"
	key    string
	config types.FileObjectConfig
}

// secrets converts the service's secrets: each mounted at
// /run/secrets/<name> unless a target is given, its contents represented by
// their digest.
func (c *converter) secrets(s types.ServiceConfig) []FileRef {
	var out []FileRef
	for _, ref := range s.Secrets {
		obj, ok := c.project.Secrets[ref.Source]
		if !ok {
			continue // reported by checkReferences
		}
		target := cmpOr(ref.Target, "/run/secrets/"+ref.Source)
		if target[0] != '/' {
			target = "/run/secrets/" + target
		}
		out = append(out, c.fileRef(fileObject{"secrets", ref.Source, types.FileObjectConfig(obj)}, target, ref.Mode))
	}
	return sortRefs(out)
}

// configs converts the service's configs, mounted at /<name> unless a
// target is given.
func (c *converter) configs(s types.ServiceConfig) []FileRef {
	var out []FileRef
	for _, ref := range s.Configs {
		obj, ok := c.project.Configs[ref.Source]
		if !ok {
			continue
		}
		target := cmpOr(ref.Target, "/"+ref.Source)
		out = append(out, c.fileRef(fileObject{"configs", ref.Source, types.FileObjectConfig(obj)}, target, ref.Mode))
	}
	return sortRefs(out)
}

// fileRef digests a secret's or config's contents: a file (read within the
// size limit; checkProjectFiles has confined it), an environment variable
// of the interpolation environment, or inline content.
func (c *converter) fileRef(obj fileObject, target string, mode *types.FileMode) FileRef {
	ref := FileRef{Name: obj.key, Target: target}
	if mode != nil {
		ref.Mode = uint32(*mode)
	}
	var contents []byte
	switch cfg := obj.config; {
	case bool(cfg.External):
		// Only swarm fleets get here (unsupported refuses it elsewhere).
		ref.External = cmp.Or(cfg.Name, obj.key)
		return ref
	case cfg.File != "":
		data, digest, err := readDataFile(obj.kind, cfg.File)
		if err != nil {
			c.r.fleetf(obj.kind+"."+obj.key+".file", "%s", err)
			return ref
		}
		contents, ref.Source, ref.Digest = data, cfg.File, digest
	case cfg.Environment != "":
		v, ok := c.project.Environment[cfg.Environment]
		if !ok {
			c.r.fleetf(obj.kind+"."+obj.key+".environment", "variable %s is not set in the fleet's .env or the host's FLEETD_ variables", cfg.Environment)
			return ref
		}
		contents = []byte(v)
		ref.Content = SecretBytes(contents)
	case cfg.Content != "":
		contents = []byte(cfg.Content)
		ref.Content = SecretBytes(contents)
	default:
		c.r.fleetf(obj.kind+"."+obj.key, "needs file:, environment: or content:")
		return ref
	}
	if obj.kind == "secrets" {
		c.secretData = append(c.secretData, SecretBytes(contents))
	}
	if ref.Digest == "" { // else the keyed digest of a SOPS file's plaintext
		sum := sha256.Sum256(contents)
		ref.Digest = "sha256:" + hex.EncodeToString(sum[:])
	}
	return ref
}

func sortRefs(refs []FileRef) []FileRef {
	slices.SortFunc(refs, func(a, b FileRef) int { return cmp.Compare(a.Target, b.Target) })
	return refs
}
