package fleets

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// buildCompose is a fleet with one built service whose build: section
// holds the given lines (indented under it), a secret from a file and one
// from the environment.
func buildCompose(build string) string {
	var b strings.Builder
	b.WriteString("services:\n  api:\n    build:\n      context: ./src\n")
	for _, l := range strings.Split(strings.TrimSpace(build), "\n") {
		if l != "" {
			b.WriteString("      " + l + "\n")
		}
	}
	b.WriteString("secrets:\n  npm: {file: ./npmrc}\n  token: {environment: TOKEN}\n")
	return b.String()
}

// loadBuild loads the fleet in files and returns its service's build.
func loadBuild(t *testing.T, files map[string]string) *Build {
	t.Helper()
	root := t.TempDir()
	for name, data := range files {
		writeFile(t, root, name, []byte(data))
	}
	fl, err := Load(t.Context(), root, Host{Name: "host1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(fl) != 1 || len(fl[0].Services) != 1 || fl[0].Services[0].Build == nil {
		t.Fatalf("loaded %+v, want one fleet with one built service", fl)
	}
	return fl[0].Services[0].Build
}

// Every option that changes the image changes the build's hash, and so the
// image tag, so that a change rebuilds; cache_from does not (it only says
// where cached layers may come from).
func TestBuildOptionsHash(t *testing.T) {
	base := map[string]string{
		"app/src/Dockerfile": "FROM scratch\n",
		"app/npmrc":          "token-1",
		"app/.env":           "TOKEN=env-1\n",
	}
	load := func(t *testing.T, build string, change map[string]string) *Build {
		files := map[string]string{"app/compose.yaml": buildCompose(build)}
		for k, v := range base {
			files[k] = v
		}
		for k, v := range change {
			files[k] = v
		}
		return loadBuild(t, files)
	}
	const baseline = "secrets: [npm, token]\nssh: [default]"
	want := load(t, baseline, nil).ContextHash
	for _, tc := range []struct {
		name    string
		build   string
		files   map[string]string
		rebuild bool
	}{
		{name: "same inputs", build: baseline},
		{name: "cache_from", build: baseline + "\ncache_from: [app:cache]"},
		{name: "label", build: baseline + "\nlabels: {team: shop}", rebuild: true},
		{name: "network", build: baseline + "\nnetwork: host", rebuild: true},
		{name: "extra host", build: baseline + "\nextra_hosts: [db=10.0.0.5]", rebuild: true},
		{name: "shm_size", build: baseline + "\nshm_size: 64m", rebuild: true},
		{name: "platform", build: baseline + "\nplatforms: [linux/arm64]", rebuild: true},
		{name: "secret file contents", build: baseline, files: map[string]string{"app/npmrc": "token-2"}, rebuild: true},
		{name: "secret from environment", build: baseline, files: map[string]string{"app/.env": "TOKEN=env-2\n"}, rebuild: true},
		{name: "secret id", build: "secrets: [{source: npm, target: npmrc}, token]\nssh: [default]", rebuild: true},
		{name: "ssh id", build: "secrets: [npm, token]\nssh: [github=/etc/fleetd/github_key]", rebuild: true},
		{name: "target", build: baseline + "\ntarget: runtime", rebuild: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := load(t, tc.build, tc.files).ContextHash
			if rebuilt := got != want; rebuilt != tc.rebuild {
				t.Errorf("hash changed = %v, want %v", rebuilt, tc.rebuild)
			}
		})
	}
}

// A build that uses none of the newer options keeps the hash it had
// before fleetd took them, so upgrading fleetd rebuilds nothing.
func TestBuildHashWithoutOptionsUnchanged(t *testing.T) {
	b := loadBuild(t, map[string]string{
		"app/compose.yaml":   "services:\n  api:\n    build: {context: ./src, args: {V: '1'}, target: t}\n",
		"app/src/Dockerfile": "FROM scratch AS t\n",
	})
	// The hash of this build as fleetd computed it before it took the
	// options (commit 38d645a).
	const before = "2f6f0907cdbbac43842bc0d68a818b575bfd266517e269a097b8ae57ed45da5b"
	if b.ContextHash != before {
		t.Errorf("context hash = %s, want %s (the hash of the same build before build options)", b.ContextHash, before)
	}
}

// Build secret contents reach neither the model's JSON (digests, labels,
// plans) nor any fmt rendering of the build.
func TestBuildSecretsNeverShown(t *testing.T) {
	b := loadBuild(t, map[string]string{
		"app/compose.yaml":   buildCompose("secrets: [npm, token]"),
		"app/src/Dockerfile": "FROM scratch\n",
		"app/npmrc":          "file-s3cret",
		"app/.env":           "TOKEN=env-s3cret\n",
	})
	if len(b.Secrets) != 2 || b.Secrets[0].Source == "" || string(b.Secrets[1].Content) != "env-s3cret" {
		t.Fatalf("secrets = %+v, want npm from its file and token held in memory", b.Secrets)
	}
	js, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, shown := range []string{string(js), fmt.Sprintf("%v", b), fmt.Sprintf("%+v", *b), fmt.Sprintf("%#v", *b), fmt.Sprintf("%x", b.Secrets[1].Content)} {
		if strings.Contains(shown, "s3cret") || strings.Contains(shown, fmt.Sprintf("%x", "env-s3cret")) {
			t.Errorf("secret contents shown: %s", shown)
		}
	}
	if !strings.Contains(string(js), `"digest":"sha256:`) {
		t.Errorf("JSON %s lacks the secrets' digests", js)
	}
}
