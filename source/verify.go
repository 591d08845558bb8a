package source

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Trust is who may sign the commits fleetd follows: OpenPGP public keys
// (checked with go-git's Commit.Verify) and SSH keys listed in an
// allowed_signers file in git's format (checked with
// github.com/hiddeco/sshsig, namespace "git", as git's gpg.format=ssh
// signs). A nil *Trust verifies nothing.
type Trust struct {
	openpgp []string // one armored public key block each
	signers []allowedSigner
}

// sshNamespace is the SSHSIG namespace git signs commits in.
const sshNamespace = "git"

const (
	pgpSigPrefix = "-----BEGIN PGP SIGNATURE-----"
	sshSigPrefix = "-----BEGIN SSH SIGNATURE-----"
	pgpKeyBegin  = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
	pgpKeyEnd    = "-----END PGP PUBLIC KEY BLOCK-----"
)

// LoadTrust reads the trusted keys: armored OpenPGP public key files (each
// may hold several key blocks) and an allowed_signers file. Every file must
// hold at least one usable key; errors are ErrConfig and name the
// configuration key (source.verify.openpgp_keys[i],
// source.verify.ssh_allowed_signers) and the file.
func LoadTrust(openpgpFiles []string, allowedSignersFile string) (*Trust, error) {
	if len(openpgpFiles) == 0 && allowedSignersFile == "" {
		return nil, verifyError("verify", "name openpgp_keys, ssh_allowed_signers or both")
	}
	t := &Trust{}
	for i, path := range openpgpFiles {
		key := fmt.Sprintf("verify.openpgp_keys[%d]", i)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, verifyError(key, "%v", err)
		}
		blocks, err := pgpKeyBlocks(string(data))
		if err != nil {
			return nil, verifyError(key, "%s: %v", path, err)
		}
		t.openpgp = append(t.openpgp, blocks...)
	}
	if allowedSignersFile != "" {
		key := "verify.ssh_allowed_signers"
		data, err := os.ReadFile(allowedSignersFile)
		if err != nil {
			return nil, verifyError(key, "%v", err)
		}
		signers, err := parseAllowedSigners(string(data))
		if err != nil {
			return nil, verifyError(key, "%s: %v", allowedSignersFile, err)
		}
		if len(signers) == 0 {
			return nil, verifyError(key, "%s: no signer listed", allowedSignersFile)
		}
		t.signers = signers
	}
	return t, nil
}

// verifyError names the configuration key as the agent's file spells it
// (source.verify...).
func verifyError(field, format string, args ...any) error {
	return &sourceError{msg: fmt.Sprintf("source.%s: %s", field, fmt.Sprintf(format, args...)), kinds: []error{ErrConfig}}
}

// pgpKeyBlocks splits a file into its armored public key blocks, each
// checked to parse as a keyring.
func pgpKeyBlocks(s string) ([]string, error) {
	var blocks []string
	for {
		start := strings.Index(s, pgpKeyBegin)
		if start < 0 {
			break
		}
		end := strings.Index(s[start:], pgpKeyEnd)
		if end < 0 {
			return nil, errors.New("an armored public key block does not end")
		}
		block := s[start : start+end+len(pgpKeyEnd)]
		if _, err := openpgp.ReadArmoredKeyRing(strings.NewReader(block)); err != nil {
			return nil, fmt.Errorf("not an OpenPGP public key: %w", err)
		}
		blocks = append(blocks, block+"\n")
		s = s[start+end+len(pgpKeyEnd):]
	}
	if len(blocks) == 0 {
		return nil, errors.New("no armored OpenPGP public key (" + pgpKeyBegin + ") in it; export one with gpg --armor --export")
	}
	return blocks, nil
}

// sigState is what a commit's signature says.
type sigState int

const (
	sigNone       sigState = iota // trust not configured: not looked at
	sigUnsigned                   // no signature
	sigUnknownKey                 // signed by a key trust does not hold
	sigBad                        // a signature that does not verify, or one that cannot be read
	sigGood                       // signed by a trusted key
)

