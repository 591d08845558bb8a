package fleets

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestGrants(t *testing.T) {
	tests := []struct {
		name string
		f    Fleet
		want []string // service/field=value
	}{
		{"none", Fleet{Services: []Service{{Name: "web", Spec: Spec{
			Image: "x", NetworkMode: "bridge", Pid: "service:db", Ipc: "private", CapDrop: []string{"ALL"},
			Mounts: []Mount{{Type: "volume", Source: "app_data", Target: "/data"}, {Type: "bind", Source: "repo:app/conf", Target: "/conf"}, {Type: "tmpfs", Target: "/tmp"}},
		}}}}, nil},
		{"privileged and hooks", Fleet{Services: []Service{{Name: "web", Spec: Spec{Privileged: true},
			PostStart: []Hook{{Command: []string{"a"}}, {Command: []string{"b"}, Privileged: true}}, PreStop: []Hook{{Privileged: true}}}}},
			[]string{"web/post_start.1.privileged=true", "web/pre_stop.0.privileged=true", "web/privileged=true"}},
		{"capabilities as docker spells them", Fleet{Services: []Service{{Name: "web", Spec: Spec{CapAdd: []string{"cap_net_admin", "SYS_TIME"}}}}},
			[]string{"web/cap_add.NET_ADMIN=NET_ADMIN", "web/cap_add.SYS_TIME=SYS_TIME"}},
		{"host namespaces", Fleet{Services: []Service{{Name: "web", Spec: Spec{NetworkMode: "host", Pid: "host", Ipc: "host", Uts: "host", UsernsMode: "host", Cgroup: "host"}}}},
			[]string{"web/cgroup=host", "web/ipc=host", "web/network_mode=host", "web/pid=host", "web/userns_mode=host", "web/uts=host"}},
		{"binds and devices", Fleet{Services: []Service{{Name: "web", Spec: Spec{
			Mounts:  []Mount{{Type: "bind", Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"}, {Type: "bind", Source: "/srv/logs", Target: "/logs", ReadOnly: true}},
			Devices: []string{"/dev/ttyUSB0:/dev/ttyUSB0:rwm"},
		}}}}, []string{"web/devices./dev/ttyUSB0=/dev/ttyUSB0:/dev/ttyUSB0:rwm", "web/mounts./logs=/srv/logs (read-only)", "web/mounts./var/run/docker.sock=/var/run/docker.sock"}},
		{"a local volume that binds", Fleet{Volumes: []Volume{
			{Key: "root", DriverOpts: map[string]string{"type": "none", "o": "bind", "device": "/"}},
			{Key: "nfs", DriverOpts: map[string]string{"type": "nfs", "o": "addr=10.0.0.1,rw", "device": ":/export"}},
			{Key: "ext", External: true, DriverOpts: map[string]string{"o": "bind", "device": "/"}},
		}}, []string{"/volumes.root.driver_opts.device=/"}},
		{"a local volume that mounts a disk, an image file, an overlay", Fleet{Volumes: []Volume{
			{Key: "disk", DriverOpts: map[string]string{"type": "ext4", "device": "/dev/sda1"}},
			{Key: "img", Driver: "local", DriverOpts: map[string]string{"type": "ext4", "o": "loop", "device": "/srv/disk.img"}},
			{Key: "ovl", DriverOpts: map[string]string{"type": "overlay", "o": "lowerdir=/:/etc,upperdir=/srv/up,workdir=/srv/work", "device": "overlay"}},
			{Key: "none", DriverOpts: map[string]string{"type": "none", "device": "/srv/x"}},
			{Key: "nfsbind", DriverOpts: map[string]string{"type": "nfs", "o": "bind", "device": "/srv/y"}},
			{Key: "cifs", DriverOpts: map[string]string{"type": "cifs", "o": "username=u", "device": "//server/share"}},
			{Key: "tmp", DriverOpts: map[string]string{"type": "tmpfs", "o": "size=100m", "device": "tmpfs"}},
			{Key: "plugin", Driver: "rexray", DriverOpts: map[string]string{"device": "/dev/sdb"}},
			{Key: "proc", DriverOpts: map[string]string{"type": "proc", "device": "proc"}},
			{Key: "dev", DriverOpts: map[string]string{"type": "devtmpfs", "device": "none"}},
			{Key: "odd", DriverOpts: map[string]string{"type": "debugfs", "device": "debugfs"}},
		}}, []string{
			"/volumes.dev.driver_opts.type=devtmpfs",
			"/volumes.disk.driver_opts.device=/dev/sda1",
			"/volumes.img.driver_opts.device=/srv/disk.img",
			"/volumes.nfsbind.driver_opts.device=/srv/y",
			"/volumes.none.driver_opts.device=/srv/x",
			"/volumes.odd.driver_opts.device=debugfs",
			"/volumes.ovl.driver_opts.o.lowerdir.0=/",
			"/volumes.ovl.driver_opts.o.lowerdir.1=/etc",
			"/volumes.ovl.driver_opts.o.upperdir=/srv/up",
			"/volumes.ovl.driver_opts.o.workdir=/srv/work",
			"/volumes.proc.driver_opts.type=proc",
		}},
		{"other containers", Fleet{Services: []Service{{Name: "web", Spec: Spec{
			NetworkMode: "container:vpn", Pid: "container:x", Ipc: "container:x",
			VolumesFrom: []string{"service:db", "container:data:ro"},
		}}}}, []string{"web/ipc=container:x", "web/network_mode=container:vpn", "web/pid=container:x", "web/volumes_from.container:data=container:data:ro"}},
		{"device cgroup rules", Fleet{Services: []Service{{Name: "web", Spec: Spec{DeviceCgroupRules: []string{"b *:* rwm"}}}}},
			[]string{"web/device_cgroup_rules.b *:* rwm=b *:* rwm"}},
		{"security options", Fleet{Services: []Service{{Name: "web", Spec: Spec{SecurityOpt: []string{
			"apparmor=unconfined", "apparmor:my-profile", "label=disable", "label=level:s0:c100", "label=type:spc_t",
			"no-new-privileges:true", "seccomp:unconfined", "seccomp=/etc/profile.json", "systempaths=unconfined", "writable-cgroups=true",
		}}}}}, []string{
			"web/security_opt.apparmor=unconfined=apparmor=unconfined",
			"web/security_opt.label=disable=label=disable",
			"web/security_opt.label=type:spc_t=label=type:spc_t",
			"web/security_opt.seccomp=/etc/profile.json=seccomp=/etc/profile.json",
			"web/security_opt.seccomp=unconfined=seccomp=unconfined",
			"web/security_opt.systempaths=unconfined=systempaths=unconfined",
			"web/security_opt.writable-cgroups=true=writable-cgroups=true",
		}},
		{"build network", Fleet{Services: []Service{
			{Name: "a", Build: &Build{Network: "host"}},
			{Name: "b", Build: &Build{Network: "none"}},
		}}, []string{"a/build.network=host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, g := range Grants(tt.f) {
				got = append(got, g.Service+"/"+g.Field+"="+g.Value)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Grants = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHostPolicyCheck(t *testing.T) {
	def := DefaultHostPolicy()
	strict := HostPolicy{CapAdd: []string{"NET_BIND_SERVICE"}, HostNamespaces: []string{"uts"}, Binds: []string{"/srv", "/var/log/"}, DenyBinds: []string{"/srv/secret"}, Devices: []string{"/dev/dri"}}
	bind := func(p string) Grant { return Grant{Kind: GrantBind, Field: "mounts./x", Value: p, Path: p} }
	device := func(p string) Grant { return Grant{Kind: GrantDevice, Field: "devices." + p, Value: p, Path: p} }
	tests := []struct {
		name   string
		policy HostPolicy
		grant  Grant
		denied string // substring of the reason; "" allowed
	}{
		{"default: privileged", def, Grant{Kind: GrantPrivileged, Field: "privileged"}, ""},
		{"default: any capability", def, Grant{Kind: GrantCapability, Value: "SYS_ADMIN"}, ""},
		{"default: host network", def, Grant{Kind: GrantNamespace, Field: "network_mode"}, ""},
		{"default: a host path", def, bind("/srv/data"), ""},
		{"default: /var/lib", def, bind("/var/lib/app"), ""},
		{"default: the docker socket", def, bind("/var/run/docker.sock"), "reaches /var/run/docker.sock"},
		{"default: the socket by its other name", def, bind("/run/docker.sock"), "reaches /run/docker.sock"},
		{"default: /", def, bind("/"), "a bind of / reaches /var/run/docker.sock"},
		{"default: a directory above the socket", def, bind("/var/run/"), "a bind of /var/run reaches"},
		{"default: /var", def, bind("/var"), "reaches"},
		{"default: unclean path", def, bind("/var/./run//docker.sock"), "reaches"},
		{"default: a device", def, device("/dev/sda"), ""},
		{"strict: privileged", strict, Grant{Kind: GrantPrivileged, Field: "privileged"}, "policy.privileged: false"},
		{"strict: allowed capability with CAP_", strict, Grant{Kind: GrantCapability, Value: "NET_BIND_SERVICE"}, ""},
		{"strict: allowed capability, policy spelled with cap_", HostPolicy{CapAdd: []string{"cap_net_admin"}}, Grant{Kind: GrantCapability, Value: "NET_ADMIN"}, ""},
		{"strict: other capability", strict, Grant{Kind: GrantCapability, Value: "SYS_ADMIN"}, "adding capability SYS_ADMIN is denied by this host's policy (policy.cap_add: [NET_BIND_SERVICE])"},
		{"strict: cap_add ALL", strict, Grant{Kind: GrantCapability, Value: "ALL"}, "adding capability ALL"},
		{"strict: uts allowed", strict, Grant{Kind: GrantNamespace, Field: "uts"}, ""},
		{"strict: pid denied", strict, Grant{Kind: GrantNamespace, Field: "pid"}, "the host's pid namespace is denied"},
		{"strict: userns denied", strict, Grant{Kind: GrantNamespace, Field: "userns_mode"}, "the host's userns namespace"},
		{"strict: bind inside an allowed path", strict, bind("/srv/app"), ""},
		{"strict: bind of an allowed path", strict, bind("/var/log"), ""},
		{"strict: a name that starts the same is not inside", strict, bind("/srv2"), "outside the paths this host's policy allows (policy.binds: [/srv, /var/log/])"},
		{"strict: bind above an allowed path", strict, bind("/var"), "outside"},
		{"strict: dot-dot out of an allowed path", strict, bind("/srv/../etc"), "a bind of /etc is outside"},
		{"strict: inside a denied path", strict, bind("/srv/secret/key"), "reaches /srv/secret"},
		{"strict: above a denied path", strict, bind("/srv"), "a bind of /srv reaches /srv/secret"},
		{"strict: device allowed", strict, device("/dev/dri/renderD128"), ""},
		{"strict: device denied", strict, device("/dev/sda"), "device /dev/sda is outside the devices this host's policy allows (policy.devices: [/dev/dri])"},
		{"nothing allowed", HostPolicy{}, bind("/srv"), "(policy.binds: [])"},
		{"unknown kind", def, Grant{Kind: "teleport", Field: "x"}, `unknown kind of host access "teleport"`},
		{"default: /proc", def, bind("/proc"), "a bind of /proc reaches /proc"},
		{"default: /proc read-only still reaches /proc/1/root", def, bind("/proc/1/root"), "reaches /proc"},
		{"default: the containerd socket", def, bind("/run/containerd/containerd.sock"), "reaches /run/containerd"},
		{"default: the containerd socket by its other name", def, bind("/var/run/containerd/containerd.sock"), "reaches /var/run/containerd"},
		{"default: /sys stays allowed", def, bind("/sys"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.policy.Check(tt.grant)
			switch {
			case tt.denied == "" && got != "":
				t.Errorf("denied: %s", got)
			case tt.denied != "" && !strings.Contains(got, tt.denied):
				t.Errorf("Check = %q, want it to contain %q", got, tt.denied)
			}
		})
	}
}

// TestHostPolicyCatches loads, in the model, each way a fleet may reach
// the host beyond privileged, cap_add, host namespaces, binds and
// devices: a strict policy denies every one; the default allows those
// that do not reach the engine's socket.
func TestHostPolicyCatches(t *testing.T) {
	strict := HostPolicy{Binds: []string{"/srv"}}
	svc := func(sp Spec) Fleet { return Fleet{Services: []Service{{Name: "web", Spec: sp}}} }
	vol := func(opts map[string]string) Fleet { return Fleet{Volumes: []Volume{{Key: "v", DriverOpts: opts}}} }
	tests := []struct {
		name       string
		f          Fleet
		strict     string // substring of the strict policy's reason
		defaultWhy string // substring of the default policy's; "" allowed
	}{
		{"volumes_from another container", svc(Spec{VolumesFrom: []string{"container:x"}}),
			"volumes_from container:x takes the binds of a container fleetd did not create, which may be any host path: as a bind of /, it is outside the paths this host's policy allows (policy.binds: [/srv])",
			"as a bind of /, it reaches /var/run/docker.sock"},
		{"network_mode of another container", svc(Spec{NetworkMode: "container:x"}),
			"container:x is a container fleetd did not create, which may be in the host's namespace: the host's network namespace is denied by this host's policy (policy.host_namespaces: [])", ""},
		{"pid of another container", svc(Spec{Pid: "container:x"}), "the host's pid namespace is denied", ""},
		{"ipc of another container", svc(Spec{Ipc: "container:x"}), "the host's ipc namespace is denied", ""},
		{"device cgroup rule", svc(Spec{DeviceCgroupRules: []string{"b *:* rwm"}}),
			`device_cgroup_rules "b *:* rwm" reaches any device by number (/dev) is outside the devices this host's policy allows (policy.devices: [])`, ""},
		{"apparmor unconfined", svc(Spec{SecurityOpt: []string{"apparmor=unconfined"}}),
			"security_opt apparmor=unconfined lifts the container's confinement, as privileged does: it is denied by this host's policy (policy.privileged: false)", ""},
		{"seccomp unconfined", svc(Spec{SecurityOpt: []string{"seccomp=unconfined"}}), "security_opt seccomp=unconfined", ""},
		{"systempaths unconfined", svc(Spec{SecurityOpt: []string{"systempaths=unconfined"}}), "security_opt systempaths=unconfined", ""},
		{"a local volume of a disk", vol(map[string]string{"type": "ext4", "device": "/dev/sda1"}),
			"device /dev/sda1 is outside the devices this host's policy allows (policy.devices: [])", ""},
		{"an overlay of /", vol(map[string]string{"type": "overlay", "o": "lowerdir=/,upperdir=/srv/u,workdir=/srv/w"}),
			"a bind of / is outside the paths this host's policy allows", "a bind of / reaches /var/run/docker.sock"},
		{"a local volume of the host's procfs", vol(map[string]string{"type": "proc", "device": "proc"}),
			"a volume mounting proc (as a bind of /proc) is outside the paths", "a volume mounting proc (as a bind of /proc) reaches /proc"},
		{"a local volume of the host's devices", vol(map[string]string{"type": "devtmpfs", "device": "none"}),
			"is outside the devices this host's policy allows", ""},
		{"a local volume of an unknown filesystem", vol(map[string]string{"type": "debugfs", "device": "debugfs"}),
			"a volume mounting debugfs (as a bind of /) is outside the paths", "reaches /var/run/docker.sock"},
		{"build network host", Fleet{Services: []Service{{Name: "web", Build: &Build{Network: "host"}}}},
			"the host's network namespace is denied", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var strictWhy, defaultWhy []string
			for _, g := range Grants(tt.f) {
				if why := strict.Check(g); why != "" {
					strictWhy = append(strictWhy, why)
				}
				if why := DefaultHostPolicy().Check(g); why != "" {
					defaultWhy = append(defaultWhy, why)
				}
			}
			if !slices.ContainsFunc(strictWhy, func(w string) bool { return strings.Contains(w, tt.strict) }) {
				t.Errorf("strict policy: %q, want one containing %q", strictWhy, tt.strict)
			}
			switch {
			case tt.defaultWhy == "" && len(defaultWhy) > 0:
				t.Errorf("default policy denies: %q", defaultWhy)
			case tt.defaultWhy != "" && !slices.ContainsFunc(defaultWhy, func(w string) bool { return strings.Contains(w, tt.defaultWhy) }):
				t.Errorf("default policy: %q, want one containing %q", defaultWhy, tt.defaultWhy)
			}
		})
	}
}

// TestCheckOnHost resolves a bind's source through the host's symlinks:
// a link inside an allowed path to a denied one is denied, under either
// name; a source that does not exist yet resolves as its parent does.
func TestCheckOnHost(t *testing.T) {
	host := t.TempDir()
	mkdir := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(host, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(host, name)); err != nil {
			t.Fatal(err)
		}
	}
	mkdir("srv/data")
	mkdir("run/secret")
	mkdir("etc")
	link(filepath.Join(host, "run/secret"), "srv/sock")   // absolute, to a denied path
	link("../etc", "srv/conf")                            // relative, outside binds
	link(filepath.Join(host, "run/secret/gone"), "srv/x") // dangling, into a denied path
	link("loop", "srv/loop")
	p := HostPolicy{Binds: []string{filepath.Join(host, "srv")}, DenyBinds: []string{filepath.Join(host, "run/secret")}}
	bind := func(rel string) Grant {
		return Grant{Kind: GrantBind, Field: "mounts./x", Path: filepath.Join(host, rel)}
	}
	tests := []struct {
		src    string
		denied string // substring; "" allowed
	}{
		{"srv/data", ""},
		{"srv/data/not-yet", ""},
		{"srv/sock", "srv/sock resolves to " + filepath.Join(host, "run/secret") + " on this host: a bind of " + filepath.Join(host, "run/secret") + " reaches"},
		{"srv/sock/sub/not-yet", "resolves to " + filepath.Join(host, "run/secret/sub/not-yet")},
		{"srv/conf", "resolves to " + filepath.Join(host, "etc") + " on this host: a bind of " + filepath.Join(host, "etc") + " is outside the paths"},
		{"srv/x", "resolves to " + filepath.Join(host, "run/secret/gone")},
		{"srv/loop", "cannot be resolved on this host"},
		{"run/secret", "reaches"}, // as written
	}
	for _, tt := range tests {
		got := p.checkOnHost(bind(tt.src))
		switch {
		case tt.denied == "" && got != "":
			t.Errorf("%s: denied: %s", tt.src, got)
		case tt.denied != "" && !strings.Contains(got, tt.denied):
			t.Errorf("%s: %q, want it to contain %q", tt.src, got, tt.denied)
		}
	}
	// Other grants are checked as written.
	if got := p.checkOnHost(Grant{Kind: GrantDevice, Path: filepath.Join(host, "srv/sock")}); !strings.Contains(got, "policy.devices") {
		t.Errorf("device: %q", got)
	}
}

func TestHostPolicyValidate(t *testing.T) {
	if err := DefaultHostPolicy().Validate(); err != nil {
		t.Errorf("default policy: %v", err)
	}
	for _, tt := range []struct {
		p    HostPolicy
		want string
	}{
		{HostPolicy{HostNamespaces: []string{"net"}}, `host_namespaces: unknown namespace "net"`},
		{HostPolicy{Binds: []string{"srv"}}, `binds: "srv" is not an absolute path`},
		{HostPolicy{DenyBinds: []string{""}}, `deny_binds: "" is not an absolute path`},
		{HostPolicy{Devices: []string{"dev/dri"}}, `devices: "dev/dri"`},
		{HostPolicy{CapAdd: []string{" "}}, "cap_add: empty capability"},
	} {
		if err := tt.p.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.p, err, tt.want)
		}
	}
}

// TestLoadEnforce loads a fleet that asks for host access under the
// default and a strict policy: a denied grant makes it invalid, as a
// problem at the compose field that asks for it.
func TestLoadEnforce(t *testing.T) {
	root := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ops/compose.yaml", `services:
  agent:
    image: agent:1
    privileged: true
    cap_add: [SYS_ADMIN]
    pid: host
    volumes:
      - ./conf:/conf
      - /srv/data:/data
      - /var/run/docker.sock:/var/run/docker.sock
    devices:
      - /dev/fuse
volumes:
  hostroot:
    driver_opts: {type: none, o: bind, device: /}
`)
	write("ops/conf/a", "x")
	write("web/compose.yaml", "services:\n  web:\n    image: web:1\n")
	host := Host{Name: "h1"}

	if _, err := Load(t.Context(), root, host); err != nil {
		t.Fatalf("without a policy: %v", err)
	}
	problemsOf := func(p HostPolicy) []string {
		t.Helper()
		loaded, err := Load(t.Context(), root, host, Enforce(p))
		var pl ProblemList
		if !errors.As(err, &pl) {
			t.Fatalf("want problems, got %v", err)
		}
		if len(loaded) != 1 || loaded[0].Name != "web" {
			t.Errorf("loaded %v, want web only", loaded)
		}
		byHost, err := LoadHosts(t.Context(), root, []Host{host}, Enforce(p))
		if err != nil || byHost[0].Err.Error() != pl.Error() {
			t.Errorf("LoadHosts differs from Load: %v\n%v\n---\n%v", err, byHost[0].Err, pl)
		}
		var out []string
		for _, p := range pl {
			out = append(out, p.String())
		}
		return out
	}
	got := problemsOf(DefaultHostPolicy())
	want := []string{
		"ops/compose.yaml:10: fleet ops: service agent: volumes.2: a bind of /var/run/docker.sock reaches /var/run/docker.sock, which this host's policy denies (policy.deny_binds)",
		"ops/compose.yaml:15: fleet ops: volumes.hostroot.driver_opts.device: a bind of / reaches /var/run/docker.sock, which this host's policy denies (policy.deny_binds)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("default policy:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got = problemsOf(HostPolicy{Binds: []string{"/srv"}})
	want = []string{
		"ops/compose.yaml:10: fleet ops: service agent: volumes.2: a bind of /var/run/docker.sock is outside the paths this host's policy allows (policy.binds: [/srv])",
		"ops/compose.yaml:11: fleet ops: service agent: devices: device /dev/fuse is outside the devices this host's policy allows (policy.devices: [])",
		"ops/compose.yaml:15: fleet ops: volumes.hostroot.driver_opts.device: a bind of / is outside the paths this host's policy allows (policy.binds: [/srv])",
		"ops/compose.yaml:4: fleet ops: service agent: privileged: privileged is denied by this host's policy (policy.privileged: false)",
		"ops/compose.yaml:5: fleet ops: service agent: cap_add: adding capability SYS_ADMIN is denied by this host's policy (policy.cap_add: [])",
		"ops/compose.yaml:6: fleet ops: service agent: pid: the host's pid namespace is denied by this host's policy (policy.host_namespaces: [])",
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("strict policy:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// FuzzHostPolicy checks the policy's decision on any bind or device path:
// it never panics, a bind that reaches the Docker or containerd socket
// under any of its names, or the host's root through /proc, is always
// denied by the default policy, and a policy that allows nothing allows
// no path.
func FuzzHostPolicy(f *testing.F) {
	for _, seed := range []string{"/", "/var", "/var/run/docker.sock", "/srv/data", "//run//docker.sock/", "/var/run/../run/docker.sock", "relative/x", "", "/dev/ttyUSB0", "/proc/1/root", "/run/containerd"} {
		f.Add(seed)
	}
	def := DefaultHostPolicy()
	none := HostPolicy{}
	f.Fuzz(func(t *testing.T, p string) {
		bind := Grant{Kind: GrantBind, Field: "mounts./x", Value: p, Path: p}
		device := Grant{Kind: GrantDevice, Field: "devices." + p, Value: p, Path: p}
		clean := cleanPath(p)
		for _, sock := range []string{"/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock", "/var/run/containerd/containerd.sock", "/proc/1/root"} {
			if (clean == sock || strings.HasPrefix(sock, strings.TrimSuffix(clean, "/")+"/") || clean == "/") && def.Check(bind) == "" {
				t.Errorf("the default policy allows a bind of %q (%s), which reaches %s", p, clean, sock)
			}
		}
		if none.Check(bind) == "" || none.Check(device) == "" {
			t.Errorf("a policy that allows nothing allows %q", p)
		}
	})
}

// TestLoadEnforceCatches loads a fleet asking, with none of the grants a
// strict policy checks first (privileged, cap_add, host: namespaces,
// binds, devices), for every other way to reach the host: each is a
// problem at its compose field.
func TestLoadEnforceCatches(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "ops", "img"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"ops/img/Dockerfile": "FROM scratch\n",
		"ops/compose.yaml": `services:
  a:
    image: a:1
    volumes_from: [container:x]
    network_mode: container:x
    pid: container:x
    ipc: container:x
    device_cgroup_rules: ["b *:* rwm"]
    security_opt: [apparmor=unconfined, seccomp=unconfined, systempaths=unconfined]
  b:
    build: {context: img, network: host}
volumes:
  disk:
    driver_opts: {type: ext4, device: /dev/sda1}
  ovl:
    driver_opts: {type: overlay, o: "lowerdir=/,upperdir=/srv/u,workdir=/srv/w", device: overlay}
`,
	} {
		if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(name)), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Load(t.Context(), root, Host{Name: "h1"}, Enforce(HostPolicy{Binds: []string{"/srv"}}))
	var pl ProblemList
	if !errors.As(err, &pl) {
		t.Fatalf("want problems, got %v", err)
	}
	var got []string
	for _, p := range pl {
		got = append(got, p.String())
	}
	slices.Sort(got)
	want := []string{
		`ops/compose.yaml:11: fleet ops: service b: build.network: the host's network namespace is denied by this host's policy (policy.host_namespaces: [])`,
		`ops/compose.yaml:14: fleet ops: volumes.disk.driver_opts.device: device /dev/sda1 is outside the devices this host's policy allows (policy.devices: [])`,
		`ops/compose.yaml:16: fleet ops: volumes.ovl.driver_opts.o.lowerdir: a bind of / is outside the paths this host's policy allows (policy.binds: [/srv])`,
		`ops/compose.yaml:4: fleet ops: service a: volumes_from: volumes_from container:x takes the binds of a container fleetd did not create, which may be any host path: as a bind of /, it is outside the paths this host's policy allows (policy.binds: [/srv])`,
		`ops/compose.yaml:5: fleet ops: service a: network_mode: container:x is a container fleetd did not create, which may be in the host's namespace: the host's network namespace is denied by this host's policy (policy.host_namespaces: [])`,
		`ops/compose.yaml:6: fleet ops: service a: pid: container:x is a container fleetd did not create, which may be in the host's namespace: the host's pid namespace is denied by this host's policy (policy.host_namespaces: [])`,
		`ops/compose.yaml:7: fleet ops: service a: ipc: container:x is a container fleetd did not create, which may be in the host's namespace: the host's ipc namespace is denied by this host's policy (policy.host_namespaces: [])`,
		`ops/compose.yaml:8: fleet ops: service a: device_cgroup_rules: device_cgroup_rules "b *:* rwm" reaches any device by number (/dev) is outside the devices this host's policy allows (policy.devices: [])`,
		`ops/compose.yaml:9: fleet ops: service a: security_opt: security_opt apparmor=unconfined lifts the container's confinement, as privileged does: it is denied by this host's policy (policy.privileged: false)`,
		`ops/compose.yaml:9: fleet ops: service a: security_opt: security_opt seccomp=unconfined lifts the container's confinement, as privileged does: it is denied by this host's policy (policy.privileged: false)`,
		`ops/compose.yaml:9: fleet ops: service a: security_opt: security_opt systempaths=unconfined lifts the container's confinement, as privileged does: it is denied by this host's policy (policy.privileged: false)`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
