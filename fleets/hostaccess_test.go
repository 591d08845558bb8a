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
// it never panics, a bind that reaches the Docker socket under either of
// its names is always denied by the default policy, and a policy that
// allows nothing allows no path.
func FuzzHostPolicy(f *testing.F) {
	for _, seed := range []string{"/", "/var", "/var/run/docker.sock", "/srv/data", "//run//docker.sock/", "/var/run/../run/docker.sock", "relative/x", "", "/dev/ttyUSB0"} {
		f.Add(seed)
	}
	def := DefaultHostPolicy()
	none := HostPolicy{}
	f.Fuzz(func(t *testing.T, p string) {
		bind := Grant{Kind: GrantBind, Field: "mounts./x", Value: p, Path: p}
		device := Grant{Kind: GrantDevice, Field: "devices." + p, Value: p, Path: p}
		clean := cleanPath(p)
		for _, sock := range []string{"/var/run/docker.sock", "/run/docker.sock"} {
			if (clean == sock || strings.HasPrefix(sock, strings.TrimSuffix(clean, "/")+"/") || clean == "/") && def.Check(bind) == "" {
				t.Errorf("the default policy allows a bind of %q (%s), which reaches %s", p, clean, sock)
			}
		}
		if none.Check(bind) == "" || none.Check(device) == "" {
			t.Errorf("a policy that allows nothing allows %q", p)
		}
	})
}
