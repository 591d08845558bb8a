package fleets

import (
	"fmt"
	"os"
	"path/filepath"
)

// checkSecretFile refuses a secret file that is empty or that anyone on
// the host may write. An empty secret is almost always a mistake (a
// truncated checkout, a file created and never filled) that would start
// a service without its credential. A world-writable one lets any local
// user choose what the next container is given, and so what it trusts;
// a Git checkout never makes one, a directory on disk may.
func checkSecretFile(p string, data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%s: the secret file is empty", filepath.Base(p))
	}
	info, err := os.Stat(p)
	if err != nil {
		return err
	}
	if info.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("%s: the secret file is world-writable (mode %04o): chmod o-w it", filepath.Base(p), info.Mode().Perm())
	}
	return nil
}
