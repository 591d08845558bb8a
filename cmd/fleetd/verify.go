package main

import (
	"errors"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/source"
)

// verifyConfig is source.verify: who must have signed the head for the
// agent to take it. Without it, commits are not verified.
type verifyConfig struct {
	// OpenPGPKeys are files of armored OpenPGP public keys
	// (gpg --armor --export KEYID).
	OpenPGPKeys []string `yaml:"openpgp_keys"`
	// SSHAllowedSigners is an allowed_signers file in git's format
	// (gpg.ssh.allowedSignersFile).
	SSHAllowedSigners string `yaml:"ssh_allowed_signers"`
}

// trust reads the trusted keys; nil when source.verify is not set. Errors
// name the key at fault.
func (v *verifyConfig) trust() (*source.Trust, error) {
	if v == nil {
		return nil, nil
	}
	return source.LoadTrust(v.OpenPGPKeys, v.SSHAllowedSigners)
}

// refusedForAgent maps the source's refusal of a head to the agent's, so
// that the agent stalls the fleets rather than backing off as from an
// outage; other errors pass as they are.
func refusedForAgent(err error) error {
	var refused *source.RefusedError
	if errors.As(err, &refused) {
		return &agent.RefusedError{Commit: refused.Commit, Reason: refused.Reason, Why: refused.Why}
	}
	return err
}