// signature is the result of checking a commit's signature: its state, the
// trusted signer (for sigGood) and why (for the others).
type signature struct {
	State  sigState
	Signer string
	Why    string
}

// check verifies c's signature against t.
func (t *Trust) check(c *object.Commit) signature {
	if t == nil {
		return signature{State: sigNone}
	}
	sig := strings.TrimSpace(c.PGPSignature)
	switch {
	case sig == "":
		return signature{State: sigUnsigned, Why: "it is not signed"}
	case strings.HasPrefix(sig, sshSigPrefix):
		return t.checkSSH(c, sig)
	case strings.HasPrefix(sig, pgpSigPrefix):
		return t.checkOpenPGP(c)
	}
	return signature{State: sigBad, Why: "its signature is in a format fleetd does not verify (OpenPGP and SSH are)"}
}

func (t *Trust) checkOpenPGP(c *object.Commit) signature {
	if len(t.openpgp) == 0 {
		return signature{State: sigUnknownKey, Why: "it is signed with OpenPGP and no source.verify.openpgp_keys are trusted"}
	}
	for _, keyring := range t.openpgp {
		e, err := c.Verify(keyring)
		switch {
		case err == nil:
			return signature{State: sigGood, Signer: pgpSigner(e)}
		case errors.Is(err, pgperrors.ErrUnknownIssuer):
			continue
		default:
			return signature{State: sigBad, Why: "its OpenPGP signature does not verify: " + err.Error()}
		}
	}
	return signature{State: sigUnknownKey, Why: "it is signed by an OpenPGP key that none of source.verify.openpgp_keys holds"}
}

func (t *Trust) checkSSH(c *object.Commit, armored string) signature {
	sig, err := sshsig.Unarmor([]byte(armored))
	if err != nil {
		return signature{State: sigBad, Why: "its SSH signature cannot be read: " + err.Error()}
	}
	fp := ssh.FingerprintSHA256(sig.PublicKey)
	if len(t.signers) == 0 {
		return signature{State: sigUnknownKey, Why: "it is signed with SSH key " + fp + " and no source.verify.ssh_allowed_signers is trusted"}
	}
	if sig.Namespace != sshNamespace {
		return signature{State: sigBad, Why: fmt.Sprintf("its SSH signature is for namespace %q, not %q", sig.Namespace, sshNamespace)}
	}
	payload, err := unsignedCommit(c)
	if err != nil {
		return signature{State: sigBad, Why: "encode the commit: " + err.Error()}
	}
	when := c.Committer.When
	var why string
	for _, s := range t.signers {
		if ssh.FingerprintSHA256(s.Key) != fp {
			continue
		}
		if why = s.allows(sshNamespace, when); why != "" {
			continue
		}
		if err := sshsig.Verify(bytes.NewReader(payload), sig, s.Key, sig.HashAlgorithm, sshNamespace); err != nil {
			return signature{State: sigBad, Why: "its SSH signature by key " + fp + " does not verify: " + err.Error()}
		}
		return signature{State: sigGood, Signer: s.Principals + " (" + fp + ")"}
	}
	if why != "" {
		return signature{State: sigUnknownKey, Why: "it is signed with SSH key " + fp + ", which source.verify.ssh_allowed_signers lists but " + why}
	}
	return signature{State: sigUnknownKey, Why: "it is signed with SSH key " + fp + ", which source.verify.ssh_allowed_signers does not list"}
}

// unsignedCommit is what a commit's signature covers: the commit object
// without its gpgsig header.
func unsignedCommit(c *object.Commit) ([]byte, error) {
	o := &plumbing.MemoryObject{}
	if err := c.EncodeWithoutSignature(o); err != nil {
		return nil, err
	}
	r, err := o.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(r)
	return b.Bytes(), err
}

// pgpSigner names an OpenPGP key by its primary identity and key id.
func pgpSigner(e *openpgp.Entity) string {
	id := strings.ToUpper(e.PrimaryKey.KeyIdString())
	if pi := e.PrimaryIdentity(); pi != nil {
		return pi.Name + " (" + id + ")"
	}
	return id
}
