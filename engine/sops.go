package engine

import (
	"fmt"

	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/sopsfile"
)

// decrypted returns a secret's or config's contents as the container must
// see them: a SOPS-encrypted file is decrypted in memory with the host's
// keys (as fleets.Load decrypted it), and its plaintext must match the
// digest the spec holds, else the file changed since the spec was made
// (a rollback to an older revision) and its contents are not available.
func decrypted(ref fleets.FileRef, data []byte) ([]byte, error) {
	if !sopsfile.Encrypted(ref.Source, data) {
		return data, nil
	}
	plain, err := sopsfile.Decrypt(ref.Source, data, sopsfile.HostKeys())
	if err != nil {
		return nil, fmt.Errorf("%s does not decrypt (sops): %w", ref.Name, err)
	}
	if plain.Digest != ref.Digest {
		return nil, fmt.Errorf("%s: contents not available (digest %s); its file changed since this spec was applied", ref.Name, ref.Digest)
	}
	return plain.Data, nil
}

// encryptedRef reports whether a secret's or config's file is
// SOPS-encrypted (its digest is the keyed one the loader gives them): no
// need to read it again.
func encryptedRef(ref fleets.FileRef) bool { return ref.Source != "" && ref.Encrypted() }
