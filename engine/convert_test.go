package engine

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/blkiodev"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/fleetd/fleetd/fleets"
)

func testInstance() fleets.Instance {
	return fleets.Instance{
		Name:    "shop-web-1",
		Fleet:   "shop",
		Service: "web",
		Slot:    1,
		RepoDir: "/srv/repo",
		Labels:  map[string]string{fleets.LabelManaged: "true", "team": "fleetd"},
		Spec: fleets.Spec{
			Image:       "shop/web:1",
			Command:     []string{"serve", "--port=8080"},
			Entrypoint:  []string{"/app"},
			Environment: map[string]string{"B": "2", "A": "1"},
			Labels:      map[string]string{"team": "user", "tier": "front"},
			User:        "1000:1000",
			WorkingDir:  "/work",
			Hostname:    "web",
			Ports: []fleets.Port{
				{Target: 8080, Published: "18080", HostIP: "127.0.0.1", Protocol: "tcp"},
				{Target: 9000, Published: "19000-19010", Protocol: "udp"},
				{Target: 9100, Protocol: "tcp"},
			},
			Expose: []string{"7000-7001", "7100/udp"},
			Mounts: []fleets.Mount{
				{Type: "volume", Source: "shop_data", Target: "/data"},
				{Type: "bind", Source: "repo:conf/web", Target: "/etc/web", ReadOnly: true},
				{Type: "bind", Source: "/var/log/web", Target: "/logs"},
				{Type: "tmpfs", Target: "/cache"},
			},
			Networks: []fleets.NetworkAttachment{
				{Network: "shop_back", Aliases: []string{"web"}},
				{Network: "shop_front", Aliases: []string{"web", "www"}, IPv4Address: "10.9.0.5", Priority: 10},
			},
			Healthcheck: &fleets.Healthcheck{
				Test: []string{"CMD", "/app", "health"}, Interval: 5 * time.Second, Timeout: time.Second,
				StartPeriod: 3 * time.Second, StartInterval: time.Second, Retries: 3,
			},
			Restart:         "on-failure:5",
			Resources:       fleets.Resources{Memory: 64 << 20, MemoryReservation: 32 << 20, NanoCPUs: 5e8, CPUShares: 512, PidsLimit: 100},
			StopSignal:      "SIGINT",
			StopGracePeriod: 1500 * time.Millisecond,
			Init:            true,
			ReadOnly:        true,
			CapAdd:          []string{"NET_ADMIN"},
			CapDrop:         []string{"ALL"},
			DNS:             []string{"1.1.1.1"},
			ExtraHosts:      []string{"db:10.0.0.2"},
			SecurityOpt:     []string{"no-new-privileges:true"},
			Tmpfs:           []string{"/run:size=64m", "/tmp"},
			Devices:         []string{"/dev/fuse", "/dev/sda:/dev/xvda:r"},
			GroupAdd:        []string{"audio"},
			Sysctls:         map[string]string{"net.core.somaxconn": "1024"},
			Ulimits:         map[string]fleets.Ulimit{"nofile": {Soft: 1024, Hard: 2048}},
			Logging:         &fleets.Logging{Driver: "json-file", Options: map[string]string{"max-size": "10m"}},
			ShmSize:         128 << 20,
		},
	}
}

func TestConvertConfig(t *testing.T) {
	cc, err := convert(testInstance(), "1.44")
	if err != nil {
		t.Fatal(err)
	}
	cfg := cc.Config
	check(t, "Env", cfg.Env, []string{"A=1", "B=2"})
	check(t, "Labels", cfg.Labels, map[string]string{fleets.LabelManaged: "true", "team": "fleetd", "tier": "front"})
	check(t, "Cmd", []string(cfg.Cmd), []string{"serve", "--port=8080"})
	check(t, "Entrypoint", []string(cfg.Entrypoint), []string{"/app"})
	check(t, "StopTimeout", *cfg.StopTimeout, 2)
	check(t, "StartInterval", cfg.Healthcheck.StartInterval, time.Second)
	check(t, "ExposedPorts", cfg.ExposedPorts, nat.PortSet{
		"8080/tcp": {}, "9000/udp": {}, "9100/tcp": {}, "7000/tcp": {}, "7001/tcp": {}, "7100/udp": {},
	})
}

