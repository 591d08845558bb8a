package sopsfile_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLinksOnlyAgeAndPGP pins what the fleetd binary links of sops: its
// age and pgp key sources (and what they need), never a package that
// brings the cloud KMS clients, which would make the binary 86 MB.
func TestLinksOnlyAgeAndPGP(t *testing.T) {
	out, err := exec.Command("go", "list", "-e", "-deps", "github.com/fleetd/fleetd/cmd/fleetd").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	allowed := map[string]bool{"age": true, "pgp": true, "shamir": true, "logging": true}
	const sops = "github.com/getsops/sops/v3"
	var linked []string
	for _, pkg := range strings.Fields(string(out)) {
		switch {
		case pkg == sops || strings.HasPrefix(pkg, sops+"/"):
			linked = append(linked, pkg)
			if !allowed[strings.TrimPrefix(pkg, sops+"/")] {
				t.Errorf("fleetd links %s: only sops' age, pgp and shamir packages may be linked", pkg)
			}
		case strings.HasPrefix(pkg, "github.com/aws/"), strings.HasPrefix(pkg, "github.com/Azure/"),
			strings.HasPrefix(pkg, "cloud.google.com/go/kms"), strings.HasPrefix(pkg, "github.com/hashicorp/vault/"),
			strings.HasPrefix(pkg, "github.com/huaweicloud/"):
			t.Errorf("fleetd links %s, a cloud KMS client", pkg)
		}
	}
	if len(linked) == 0 {
		t.Errorf("fleetd links no sops package: the loader no longer decrypts SOPS files?")
	}
}
