package fleets

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// HashVersion is the version of the spec hash this build computes. A
// container labelled with an older version is compared with that version's
// function (HashSpec), so upgrading fleetd never recreates every container.
// Bump it, and keep the old function, whenever Spec's encoding changes.
const HashVersion = "1"

// HashSpec returns the hex sha256 of spec under the given hash version, or an
// error for a version this build does not know.
func HashSpec(version string, spec Spec) (string, error) {
	switch version {
	case "1":
		return hashV1(spec)
	default:
		return "", fmt.Errorf("unknown hash version %q", version)
	}
}

// hashV1 hashes the JSON encoding of spec. encoding/json sorts map keys and
// the loader sorts every unordered list, so equal specs encode equally.
func hashV1(spec Spec) (string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("encode spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// EncodeSpec is the value of the io.fleetd.spec label.
func EncodeSpec(spec Spec) (string, error) {
	b, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("encode spec: %w", err)
	}
	return string(b), nil
}

// DecodeSpec parses an io.fleetd.spec label.
func DecodeSpec(label string) (Spec, error) {
	var s Spec
	if err := json.Unmarshal([]byte(label), &s); err != nil {
		return Spec{}, fmt.Errorf("decode %s label: %w", LabelSpec, err)
	}
	return s, nil
}

// Digest is the hex sha256 of the fleet's whole model (specs, replicas,
// rollout policy, placement, policy; paths relative to the repository):
// equal digests mean that two revisions ask the same of a host, so the
// agent applies only the fleets whose digest changed. A fleet that cannot
// be encoded gets a digest of its own, never equal to another's.
func Digest(f Fleet) string {
	b, err := json.Marshal(f)
	if err != nil {
		b = fmt.Appendf(nil, "unencodable fleet %s: %v", f.Name, err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
