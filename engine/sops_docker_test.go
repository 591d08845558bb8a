package engine_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/sopsfile/sopstest"
)

// TestCreateSops creates a container from a fleet whose env_file and
// secret file the sops CLI encrypted: the container gets the plaintext
// in its environment and its secret file, and no label holds it.
func TestCreateSops(t *testing.T) {
	cli, d := setup(t)
	dir := t.TempDir()
	keyFile, recipient := sopstest.AgeKey(t, t.TempDir())
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
	compose := "services:\n  api:\n    image: x\n    env_file: [secret.env]\n    secrets: [pw]\nsecrets:\n  pw:\n    file: ./pw.txt\n"
	for name, data := range map[string]string{"compose.yaml": compose, "secret.env": "DB_PASSWORD=hunter2\n", "pw.txt": "pw-plain\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sopstest.Encrypt(t, filepath.Join(dir, "secret.env"), recipient)
	sopstest.Encrypt(t, filepath.Join(dir, "pw.txt"), recipient)
	loaded, err := fleets.Load(t.Context(), dir, fleets.Host{Name: "h"})
	if err != nil {
		t.Fatal(err)
	}
	want := loaded[0].Services[0].Spec

	ref, _ := dockertest.TestImage(t, cli, "v1")
	inst := instance(dockertest.Name(t, "sops"), "api", 1, ref)
	inst.Spec.SecretEnv, inst.Spec.Secrets = want.SecretEnv, want.Secrets
	label, err := fleets.EncodeSpec(inst.Spec)
	if err != nil {
		t.Fatal(err)
	}
	inst.Labels[fleets.LabelSpec] = label
	id := create(t, d, inst)
	ins, err := cli.ContainerInspect(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ins.Config.Env, "DB_PASSWORD=hunter2") {
		t.Errorf("env %v, want DB_PASSWORD from the encrypted env_file", ins.Config.Env)
	}
	for k, v := range ins.Config.Labels {
		if strings.Contains(v, "hunter2") || strings.Contains(v, "pw-plain") {
			t.Errorf("label %s holds plaintext", k)
		}
	}
	if data, _ := copyOut(t, cli, id, "/run/secrets/pw"); data != "pw-plain\n" {
		t.Errorf("secret file %q, want the plaintext", data)
	}
}
