package engine

import (
	"os"
	"testing"
)

// TmpfsSecrets makes d write decrypted files under a new directory of
// /dev/shm (a tmpfs here, where /run may not be one), and returns it.
func TmpfsSecrets(t testing.TB, d *Docker) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "fleetd-secrets-")
	if err != nil {
		t.Fatal(err)
	}
	d.secretsDir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// SetSecretsDir sets where d writes decrypted files.
func SetSecretsDir(d *Docker, dir string) { d.secretsDir = dir }
