package engine_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetd/fleetd/engine"
	"github.com/fleetd/fleetd/engine/dockertest"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/sopsfile/sopstest"
)

// TestCreateSops creates a container from a fleet whose env_file and
// secret file the sops CLI encrypted: the container gets the plaintext
// in its environment and its secret file, and no label holds it.
func TestCreateSops(t *testing.T) {
	cli, d := setup(t)
	engine.TmpfsSecrets(t, d)
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

// sopsSecretSpec loads a fleet whose secret pw the sops CLI encrypted, with
// plaintext plain, and returns its service's spec.
func sopsSecretSpec(t *testing.T, plain string) fleets.Spec {
	t.Helper()
	dir := t.TempDir()
	keyFile, recipient := sopstest.AgeKey(t, t.TempDir())
	t.Setenv("SOPS_AGE_KEY_FILE", keyFile)
	compose := "services:\n  api:\n    image: x\n    secrets: [{source: pw, mode: 0400}]\nsecrets:\n  pw:\n    file: ./pw.txt\n"
	for name, data := range map[string]string{"compose.yaml": compose, "pw.txt": plain} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sopstest.Encrypt(t, filepath.Join(dir, "pw.txt"), recipient)
	loaded, err := fleets.Load(t.Context(), dir, fleets.Host{Name: "h"})
	if err != nil {
		t.Fatal(err)
	}
	return loaded[0].Services[0].Spec
}

// TestCreateSopsTmpfs: a decrypted secret reaches the running container
// (read_only or not) bind-mounted from a file on the host's tmpfs; it is
// in neither the container's writable layer nor docker export, and its
// directory goes with the container. A secrets directory that is not on
// a tmpfs is refused.
func TestCreateSopsTmpfs(t *testing.T) {
	cli, d := setup(t)
	root := engine.TmpfsSecrets(t, d)
	const plain = "pw-in-tmpfs-only\n"
	spec := sopsSecretSpec(t, plain)
	ref, _ := dockertest.TestImage(t, cli, "v1")
	for _, readOnly := range []bool{false, true} {
		inst := instance(dockertest.Name(t, "tmpfs"), "api", 1, ref)
		inst.Spec.Secrets, inst.Spec.ReadOnly = spec.Secrets, readOnly
		id := createStarted(t, d, inst)
		if data, mode := copyOut(t, cli, id, "/run/secrets/pw"); data != plain || mode != 0o400 {
			t.Errorf("read_only %v: secret file %q mode %o, want the plaintext, 0400", readOnly, data, mode)
		}
		ins, err := cli.ContainerInspect(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var hostFile string
		for _, m := range ins.Mounts {
			if m.Destination == "/run/secrets/pw" {
				hostFile = m.Source
			}
		}
		if !strings.HasPrefix(hostFile, root+"/") {
			t.Fatalf("read_only %v: mounts %+v, want /run/secrets/pw from under %s", readOnly, ins.Mounts, root)
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(hostFile, &st); err != nil || st.Type != 0x01021994 {
			t.Errorf("host file %s: statfs type %#x, %v; want tmpfs", hostFile, st.Type, err)
		}
		if upper := ins.GraphDriver.Data["UpperDir"]; upper != "" {
			_ = filepath.WalkDir(upper, func(p string, e fs.DirEntry, err error) error {
				if err == nil && !e.IsDir() {
					if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(plain)) {
						t.Errorf("read_only %v: the plaintext is in the writable layer, %s", readOnly, p)
					}
				}
				return nil
			})
		}
		rc, err := cli.ContainerExport(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		exported, _ := io.ReadAll(rc)
		rc.Close()
		if len(exported) == 0 || bytes.Contains(exported, []byte(plain)) {
			t.Errorf("read_only %v: docker export (%d bytes) holds the plaintext", readOnly, len(exported))
		}
		if err := d.RemoveContainer(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Dir(hostFile)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("read_only %v: %s after the container was removed: %v, want it gone", readOnly, filepath.Dir(hostFile), err)
		}
	}

	engine.SetSecretsDir(d, t.TempDir())
	inst := instance(dockertest.Name(t, "disk"), "api", 1, ref)
	inst.Spec.Secrets = spec.Secrets
	if _, err := d.CreateContainer(t.Context(), inst); err == nil || !strings.Contains(err.Error(), "is not on a tmpfs") {
		t.Errorf("CreateContainer with secrets on disk: %v, want a refusal", err)
	}
}

// TestPruneSecretDirs: a stale directory no container mounts is removed,
// a young one is kept (a container may be being created with it).
func TestPruneSecretDirs(t *testing.T) {
	_, d := setup(t)
	root := engine.TmpfsSecrets(t, d)
	stale, young := filepath.Join(root, "gone.1"), filepath.Join(root, "new.1")
	for _, dir := range []string{stale, young} {
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := d.PruneSecretDirs(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale directory: %v, want it removed", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young directory: %v, want it kept", err)
	}
}
