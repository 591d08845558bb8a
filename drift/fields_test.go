package drift_test

import (
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fleets"
)

func TestSpecFields(t *testing.T) {
	have := fleets.Spec{
		Image:           "app:v1",
		Command:         []string{"serve", "--port", "80"},
		Environment:     map[string]string{"PUBLIC": "a", "API_TOKEN": "t1", "PLAIN": "x"},
		Ports:           []fleets.Port{{Target: 80, Published: "8080", Protocol: "tcp"}},
		Mounts:          []fleets.Mount{{Type: "volume", Source: "web_data", Target: "/data"}},
		Networks:        []fleets.NetworkAttachment{{Network: "web_default", Aliases: []string{"api"}}},
		Secrets:         []fleets.FileRef{{Name: "db", Target: "/run/secrets/db", Digest: "sha256:aaaaaaaaaaaaaaaaaaaa"}},
		Configs:         []fleets.FileRef{{Name: "conf", Target: "/etc/app.conf", Digest: "sha256:bbbbbbbbbbbbbbbbbbbb"}},
		Logging:         &fleets.Logging{Driver: "splunk", Options: map[string]string{"splunk-token": "s1"}},
		StopGracePeriod: 10 * time.Second,
		Restart:         "always",
	}
	want := have
	want.Image = "app:v2"
	want.Command = []string{"serve", "--password", "hunter2"}
	want.Environment = map[string]string{"PUBLIC": "b", "API_TOKEN": "t2", "PLAIN": "y"}
	want.Ports = []fleets.Port{{Target: 80, Published: "9090", Protocol: "tcp"}}
	want.Mounts = []fleets.Mount{{Type: "volume", Source: "web_data2", Target: "/data"}, {Type: "tmpfs", Target: "/tmp"}}
	want.Networks = []fleets.NetworkAttachment{{Network: "web_default", Aliases: []string{"api", "v2"}}}
	want.Secrets = []fleets.FileRef{{Name: "db", Target: "/run/secrets/db", Digest: "sha256:cccccccccccccccccccc"}}
	want.Configs = []fleets.FileRef{{Name: "conf", Target: "/etc/app.conf", Digest: "sha256:dddddddddddddddddddd"}}
	want.Logging = &fleets.Logging{Driver: "splunk", Options: map[string]string{"splunk-token": "s2"}}
	want.StopGracePeriod = 30 * time.Second

	svc := fleets.Service{Name: "api", Spec: want, PublicEnv: []string{"PUBLIC", "API_TOKEN"}}
	var got strings.Builder
	for _, f := range drift.SpecFields(svc, have) {
		got.WriteString(f.Field + ": " + f.Have + " → " + f.Want + "\n")
	}
	const expect = `command: ["serve","--port","80"] → ["serve","--password","***"]
configs.conf.digest: sha256:bbbbbbbbbbbb → sha256:dddddddddddd
environment.API_TOKEN: t1 → t2
environment.PLAIN: <redacted> → <redacted>
environment.PUBLIC: a → b
image: app:v1 → app:v2
logging.options.splunk-token: <redacted> → <redacted>
mounts./data.source: web_data → web_data2
mounts./tmp.type:  → tmpfs
networks.web_default.aliases: ["api"] → ["api","v2"]
ports: [{"protocol":"tcp","published":"8080","target":80}] → [{"protocol":"tcp","published":"9090","target":80}]
secrets.db.digest: <redacted> → <redacted>
stop_grace_period: 10s → 30s
`
	if got.String() != expect {
		t.Errorf("SpecFields:\n%s\nwant:\n%s", got.String(), expect)
	}
	if fs := drift.SpecFields(svc, want); len(fs) != 0 {
		t.Errorf("equal specs differ in %v", fs)
	}
}

func TestLooksSecret(t *testing.T) {
	for name, want := range map[string]bool{
		"DB_PASSWORD": true, "api_key": true, "GITHUB_TOKEN": true, "aws_secret_access_key": true,
		"Credentials": true, "LOG_LEVEL": false, "PORT": false,
	} {
		if got := drift.LooksSecret(name); got != want {
			t.Errorf("LooksSecret(%q) = %v", name, got)
		}
	}
}

// TestSpecFieldsRedaction: no secret value reaches a field, whether it is
// under a secret-looking key, after a secret-looking flag, in a URL's
// password or only known to be secret (svc.Secrets).
func TestSpecFieldsRedaction(t *testing.T) {
	want := fleets.Spec{
		Image:       "app:v2",
		Command:     []string{"serve", "--db-password", "cmd-flag-secret", "--api-token=cmd-eq-secret", "DB_PASS=cmd-env-secret"},
		Environment: map[string]string{"DATABASE_URL": "postgres://app:url-secret@db/app"},
		Labels:      map[string]string{"com.example.auth": "label-secret", "com.example.note": "known-secret-value"},
		Logging:     &fleets.Logging{Driver: "splunk", Options: map[string]string{"splunk-token": "logging-secret", "splunk-url": "https://u:logurl-secret@splunk"}},
		Healthcheck: &fleets.Healthcheck{Test: []string{"CMD-SHELL", "curl -fsS -H 'Authorization: Bearer hc-secret' http://x/ && check --token hc2-secret"}},
	}
	svc := fleets.Service{Name: "api", Spec: want, PublicEnv: []string{"DATABASE_URL"}, Secrets: []fleets.SecretBytes{fleets.SecretBytes("known-secret-value")}}
	fs := drift.SpecFields(svc, fleets.Spec{Image: "app:v1"})
	var got strings.Builder
	for _, f := range fs {
		got.WriteString(f.Field + ": " + f.Have + " → " + f.Want + "\n")
	}
	for _, secret := range []string{"cmd-flag-secret", "cmd-eq-secret", "cmd-env-secret", "url-secret", "label-secret", "known-secret-value", "logging-secret", "logurl-secret", "hc-secret", "hc2-secret"} {
		if strings.Contains(got.String(), secret) {
			t.Errorf("%s leaks:\n%s", secret, got.String())
		}
	}
	for _, shown := range []string{"--db-password", "--api-token=***", "postgres://app:***@db/app", "splunk-url", "CMD-SHELL"} {
		if !strings.Contains(got.String(), shown) {
			t.Errorf("lost %q:\n%s", shown, got.String())
		}
	}
}
