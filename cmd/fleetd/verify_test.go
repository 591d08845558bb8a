package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/source"
)

// An ed25519 public key, as an allowed_signers line holds it.
const signerKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAo3D7CGN01tTYY/dLKXEv8RxRyxa32c51X0uKMhnMab"

func TestVerifyConfig(t *testing.T) {
	dir := t.TempDir()
	signers := filepath.Join(dir, "allowed_signers")
	os.WriteFile(signers, []byte("ada@example.com "+signerKey+"\n"), 0o644)
	notAKey := filepath.Join(dir, "ada.asc")
	os.WriteFile(notAKey, []byte("hello\n"), 0o644)

	cfg, err := loadConfig(t, "source:\n  url: /srv/fleet\n  verify:\n    ssh_allowed_signers: "+signers+"\n  allow_rewind: true\n", nil)
	if err != nil {
		t.Fatalf("valid verify config: %v", err)
	}
	if tr, err := cfg.Source.Verify.trust(); err != nil || tr == nil || !cfg.Source.AllowRewind {
		t.Errorf("trust = %v, %v; allow_rewind %v", tr, err, cfg.Source.AllowRewind)
	}
	if cfg, err := loadConfig(t, "source: {url: /srv/fleet}\n", nil); err != nil || cfg.Source.Verify != nil || cfg.Source.AllowRewind {
		t.Errorf("without verify: %+v, %v; want no verification and no rewinds", cfg.Source, err)
	}
	for _, c := range []struct{ text, want string }{
		{"source:\n  url: /srv/fleet\n  verify: {}\n", "source.verify: name openpgp_keys, ssh_allowed_signers or both"},
		{"source:\n  url: /srv/fleet\n  verify: {openpgp_keys: [" + notAKey + "]}\n", "source.verify.openpgp_keys[0]: " + notAKey},
		{"source:\n  url: /srv/fleet\n  verify: {ssh_allowed_signers: /nonexistent}\n", "source.verify.ssh_allowed_signers:"},
		{"source:\n  url: /srv/fleet\n  verify: {ssh_allowed_signer: x}\n", "ssh_allowed_signer"},
	} {
		if _, err := loadConfig(t, c.text, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %q: %v, want an error saying %q", c.text, err, c.want)
		}
	}
}

func TestRefusedForAgent(t *testing.T) {
	err := refusedForAgent(&source.RefusedError{Commit: "abc", Reason: source.ReasonRewind, Why: "went back"})
	var refused *agent.RefusedError
	if !errors.As(err, &refused) || refused.Commit != "abc" || refused.Reason != "Rewind" || refused.Why != "went back" {
		t.Errorf("refusedForAgent = %#v", err)
	}
	other := errors.New("down")
	if refusedForAgent(other) != other {
		t.Errorf("other errors changed")
	}
}
