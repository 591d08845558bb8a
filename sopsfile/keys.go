package sopsfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/pgp"
	"github.com/getsops/sops/v3/shamir"
)

// Keys are where the host keeps the private keys that decrypt a file's
// data key.
type Keys struct {
	// AgeKeyFile holds age identities, one a line, as age-keygen writes
	// them ("" or a missing file: no age key).
	AgeKeyFile string
	// GnuPGHome is a GnuPG home holding PGP secret keys (gpg is run
	// with it; "" or a missing directory: no PGP key).
	GnuPGHome string
}

// HostKeys finds the keys where sops finds them: SOPS_AGE_KEY_FILE, else
// sops/age/keys.txt in the user's configuration directory; GNUPGHOME,
// else ~/.gnupg.
func HostKeys() Keys {
	var k Keys
	if p, ok := os.LookupEnv("SOPS_AGE_KEY_FILE"); ok {
		k.AgeKeyFile = p
	} else if dir, err := os.UserConfigDir(); err == nil {
		k.AgeKeyFile = filepath.Join(dir, "sops", "age", "keys.txt")
	}
	if p, ok := os.LookupEnv("GNUPGHOME"); ok {
		k.GnuPGHome = p
	} else if home, err := os.UserHomeDir(); err == nil {
		k.GnuPGHome = filepath.Join(home, ".gnupg")
	}
	return k
}

// ErrNoKey is returned when none of the file's recipients is a key the
// host holds.
var ErrNoKey = errors.New("no key of this host decrypts it")

// dataKey decrypts the file's data key: from any key of its group, or,
// with several groups (Shamir's secret sharing), one share per group
// combined.
func (k Keys) dataKey(md *metadata) ([]byte, error) {
	groups := md.groups()
	if len(groups) == 0 {
		return nil, errors.New("sops metadata names no key")
	}
	var shares [][]byte
	var errs []error
	for _, g := range groups {
		share, err := k.groupKey(g)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		shares = append(shares, share)
	}
	if len(groups) == 1 {
		if len(shares) == 1 {
			return shares[0], nil
		}
		return nil, fmt.Errorf("%w (%s)", ErrNoKey, errors.Join(errs...))
	}
	threshold := md.ShamirThreshold
	if threshold == 0 {
		threshold = len(groups)
	}
	if len(shares) < threshold {
		return nil, fmt.Errorf("%w: %d of %d key groups needed, %d decrypted (%s)", ErrNoKey, threshold, len(groups), len(shares), errors.Join(errs...))
	}
	key, err := shamir.Combine(shares)
	if err != nil {
		return nil, fmt.Errorf("combine key groups: %w", err)
	}
	return key, nil
}

// groupKey decrypts the data key (or share) with the first key of the
// group the host holds; key sources other than age and pgp are named,
// since fleetd does not link them.
func (k Keys) groupKey(g keyGroup) ([]byte, error) {
	var tried []string
	ids, ageErr := k.ageIdentities()
	for _, a := range g.Age {
		if ageErr != nil || len(ids) == 0 {
			tried = append(tried, "age "+a.Recipient)
			continue
		}
		mk := &age.MasterKey{Recipient: a.Recipient, EncryptedKey: a.Enc}
		ids.ApplyToMasterKey(mk)
		if key, err := mk.Decrypt(); err == nil {
			return key, nil
		}
		tried = append(tried, "age "+a.Recipient)
	}
	for _, p := range g.PGP {
		if k.GnuPGHome == "" {
			tried = append(tried, "pgp "+p.Fingerprint)
			continue
		}
		mk := pgp.NewMasterKeyFromFingerprint(p.Fingerprint)
		mk.EncryptedKey = p.Enc
		pgp.GnuPGHome(k.GnuPGHome).ApplyToMasterKey(mk)
		if key, err := mk.Decrypt(); err == nil {
			return key, nil
		}
		tried = append(tried, "pgp "+p.Fingerprint)
	}
	if len(g.Other) > 0 {
		tried = append(tried, strings.Join(g.Other, ", ")+" (not supported by fleetd: only age and PGP keys)")
	}
	msg := "tried " + strings.Join(tried, ", ")
	if ageErr != nil {
		msg += "; " + ageErr.Error()
	}
	return nil, errors.New(msg)
}

// ageIdentities reads the age key file; a missing one holds no key.
func (k Keys) ageIdentities() (age.ParsedIdentities, error) {
	if k.AgeKeyFile == "" {
		return nil, nil
	}
	data, err := os.ReadFile(k.AgeKeyFile)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("age key file: %w", err)
	}
	var ids age.ParsedIdentities
	if err := ids.Import(string(data)); err != nil {
		return nil, fmt.Errorf("age key file %s: %w", k.AgeKeyFile, err)
	}
	return ids, nil
}
