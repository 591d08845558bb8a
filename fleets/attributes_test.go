package fleets

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/schema"
)

// honoured are the service attributes a docker fleet models; ignored the
// ones it accepts and ignores as `docker compose up` does. Every other
// attribute of the Compose schema must be refused with a reason. A new
// compose-go that adds an attribute fails this test until the attribute
// is modelled or refused: none is ever silently ignored.
var (
	honoured = strings.Fields(`annotations blkio_config build cap_add cap_drop cgroup cgroup_parent command
		configs container_name cpu_count cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime
		cpu_shares cpus cpuset depends_on deploy device_cgroup_rules devices dns dns_opt dns_search
		domainname entrypoint env_file environment expose extends extra_hosts gpus group_add healthcheck
		hostname image init ipc isolation label_file labels links logging mac_address mem_limit
		mem_reservation mem_swappiness memswap_limit network_mode networks oom_kill_disable oom_score_adj
		pid pids_limit platform ports post_start pre_stop privileged profiles pull_policy read_only restart runtime scale
		secrets security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs
		tty ulimits user userns_mode uts volumes volumes_from working_dir`)
	ignored = []string{"attach", "develop"}

	// buildHonoured are the build: keys a docker fleet models; every other
	// key of the schema's build must be refused with a reason.
	buildHonoured = strings.Fields(`context dockerfile args target labels cache_from network extra_hosts
		shm_size platforms secrets ssh`)
)

func TestServiceAttributesAccounted(t *testing.T) {
	var doc struct {
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal([]byte(schema.Schema), &doc); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, def := range []string{"service", "container_spec", "workload_spec"} {
		for name := range doc.Defs[def].Properties {
			all = append(all, name)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	var refused []string
	for _, name := range all {
		inRefused := slices.ContainsFunc(unsupportedAttributes, func(u unsupported) bool {
			return u.path == "services.*."+name && u.detect == nil && u.message != notYet
		})
		switch {
		case slices.Contains(honoured, name) && inRefused:
			t.Errorf("%s is both honoured and refused", name)
		case slices.Contains(honoured, name), slices.Contains(ignored, name):
		case inRefused:
			refused = append(refused, name)
		default:
			t.Errorf("Compose attribute %s is neither modelled nor refused with a reason", name)
		}
	}
	t.Logf("Compose service attributes: %d; honoured %d, ignored as compose up does %d, refused with a reason %d: %s",
		len(all), len(honoured), len(ignored), len(refused), strings.Join(refused, ", "))
	if len(honoured)+len(ignored)+len(refused) != len(all) {
		t.Errorf("honoured and ignored list attributes the schema does not have")
	}
}

func TestBuildAttributesAccounted(t *testing.T) {
	var doc struct {
		Defs map[string]struct {
			Properties map[string]struct {
				OneOf []struct {
					Properties map[string]json.RawMessage `json:"properties"`
				} `json:"oneOf"`
			} `json:"properties"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal([]byte(schema.Schema), &doc); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, def := range []string{"service", "container_spec", "workload_spec"} {
		for _, alt := range doc.Defs[def].Properties["build"].OneOf {
			for name := range alt.Properties {
				all = append(all, name)
			}
		}
	}
	if len(all) == 0 {
		t.Fatal("the schema's build has no properties: the test reads it wrong")
	}
	slices.Sort(all)
	all = slices.Compact(all)
	var refused []string
	for _, name := range all {
		inRefused := slices.ContainsFunc(unsupportedAttributes, func(u unsupported) bool {
			return u.path == "services.*.build."+name && u.message != notYet
		})
		switch {
		case slices.Contains(buildHonoured, name) && inRefused:
			t.Errorf("build.%s is both honoured and refused", name)
		case slices.Contains(buildHonoured, name):
		case inRefused:
			refused = append(refused, name)
		default:
			t.Errorf("Compose build attribute %s is neither modelled nor refused with a reason", name)
		}
	}
	t.Logf("Compose build attributes: %d; honoured %d, refused with a reason %d: %s", len(all), len(buildHonoured), len(refused), strings.Join(refused, ", "))
}