func TestConvertHostConfig(t *testing.T) {
	cc, err := convert(testInstance(), "1.44")
	if err != nil {
		t.Fatal(err)
	}
	host := cc.Host
	check(t, "PortBindings", host.PortBindings, nat.PortMap{
		"8080/tcp": {{HostIP: "127.0.0.1", HostPort: "18080"}},
		"9000/udp": {{HostPort: "19000-19010"}},
		"9100/tcp": {{}},
	})
	check(t, "Binds", host.Binds, []string{"/srv/repo/conf/web:/etc/web:ro", "/var/log/web:/logs"})
	check(t, "Mounts", host.Mounts, []mount.Mount{
		{Type: mount.TypeVolume, Source: "shop_data", Target: "/data"},
		{Type: mount.TypeTmpfs, Target: "/cache"},
	})
	check(t, "RestartPolicy", host.RestartPolicy, container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 5})
	check(t, "PidsLimit", *host.PidsLimit, int64(100))
	check(t, "Memory", host.Memory, int64(64<<20))
	check(t, "Tmpfs", host.Tmpfs, map[string]string{"/run": "size=64m", "/tmp": ""})
	check(t, "Devices", host.Devices, []container.DeviceMapping{
		{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"},
		{PathOnHost: "/dev/sda", PathInContainer: "/dev/xvda", CgroupPermissions: "r"},
	})
	check(t, "Ulimits", *host.Ulimits[0], container.Ulimit{Name: "nofile", Soft: 1024, Hard: 2048})
	check(t, "Init", *host.Init, true)
	check(t, "LogConfig", host.LogConfig, container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m"}})
	check(t, "ReadonlyRootfs", host.ReadonlyRootfs, true)
}

// On API 1.44 every network is given at create; below, only the primary
// (highest priority) one, and the rest are connected before start.
func TestConvertNetworks(t *testing.T) {
	for _, tc := range []struct {
		api               string
		atCreate, connect []string
	}{
		{"1.44", []string{"shop_back", "shop_front"}, nil},
		{"1.41", []string{"shop_front"}, []string{"shop_back"}},
	} {
		cc, err := convert(testInstance(), tc.api)
		if err != nil {
			t.Fatal(err)
		}
		check(t, tc.api+" NetworkMode", string(cc.Host.NetworkMode), "shop_front")
		var atCreate, connect []string
		for name := range cc.Networking.EndpointsConfig {
			atCreate = append(atCreate, name)
		}
		for _, ep := range cc.Connect {
			connect = append(connect, ep.Network)
		}
		if len(atCreate) > 1 && atCreate[0] > atCreate[1] {
			atCreate[0], atCreate[1] = atCreate[1], atCreate[0]
		}
		check(t, tc.api+" at create", atCreate, tc.atCreate)
		check(t, tc.api+" connect", connect, tc.connect)
		front := cc.Networking.EndpointsConfig["shop_front"]
		check(t, tc.api+" aliases", front.Aliases, []string{"shop-web-1", "web", "www"})
		check(t, tc.api+" ipv4", front.IPAMConfig.IPv4Address, "10.9.0.5")
	}
	cc, _ := convert(testInstance(), "1.41")
	check(t, "1.41 StartInterval", cc.Config.Healthcheck.StartInterval, time.Duration(0))
	check(t, "1.41 back aliases", cc.Connect[0].Settings.Aliases, []string{"shop-web-1", "web"})
}

func TestConvertNetworkModeAndHealth(t *testing.T) {
	inst := testInstance()
	inst.Spec.NetworkMode = "host"
	inst.Spec.Healthcheck = &fleets.Healthcheck{Disable: true}
	inst.Spec.Ports = nil
	cc, err := convert(inst, "1.41")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "NetworkMode", string(cc.Host.NetworkMode), "host")
	if cc.Networking != nil || cc.Connect != nil {
		t.Errorf("host network mode got endpoints %+v, connect %+v", cc.Networking, cc.Connect)
	}
	check(t, "Healthcheck", cc.Config.Healthcheck.Test, []string{"NONE"})
}

