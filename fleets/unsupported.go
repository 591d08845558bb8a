package fleets

import (
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/tree"
)

// unsupported is a Compose attribute fleetd does not honour, with what to do
// instead. Silently ignoring one would run something other than what the
// file says, so each is an error.
type unsupported struct {
	path    string
	detect  func(any) bool // nil: presence alone
	message string
}

const notYet = "not supported by fleetd"

var unsupportedAttributes = buildUnsupported()

func buildUnsupported() []unsupported {
	list := []unsupported{
		{"include", nil, "not supported: put the services in the fleet's compose files, or use extends"},
		{"jobs", nil, notYet},
		{"services.*.deploy.mode", notReplicated, "Swarm-only: every host the fleet targets runs deploy.replicas; select hosts with x-fleetd hosts/labels"},
		{"services.*.deploy.endpoint_mode", nil, "Swarm-only: replicas share the service name as a DNS alias on each network"},
		{"services.*.deploy.placement.preferences", nil, "Swarm-only: select hosts with constraints or x-fleetd hosts/labels"},
		{"services.*.deploy.placement.max_replicas_per_node", nil, "Swarm-only: deploy.replicas already counts per host"},
		{"services.*.deploy.labels", nil, "Swarm service labels have no container to go on: use labels"},
		{"services.*.deploy.restart_policy.delay", nil, "Swarm-only: Docker's restart policy backs off by itself"},
		{"services.*.deploy.restart_policy.window", nil, "Swarm-only: Docker's restart policy backs off by itself"},
		{"services.*.deploy.resources.reservations.devices", nil, notYet},
		{"services.*.deploy.resources.reservations.generic_resources", nil, notYet},
		{"services.*.deploy.resources.reservations.cpus", nil, "Swarm-only scheduling hint: use cpu_shares"},
		{"services.*.links", nil, "use networks: every service is reachable by its name on the networks it shares"},
		{"services.*.external_links", nil, "use networks: join an external network instead"},
		{"services.*.network_mode", isServiceNetworkMode, "network_mode service:<name> is not supported: put both services on a shared network"},
		{"services.*.volumes_from", nil, "use a named volume shared by both services"},
		{"secrets.*.external", isTrue, "external secrets need Swarm: use file: or environment:"},
		{"configs.*.external", isTrue, "external configs need Swarm: use file:, content: or environment:"},
		{"secrets.*.driver", nil, "Swarm-only: use file: or environment:"},
		{"secrets.*.template_driver", nil, "Swarm-only"},
		{"configs.*.template_driver", nil, "Swarm-only"},
		{"services.*.build.dockerfile_inline", nil, "write the Dockerfile into the build context"},
	}
	for _, key := range []string{
		"additional_contexts", "ssh", "secrets", "platforms", "tags", "cache_from", "cache_to",
		"no_cache", "pull", "network", "extra_hosts", "shm_size", "ulimits", "isolation",
		"privileged", "entitlements", "labels", "provenance", "sbom",
	} {
		list = append(list, unsupported{"services.*.build." + key, nil,
			"fleetd builds with context, dockerfile, args and target only"})
	}
	for _, key := range []string{
		"ipc", "pid", "uts", "userns_mode", "cgroup", "cgroup_parent", "runtime", "platform",
		"isolation", "mac_address", "gpus", "cpuset", "cpu_count", "cpu_percent", "cpu_period",
		"cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "mem_swappiness", "memswap_limit",
		"oom_kill_disable", "oom_score_adj", "storage_opt",
		"device_cgroup_rules", "blkio_config", "credential_spec", "dns_opt", "annotations",
		"pre_start", "post_start", "pre_stop", "provider", "models", "use_api_socket",
		"volume_driver", "pull_refresh_after",
	} {
		list = append(list, unsupported{"services.*." + key, nil, notYet})
	}
	return list
}

var unsupportedPatterns = toPatterns(unsupportedAttributes)

func toPatterns(list []unsupported) []loader.UnsupportedAttributePattern {
	out := make([]loader.UnsupportedAttributePattern, len(list))
	for i, u := range list {
		out[i] = loader.UnsupportedAttributePattern{Path: tree.Path(u.path), Detect: u.detect}
	}
	return out
}

// unsupportedMessage returns the message for a finding at path.
func unsupportedMessage(path tree.Path) string {
	for _, u := range unsupportedAttributes {
		if path.Matches(tree.Path(u.path)) {
			return u.message
		}
	}
	return notYet
}

func notReplicated(v any) bool { s, _ := v.(string); return s != "" && s != "replicated" }

func isServiceNetworkMode(v any) bool {
	s, _ := v.(string)
	return strings.HasPrefix(s, "service:")
}

func isTrue(v any) bool { b, _ := v.(bool); return b }
