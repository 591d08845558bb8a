package fleets

import (
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// LoadHosts gives, for every host, exactly what Load gives for it — on
// every load archive (valid and invalid trees, per-host compose files,
// host facts in interpolation, placement) and a mix of hosts, including
// one listed twice.
func TestLoadHostsSameAsLoad(t *testing.T) {
	eachArchive(t, func(t *testing.T, root string, tc loadCase) {
		hosts := []Host{
			tc.host,
			{Name: "host2", Labels: map[string]string{"role": "db", "region": "us-east"}},
			{Name: tc.host.Name, Labels: map[string]string{"role": "db"}},
			{Name: "host3"},
			tc.host,
		}
		got, err := LoadHosts(t.Context(), root, hosts)
		if err != nil {
			t.Fatal(err)
		}
		for i, h := range hosts {
			want, wantErr := Load(t.Context(), root, h)
			if !reflect.DeepEqual(got[i].Fleets, want) {
				t.Errorf("host %d %+v: fleets differ from Load's\ngot  %+v\nwant %+v", i, h, got[i].Fleets, want)
			}
			if !sameProblems(got[i].Err, wantErr) {
				t.Errorf("host %d %+v: problems differ from Load's\ngot  %v\nwant %v", i, h, got[i].Err, wantErr)
			}
		}
	})
}

func sameProblems(a, b error) bool {
	var pa, pb ProblemList
	errors.As(a, &pa)
	errors.As(b, &pb)
	return (a == nil) == (b == nil) && slices.Equal(pa, pb)
}

// A fleet whose files never mention the host's variables is shared
// between hosts; one that interpolates them, in its compose file or its
// .env, is not.
func TestHostFree(t *testing.T) {
	root := t.TempDir()
	for name, data := range map[string]string{
		"plain/compose.yaml":   "services:\n  web:\n    image: nginx\n    env_file: [web.env]\n",
		"plain/web.env":        "A=1\n",
		"facts/compose.yaml":   "services:\n  web:\n    image: nginx:${FLEETD_HOST}\n",
		"dotenv/compose.yaml":  "services:\n  web:\n    image: nginx:${TAG}\n",
		"dotenv/.env":          "TAG=${FLEETD_HOST_LABEL_ROLE:-x}\n",
		"envfile/compose.yaml": "services:\n  web:\n    image: nginx\n    env_file: [web.env]\n",
		"envfile/web.env":      "WHERE=${FLEETD_HOST}\n",
		// Written so that the raw bytes never spell it: YAML escapes.
		"escaped/compose.yaml": "services:\n  web:\n    image: \"nginx:${FLEETD\\x5fHOST}\"\n",
		"folded/compose.yaml":  "services:\n  web:\n    image: \"nginx:${FLEETD_\\\n      HOST}\"\n",
		"barekey/compose.yaml": "services:\n  web:\n    image: nginx\n    environment: [\"FLEETD\\x5fHOST\"]\n",
		"extends/compose.yaml": "services:\n  web:\n    extends: {file: base.yaml, service: web}\n",
		"extends/base.yaml":    "services:\n  web:\n    image: \"nginx:${FLEETD\\x5fHOST_LABEL_ROLE:-x}\"\n",
	} {
		writeFile(t, root, name, []byte(data))
	}
	abs, _ := filepath.Abs(root)
	dirs, _, err := discover(abs, Host{Name: "h"}, "")
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := loadAll(t.Context(), abs, "", dirs, Host{Name: "h"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"plain": true, "facts": false, "dotenv": false, "envfile": false,
		"escaped": false, "folded": false, "barekey": false, "extends": false}
	for i, lf := range loaded {
		if lf.r.failed() {
			t.Fatalf("%s: %v", dirs[i].rel, lf.r.problems)
		}
		if lf.hostFree != want[dirs[i].rel] {
			t.Errorf("%s: hostFree = %v, want %v", dirs[i].rel, lf.hostFree, want[dirs[i].rel])
		}
	}
}