func TestConvertErrors(t *testing.T) {
	for name, mutate := range map[string]func(*fleets.Spec){
		"restart":     func(s *fleets.Spec) { s.Restart = "sometimes" },
		"restart:N":   func(s *fleets.Spec) { s.Restart = "always:3" },
		"mount type":  func(s *fleets.Spec) { s.Mounts = []fleets.Mount{{Type: "npipe", Target: "/x"}} },
		"repo escape": func(s *fleets.Spec) { s.Mounts = []fleets.Mount{{Type: "bind", Source: "repo:../x", Target: "/x"}} },
		"expose":      func(s *fleets.Spec) { s.Expose = []string{"http"} },
		"device":      func(s *fleets.Spec) { s.Devices = []string{"a:b:c:d"} },
	} {
		inst := testInstance()
		mutate(&inst.Spec)
		if _, err := convert(inst, "1.44"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestRestartRoundTrip(t *testing.T) {
	for _, s := range []string{"no", "always", "unless-stopped", "on-failure", "on-failure:3"} {
		p, err := parseRestart(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := restartString(p); got != s {
			t.Errorf("restartString(parseRestart(%q)) = %q", s, got)
		}
	}
	check(t, "empty policy", restartString(container.RestartPolicy{}), "no")
}

func check[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

// Namespaces, runtime and cgroup settings go to the create request as
// docker compose sends them.
func TestConvertNamespacesAndCgroups(t *testing.T) {
	inst := testInstance()
	sp := &inst.Spec
	sp.Pid, sp.Ipc, sp.Uts, sp.UsernsMode = "host", "shareable", "host", "host"
	sp.Runtime, sp.Cgroup, sp.CgroupParent, sp.Isolation = "runc", "private", "/fleetd", "default"
	sp.CPUSet, sp.OomScoreAdj, sp.OomKillDisable, sp.MemSwapLimit = "0-1", 500, true, 128<<20
	sp.DNSOpt, sp.StorageOpt, sp.DeviceCgroupRules = []string{"ndots:2"}, map[string]string{"size": "1G"}, []string{"c 1:3 mr"}
	cc, err := convert(inst, "1.41")
	if err != nil {
		t.Fatal(err)
	}
	h := cc.Host
	check(t, "PidMode", h.PidMode, container.PidMode("host"))
	check(t, "IpcMode", h.IpcMode, container.IpcMode("shareable"))
	check(t, "UTSMode", h.UTSMode, container.UTSMode("host"))
	check(t, "UsernsMode", h.UsernsMode, container.UsernsMode("host"))
	check(t, "Runtime", h.Runtime, "runc")
	check(t, "CgroupnsMode", h.CgroupnsMode, container.CgroupnsMode("private"))
	check(t, "CgroupParent", h.CgroupParent, "/fleetd")
	check(t, "Isolation", h.Isolation, container.Isolation("default"))
	check(t, "CpusetCpus", h.CpusetCpus, "0-1")
	check(t, "OomScoreAdj", h.OomScoreAdj, 500)
	check(t, "OomKillDisable", *h.OomKillDisable, true)
	check(t, "MemorySwap", h.MemorySwap, int64(128<<20))
	check(t, "DNSOptions", h.DNSOptions, []string{"ndots:2"})
	check(t, "StorageOpt", h.StorageOpt, map[string]string{"size": "1G"})
	check(t, "DeviceCgroupRules", h.DeviceCgroupRules, []string{"c 1:3 mr"})
}

func TestConvertMoreAttributes(t *testing.T) {
	inst := testInstance()
	sp := &inst.Spec
	sp.Platform, sp.MacAddress, sp.MemSwappiness = "linux/amd64", "02:42:ac:11:00:42", 10
	sp.CPUCount, sp.CPUPercent, sp.CPUPeriod, sp.CPUQuota, sp.CPURTPeriod, sp.CPURTRuntime = 2, 50, 100000, 50000, 1000000, 950000
	sp.Blkio = &fleets.Blkio{Weight: 300, WeightDevice: map[string]uint16{"/dev/sdb": 2, "/dev/sda": 1},
		DeviceReadBps: map[string]int64{"/dev/sda": 12 << 20}, DeviceWriteIOps: map[string]int64{"/dev/sda": 30}}
	sp.DeviceRequests = []fleets.DeviceRequest{{Count: -1, Capabilities: []string{"gpu"}}, {Driver: "nvidia", DeviceIDs: []string{"0", "3"}, Capabilities: []string{"compute", "gpu"}}}
	sp.VolumesFrom = []string{"container:legacy:ro", "container:other"}
	cc, err := convert(inst, "1.41")
	if err != nil {
		t.Fatal(err)
	}
	h := cc.Host
	check(t, "Platform", *cc.Platform, ocispec.Platform{OS: "linux", Architecture: "amd64"})
	check(t, "Config.MacAddress before 1.44", cc.Config.MacAddress, "02:42:ac:11:00:42") //nolint:staticcheck // the field the old API reads
	check(t, "MemorySwappiness", *h.MemorySwappiness, int64(10))
	check(t, "CPU", []int64{h.CPUCount, h.CPUPercent, h.CPUPeriod, h.CPUQuota, h.CPURealtimePeriod, h.CPURealtimeRuntime},
		[]int64{2, 50, 100000, 50000, 1000000, 950000})
	check(t, "BlkioWeight", h.BlkioWeight, uint16(300))
	check(t, "BlkioWeightDevice", h.BlkioWeightDevice, []*blkiodev.WeightDevice{{Path: "/dev/sda", Weight: 1}, {Path: "/dev/sdb", Weight: 2}})
	check(t, "BlkioDeviceReadBps", h.BlkioDeviceReadBps, []*blkiodev.ThrottleDevice{{Path: "/dev/sda", Rate: 12 << 20}})
	check(t, "BlkioDeviceWriteIOps", h.BlkioDeviceWriteIOps, []*blkiodev.ThrottleDevice{{Path: "/dev/sda", Rate: 30}})
	check(t, "DeviceRequests", h.DeviceRequests, []container.DeviceRequest{
		{Count: -1, Capabilities: [][]string{{"gpu"}}},
		{Driver: "nvidia", DeviceIDs: []string{"0", "3"}, Capabilities: [][]string{{"compute", "gpu"}}},
	})
	check(t, "VolumesFrom", h.VolumesFrom, []string{"legacy:ro", "other"})

	cc, err = convert(inst, "1.44")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "Config.MacAddress from 1.44", cc.Config.MacAddress, "") //nolint:staticcheck // must stay empty
	check(t, "primary endpoint's MacAddress", cc.Networking.EndpointsConfig[string(cc.Host.NetworkMode)].MacAddress, "02:42:ac:11:00:42")

	sp.Annotations = map[string]string{"com.example.team": "shop"}
	if _, err := convert(inst, "1.41"); err == nil || !strings.Contains(err.Error(), "annotations") || !strings.Contains(err.Error(), "1.43") {
		t.Errorf("annotations on API 1.41: err = %v, want one naming annotations and 1.43", err)
	}
	cc, err = convert(inst, "1.43")
	if err != nil {
		t.Fatal(err)
	}
	check(t, "Annotations", cc.Host.Annotations, map[string]string{"com.example.team": "shop"})

	sp.Platform = "linux/amd64/v3/extra"
	if _, err := convert(inst, "1.44"); err == nil || !strings.Contains(err.Error(), "platform") {
		t.Errorf("bad platform: err = %v, want one naming platform", err)
	}
}

func TestWithPeers(t *testing.T) {
	spec := fleets.Spec{NetworkMode: "service:db", Pid: "service:db", Ipc: "host",
		VolumesFrom: []string{"service:data:ro", "container:legacy", "service:data"}}
	check(t, "PeerServices", spec.PeerServices(), []string{"data", "db"})
	got, err := withPeers(spec, map[string]string{"db": "d1", "data": "v1"})
	if err != nil {
		t.Fatal(err)
	}
	check(t, "NetworkMode", got.NetworkMode, "container:d1")
	check(t, "Pid", got.Pid, "container:d1")
	check(t, "Ipc", got.Ipc, "host")
	check(t, "VolumesFrom", got.VolumesFrom, []string{"container:v1:ro", "container:legacy", "container:v1"})
	check(t, "the spec given is unchanged", spec.VolumesFrom[0], "service:data:ro")
	check(t, "label", PeersLabel(map[string]string{"db": "d1", "data": "v1"}), "data=v1,db=d1")
	if _, err := withPeers(spec, map[string]string{"db": "d1"}); err == nil || !strings.Contains(err.Error(), "no running container of service data") {
		t.Errorf("missing peer: err = %v", err)
	}
}

func TestNewestPeer(t *testing.T) {
	check(t, "none", newest(nil), "")
	check(t, "newest", newest([]container.Summary{{ID: "a", Created: 5}, {ID: "c", Created: 9}, {ID: "b", Created: 7}}), "c")
	check(t, "tie by ID", newest([]container.Summary{{ID: "a", Created: 9}, {ID: "b", Created: 9}}), "b")
}

func TestRepoBindInCheckout(t *testing.T) {
	for _, tc := range []struct{ src, repo, checkout, want string }{
		{"repo:conf", "/c/deploy", "/c", "/c/deploy/conf"},
		{"repo:../conf", "/c/deploy", "/c", "/c/conf"},
		{"repo:../conf", "/c/deploy", "", ""},     // no checkout: the fleets' path is the boundary
		{"repo:../../etc", "/c/deploy", "/c", ""}, // leaves the checkout
		{"repo:/etc", "/c/deploy", "/c", ""},
		{"/srv/data", "/c/deploy", "/c", "/srv/data"},
	} {
		got, err := bindSource(tc.src, tc.repo, tc.checkout)
		if tc.want == "" {
			if err == nil || !strings.Contains(err.Error(), "leaves the repository") {
				t.Errorf("%s in %s (checkout %q): %q, %v; want it refused", tc.src, tc.repo, tc.checkout, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s in %s (checkout %q): %q, %v; want %s", tc.src, tc.repo, tc.checkout, got, err, tc.want)
		}
	}
}
