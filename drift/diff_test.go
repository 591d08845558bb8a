package drift_test

import (
	"strings"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

func TestDiff(t *testing.T) {
	api := service("api", 2)
	db := service("db", 1)
	web := fleet("web", api, db)
	desired := []fleets.Fleet{web}
	joined := []fleets.Fleet{fleet("web", service("api", 2, func(s *fleets.Service) {
		s.Spec.NetworkMode = "service:db"
	}), db)}
	hostNet := []fleets.Fleet{fleet("web", api, service("db", 1, func(s *fleets.Service) {
		s.Spec.NetworkMode = "host"
	}))}

	tests := []struct {
		name    string
		desired []fleets.Fleet // default: desired
		mutate  func(obs *drift.Observed)
		want    string
	}{
		{
			name:   "in sync",
			mutate: func(*drift.Observed) {},
			want:   "",
		},
		{
			name:   "missing replica",
			mutate: func(obs *drift.Observed) { remove(obs, "web-api-2") },
			want:   "web/api#2 web-api-2 missing\n",
		},
		{
			name:    "scale down",
			desired: []fleets.Fleet{fleet("web", service("api", 1), db)},
			want:    "web/api#2 web-api-2 extra (slot 2 beyond replicas 1)\n",
		},
		{
			name:    "scale to zero",
			desired: []fleets.Fleet{fleet("web", service("api", 0), db)},
			want: "web/api#1 web-api-1 extra (slot 1 beyond replicas 0)\n" +
				"web/api#2 web-api-2 extra (slot 2 beyond replicas 0)\n",
		},
		{
			name: "duplicate slot mid-rollout",
			mutate: func(obs *drift.Observed) {
				c := replica("web", api, 2)
				c.ID, c.Name = "id-next", "web-api-2-next"
				c.Labels[fleets.LabelReplaces] = "web-api-2"
				obs.Containers = append([]drift.Container{c}, obs.Containers...)
			},
			want: "web/api#2 web-api-2-next extra (duplicate in slot 2, held by web-api-2; replaces web-api-2 (rollout in progress))\n",
		},
		{
			name: "rollout finished but not renamed",
			mutate: func(obs *drift.Observed) {
				remove(obs, "web-api-2")
				c := replica("web", api, 2)
				c.ID, c.Name = "id-next", "web-api-2-next"
				c.Labels[fleets.LabelReplaces] = "web-api-2"
				obs.Containers = append(obs.Containers, c)
			},
			want: "web/api#2 web-api-2 modified [name: web-api-2-next→web-api-2] (changed out of band)\n",
		},
		{
			name: "spec changed in git",
			desired: []fleets.Fleet{fleet("web", service("api", 2, func(s *fleets.Service) {
				s.Spec.Image = "app:v2"
				s.Spec.Environment = map[string]string{"LOG_LEVEL": "debug", "DB_PASSWORD": "changed", "NEW": "x"}
				s.Spec.Labels = map[string]string{"team": "core", "api_token": "abc"}
				s.Spec.Resources.Memory = 512 << 20
			}), db)},
			want: strings.Repeat("", 0) +
				"web/api#1 web-api-1 spec [environment.DB_PASSWORD: <redacted>→<redacted>] [environment.LOG_LEVEL: info→debug] [environment.NEW: →<redacted>] [image: app:v1→app:v2] [labels.api_token: →<redacted>] [labels.team: →core] [resources.memory: 268435456→536870912]\n" +
				"web/api#2 web-api-2 spec [environment.DB_PASSWORD: <redacted>→<redacted>] [environment.LOG_LEVEL: info→debug] [environment.NEW: →<redacted>] [image: app:v1→app:v2] [labels.api_token: →<redacted>] [labels.team: →core] [resources.memory: 268435456→536870912]\n",
		},
		{
			name: "unknown hash version",
			mutate: func(obs *drift.Observed) {
				find(obs, "web-db-1").Labels[fleets.LabelHashVersion] = "99"
			},
			want: `web/db#1 web-db-1 spec (hash version "99" is unknown to this fleetd; spec hash differs but no field does)` + "\n",
		},
		{
			name: "spec label missing",
			mutate: func(obs *drift.Observed) {
				c := find(obs, "web-db-1")
				c.Labels[fleets.LabelSpecHash] = "0000"
				delete(c.Labels, fleets.LabelSpec)
			},
			want: "web/db#1 web-db-1 spec (spec label missing; cannot name fields)\n",
		},
		{
			name: "spec label malformed",
			mutate: func(obs *drift.Observed) {
				c := find(obs, "web-db-1")
				c.Labels[fleets.LabelSpecHash] = "0000"
				c.Labels[fleets.LabelSpec] = "{not json"
			},
			want: "web/db#1 web-db-1 spec (spec label malformed; cannot name fields)\n",
		},
		{
			name: "tag moved to another image",
			mutate: func(obs *drift.Observed) {
				obs.Images["app:v1"] = "sha256:fedcba9876543210fedcba"
			},
			want: "web/api#1 web-api-1 image [image_id: 0123456789ab→fedcba987654] (app:v1 now resolves to another image)\n" +
				"web/api#2 web-api-2 image [image_id: 0123456789ab→fedcba987654] (app:v1 now resolves to another image)\n" +
				"web/db#1 web-db-1 image [image_id: 0123456789ab→fedcba987654] (app:v1 now resolves to another image)\n",
		},
		{
			name:   "tag not present locally",
			mutate: func(obs *drift.Observed) { delete(obs.Images, "app:v1") },
			want:   "",
		},
		{
			name: "stopped",
			mutate: func(obs *drift.Observed) {
				c := find(obs, "web-api-2")
				c.State, c.Status = "exited", "Exited (137) 3 seconds ago"
				c.Inspected.ExitCode, c.Inspected.OOMKilled = 137, true
				c = find(obs, "web-db-1")
				c.State, c.Status, c.Inspected = "created", "Created", nil
			},
			want: "web/api#2 web-api-2 stopped (Exited (137) 3 seconds ago; OOM killed)\n" +
				"web/db#1 web-db-1 stopped (Created)\n",
		},
		{
			name: "paused restarting unhealthy",
			mutate: func(obs *drift.Observed) {
				c := find(obs, "web-api-1")
				c.State, c.Status = "paused", "Up 2 hours (Paused)"
				c = find(obs, "web-api-2")
				c.State, c.Status = "restarting", "Restarting (1) 2 seconds ago"
				c.Inspected.RestartCount, c.Inspected.ExitCode = 7, 1
				c = find(obs, "web-db-1")
				c.Health, c.Status = "unhealthy", "Up 2 hours (unhealthy)"
				c.Inspected.HealthLog = "curl: (7) Failed to connect\nto localhost port 80\n"
			},
			want: "web/api#1 web-api-1 paused (Up 2 hours (Paused))\n" +
				"web/api#2 web-api-2 restarting (Restarting (1) 2 seconds ago; restarted 7 times, last exit code 1)\n" +
				"web/db#1 web-db-1 unhealthy (Up 2 hours (unhealthy); last check: curl: (7) Failed to connect to localhost port 80)\n",
		},
		{
			name:   "renamed",
			mutate: func(obs *drift.Observed) { find(obs, "web-db-1").Name = "mydb" },
			want:   "web/db#1 web-db-1 modified [name: mydb→web-db-1] (changed out of band)\n",
		},
		{
			name:    "joined a running peer",
			desired: joined,
			mutate: func(obs *drift.Observed) {
				*obs = snapshot(joined)
				find(obs, "web-api-1").Labels[fleets.LabelPeers] = "db=" + find(obs, "web-db-1").ID
			},
			want: "",
		},
		{
			name: "a peers label on a service that joins nothing (an image's) is no record",
			mutate: func(obs *drift.Observed) {
				find(obs, "web-api-1").Labels[fleets.LabelPeers] = "db=0123456789abcdef"
			},
			want: "",
		},
		{
			name:    "joined a peer that is gone or stopped",
			desired: joined,
			mutate: func(obs *drift.Observed) {
				*obs = snapshot(joined)
				find(obs, "web-api-1").Labels[fleets.LabelPeers] = "db=0123456789abcdef"
				find(obs, "web-api-2").Labels[fleets.LabelPeers] = "db=" + find(obs, "web-db-1").ID
				find(obs, "web-db-1").State, find(obs, "web-db-1").Status = "exited", "Exited (1) 3 seconds ago"
			},
			want: "web/api#1 web-api-1 modified [peers.db: 0123456789ab gone→a running container of db] (changed out of band)\n" +
				"web/api#2 web-api-2 modified [peers.db: id-web-db-1 exited→a running container of db] (changed out of band)\n" +
				"web/db#1 web-db-1 stopped (Exited (1) 3 seconds ago)\n",
		},
		{
			name:   "network disconnected",
			mutate: func(obs *drift.Observed) { find(obs, "web-db-1").Networks = nil },
			want:   "web/db#1 web-db-1 modified [networks.web_default: disconnected→connected] (changed out of band)\n",
		},
		{
			name:    "network mode host has no networks to check",
			desired: hostNet,
			mutate: func(obs *drift.Observed) {
				*obs = snapshot(hostNet)
				find(obs, "web-db-1").Networks = nil
			},
			want: "",
		},
		{
			name: "docker update",
			mutate: func(obs *drift.Observed) {
				in := find(obs, "web-db-1").Inspected
				in.Memory, in.RestartPolicy, in.PidsLimit = 1<<30, "no", -1
			},
			want: "web/db#1 web-db-1 modified [resources.memory: 1073741824→268435456] [restart: no→unless-stopped] (changed out of band)\n",
		},
		{
			name: "git change is spec drift, not modified",
			desired: []fleets.Fleet{fleet("web", api, service("db", 1, func(s *fleets.Service) {
				s.Spec.Resources.Memory = 1 << 30
				s.Spec.Restart = "always"
			}))},
			want: "web/db#1 web-db-1 spec [resources.memory: 268435456→1073741824] [restart: unless-stopped→always]\n",
		},
		{
			name:    "fleet left the spec",
			desired: []fleets.Fleet{},
			want: "web/api#1 web-api-1 orphan (fleet web is not in the spec)\n" +
				"web/api#2 web-api-2 orphan (fleet web is not in the spec)\n" +
				"web/db#1 web-db-1 orphan (fleet web is not in the spec)\n",
		},
		{
			name: "fleet no longer targets the host",
			desired: []fleets.Fleet{func() fleets.Fleet {
				f := fleet("web", api, db)
				f.Targets = false
				return f
			}()},
			mutate: func(obs *drift.Observed) { *obs = snapshot(desired) },
			want: "web/api#1 web-api-1 orphan (fleet web does not target this host)\n" +
				"web/api#2 web-api-2 orphan (fleet web does not target this host)\n" +
				"web/db#1 web-db-1 orphan (fleet web does not target this host)\n",
		},
		{
			name: "service left or does not target",
			desired: []fleets.Fleet{fleet("web", service("db", 1, func(s *fleets.Service) {
				s.Targets = false
			}))},
			want: "web/api#1 web-api-1 orphan (service api is not in fleet web)\n" +
				"web/api#2 web-api-2 orphan (service api is not in fleet web)\n" +
				"web/db#1 web-db-1 orphan (service db does not target this host)\n",
		},
		{
			name: "unmanaged container in a missing slot's name",
			mutate: func(obs *drift.Observed) {
				remove(obs, "web-api-2")
				obs.Containers = append(obs.Containers, unmanaged("web-api-2"))
			},
			want: "web/api#2 web-api-2 missing\n" +
				"web/api#2 web-api-2 conflict (an unmanaged container holds the name; fleetd will not remove it)\n",
		},
		{
			name: "unmanaged containers are otherwise ignored",
			mutate: func(obs *drift.Observed) {
				u := unmanaged("other")
				u.State = "exited"
				obs.Containers = append(obs.Containers, u)
				fake := replica("gone", api, 9) // fleetd labels but not managed=true
				fake.Labels[fleets.LabelManaged] = "false"
				fake.Name = "gone-api-9"
				obs.Containers = append(obs.Containers, fake)
			},
			want: "",
		},
		{
			name: "unmanaged network holds a fleet network's name",
			desired: []fleets.Fleet{func() fleets.Fleet {
				f := fleet("web", api, db)
				f.Networks = append(f.Networks, fleets.Network{Key: "ext", Name: "shared", External: true})
				return f
			}()},
			mutate: func(obs *drift.Observed) {
				obs.Networks = []drift.Network{{ID: "n1", Name: "web_default"}, {ID: "n2", Name: "shared"}}
			},
			want: "web/#0 web_default conflict (an unmanaged network holds the name of network default)\n",
		},
		{
			name: "tampered labels",
			mutate: func(obs *drift.Observed) {
				find(obs, "web-api-1").Labels[fleets.LabelSlot] = "one"
				delete(find(obs, "web-db-1").Labels, fleets.LabelFleet)
			},
			want: "/db#0 web-db-1 modified (labels tampered: label io.fleetd.fleet is missing)\n" +
				"web/api#0 web-api-1 modified (labels tampered: label io.fleetd.slot=\"one\" is not a replica number)\n" +
				"web/api#1 web-api-1 missing (name held by managed container id-web-api-1)\n" +
				"web/db#1 web-db-1 missing (name held by managed container id-web-db-1)\n",
		},
		{
			name: "container_name",
			desired: []fleets.Fleet{fleet("web", service("db", 1, func(s *fleets.Service) {
				s.Spec.ContainerName = "postgres"
			}))},
			mutate: func(obs *drift.Observed) {
				remove(obs, "web-api-1")
				remove(obs, "web-api-2")
				find(obs, "web-db-1").Name = "postgres"
			},
			want: "web/db#1 postgres spec [container_name: →postgres]\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obs := snapshot(desired)
			if tt.mutate != nil {
				tt.mutate(&obs)
			}
			d := desired
			if tt.desired != nil {
				d = tt.desired
			}
			got := lines(drift.Diff(d, obs))
			if got != tt.want {
				t.Errorf("Diff:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestDiffOrderIndependent(t *testing.T) {
	desired := []fleets.Fleet{fleet("web", service("api", 3), service("db", 1))}
	obs := snapshot(desired)
	find(&obs, "web-api-3").State = "exited"
	remove(&obs, "web-api-1")
	want := lines(drift.Diff(desired, obs))
	for i, j := 0, len(obs.Containers)-1; i < j; i, j = i+1, j-1 {
		obs.Containers[i], obs.Containers[j] = obs.Containers[j], obs.Containers[i]
	}
	if got := lines(drift.Diff(desired, obs)); got != want {
		t.Errorf("reversed input:\n%s\nwant:\n%s", got, want)
	}
}

func TestContainerName(t *testing.T) {
	s := service("api", 3)
	if got := drift.ContainerName("web", s, 3); got != "web-api-3" {
		t.Errorf("ContainerName = %q", got)
	}
	s.Spec.ContainerName = "fixed"
	if got := drift.ContainerName("web", s, 1); got != "fixed" {
		t.Errorf("ContainerName with container_name = %q", got)
	}
}
