package redact_test

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/fleetd/fleetd/redact"
)

func TestString(t *testing.T) {
	r := redact.New("s3cr3t-value", "", "short")
	for in, want := range map[string]string{
		"clone https://deploy:ghp_abcdef123456@github.com/o/r.git failed": "clone https://deploy:***@github.com/o/r.git failed",
		"GET https://h/x?token=abc&page=2":                                "GET https://h/x?token=***&page=2",
		"DB_PASSWORD=hunter2 PATH=/usr/bin":                               "DB_PASSWORD=*** PATH=/usr/bin",
		"api_key: zzz9 mode: fast":                                        "api_key: *** mode: fast",
		`{"password":"pw1","user":"bob"}`:                                 `{"password":"***","user":"bob"}`,
		"Authorization: Bearer eyJhbGciOi.x.y":                            "Authorization: *** ***",
		"the value s3cr3t-value leaked, url-escaped s3cr3t-value too":     "the value *** leaked, url-escaped *** too",
		"mysql --password hunter2 -h db":                                  "mysql --password *** -h db",
		"serve --db-token=abc --port 80":                                  "serve --db-token=*** --port 80",
		`{"cause":"run --password hunter2"}`:                              `{"cause":"run --password ***"}`,
		"unknown key: ingress takes drain":                                "unknown key: ingress takes drain",
		"a short secret is not masked":                                    "a short secret is not masked",
		"web-app-1 stopped: exited (137)":                                 "web-app-1 stopped: exited (137)",
	} {
		if got := r.String(in); got != want {
			t.Errorf("%q\n got %q\nwant %q", in, got, want)
		}
	}
	var none *redact.Redactor
	if got := none.String("DB_PASSWORD=x s3cr3t-value"); got != "DB_PASSWORD=*** s3cr3t-value" {
		t.Errorf("a nil redactor applies the rules only: %q", got)
	}
}

func TestArgsAndValue(t *testing.T) {
	r := redact.New("known-value-1")
	got := r.Args([]string{"serve", "--db-password", "hunter2", "--token=t1", "--port", "80", "API_KEY=k", "known-value-1", "--auth", "--verbose"})
	want := []string{"serve", "--db-password", "***", "--token=***", "--port", "80", "API_KEY=***", "***", "--auth", "--verbose"}
	if !slices.Equal(got, want) {
		t.Errorf("Args:\n got %q\nwant %q", got, want)
	}
	if got := r.Value("splunk-token", "abc"); got != redact.Mask {
		t.Errorf("Value under a secret key: %q", got)
	}
	if got := r.Value("splunk-url", "https://u:p@h"); got != "https://u:***@h" {
		t.Errorf("Value under a plain key: %q", got)
	}
}

func TestError(t *testing.T) {
	err := redact.New().Error(&fs.PathError{Op: "open", Path: "https://u:pw@h/x", Err: fs.ErrNotExist})
	if strings.Contains(err.Error(), "pw@") || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Error: %v (chain kept: %v)", err, errors.Is(err, fs.ErrNotExist))
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(redact.Handler(slog.NewTextHandler(&buf, nil), redact.New("known-value-1"))).With("api_token", "t0")
	log.Info("fetch https://u:pw1@h failed", "err", errors.New("DB_PASSWORD=pw2"), "password", 1234,
		slog.Group("g", "detail", "has known-value-1"), "count", 3)
	out := buf.String()
	for _, secret := range []string{"t0", "pw1", "pw2", "1234", "known-value-1"} {
		if strings.Contains(out, secret) {
			t.Errorf("log leaks %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "count=3") || !strings.Contains(out, "g.detail") {
		t.Errorf("log lost what is not secret: %s", out)
	}
}

// TestStringMasks is the review's list of secrets the rules missed.
func TestStringMasks(t *testing.T) {
	for in, want := range map[string]string{
		"MYSQL_PWD=hunter2 mysql -h db":                                      "MYSQL_PWD=*** mysql -h db",
		"DB_PWD=hunter2":                                                     "DB_PWD=***",
		"REGISTRY_CREDS=u:p1":                                                "REGISTRY_CREDS=***",
		"DOCKER_CREDS: abc":                                                  "DOCKER_CREDS: ***",
		"PASSWORD=abc,def next":                                              "PASSWORD=*** next",
		"password: correct horse battery":                                    "password: ***",
		"password: correct horse battery\nuser: bob":                         "password: ***\nuser: bob",
		`{"msg":"password: correct horse","n":1}`:                            `{"msg":"password: ***","n":1}`,
		"dbPassword=x1 apiKey: y2":                                           "dbPassword=*** apiKey: ***",
		"postgres://u:pa/ss@db/app":                                          "postgres://u:***@db/app",
		"clone https://ghp_x@github.com/o/r.git":                             "clone https://***@github.com/o/r.git",
		"dsn https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/1": "dsn https://***@o1.ingest.sentry.io/1",
		"redis-cli -a pw1 ping":                                              "redis-cli -a *** ping",
		"sh -c 'mysql -ppw2 db && echo ok'":                                  "sh -c 'mysql -p*** db && echo ok'",
		"sshpass -p pw3 ssh host":                                            "sshpass -p *** ssh host",
		"curl -u user:pw4 https://h/":                                        "curl -u user:*** https://h/",
		"curl --user=user:pw5 https://h/":                                    "curl --user=user:*** https://h/",
		"/usr/bin/redis-cli -h r -a pw6":                                     "/usr/bin/redis-cli -h r -a ***",
		"curl -H 'Authorization: Bearer tok123' http://h/":                   "curl -H 'Authorization: *** ***' http://h/",
		"Authorization=Basic dXNlcjpwYXNz":                                   "Authorization=*** ***",
		"auth: t0k3n":                                                        "auth: ***",
	} {
		if got := redact.New().String(in); got != want {
			t.Errorf("%q\n got %q\nwant %q", in, got, want)
		}
	}
}

// TestStringKeeps is the review's list of ordinary output the rules
// masked: image references, fleetd's names, Docker's messages.
func TestStringKeeps(t *testing.T) {
	for _, in := range []string{
		"quay.io/oauth2-proxy/oauth2-proxy:v7.6.0",
		"image: quay.io/oauth2-proxy/oauth2-proxy:v7.6.0 → quay.io/oauth2-proxy/oauth2-proxy:v7.7.0",
		"quay.io/keycloak/keycloak:24.0",
		"keycloak:24.0",
		"authelia/authelia:4.38",
		"passbolt/passbolt:latest-ce",
		"ghcr.io/acme/auth-service:1.2.0",
		"image: auth:1.0",
		"pull auth-service:1.2: not found",
		"service auth: image: app:v1 → app:v2",
		"fleet tokens: service api: created",
		"shop/auth: rolled out",
		"unauthorized: authentication required",
		"Error response from daemon: unauthorized: authentication required",
		"invalid token provided",
		"no basic auth credentials",
		"https://registry:5000/v2/?email=a@b.example",
		"GET https://h/x?page=2 failed: EOF",
		"basic authentication failed",
		"author: alice",
		"ssh://git@github.com/o/r.git",
		"https://deploy@github.com/o/r.git",
		"mysql -p db",
		"curl -u user https://h/",
		"web-app-1 stopped: exited (137)",
		"unknown key: ingress takes drain",
	} {
		if got := redact.New().String(in); got != in {
			t.Errorf("%q\n got %q", in, got)
		}
	}
}

func TestLooksSecret(t *testing.T) {
	for name, want := range map[string]bool{
		"PASSWORD": true, "DB_PASSWORD": true, "MYSQL_PWD": true, "DB_PASS": true, "PASSWD": true,
		"API_KEY": true, "APIKEY": true, "apiKey": true, "dbPassword": true, "auth_token": true,
		"--db-password": true, "com.example.auth-token": true, "splunk-token": true, "AWS_SECRET_ACCESS_KEY": true,
		"REGISTRY_CREDS": true, "GOOGLE_CREDENTIALS": true, "PRIVATE_KEY": true, "Authorization": true, "AUTH": true,
		"image": false, "oauth2-proxy": false, "keycloak": false, "authelia": false, "passbolt": false,
		"unauthorized": false, "authentication": false, "author": false, "monkey": false,
		"PATH": false, "PASSENGER": false, "compass": false,
	} {
		if got := redact.LooksSecret(name); got != want {
			t.Errorf("LooksSecret(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestImageAndArgs(t *testing.T) {
	r := redact.New("s3cr3t-value")
	for _, ref := range []string{"auth:1.0", "quay.io/oauth2-proxy/oauth2-proxy:v7.6.0", "ghcr.io/acme/auth-service:1.2.0"} {
		if got := r.Image(ref); got != ref {
			t.Errorf("Image(%q) = %q", ref, got)
		}
	}
	if got := r.Image("registry/s3cr3t-value:1"); got != "registry/***:1" {
		t.Errorf("Image masks known values: %q", got)
	}
	for _, tc := range []struct{ in, want []string }{
		{[]string{"redis-cli", "-a", "pw1", "ping"}, []string{"redis-cli", "-a", "***", "ping"}},
		{[]string{"mysql", "-ppw2", "db"}, []string{"mysql", "-p***", "db"}},
		{[]string{"mysql", "-p", "db"}, []string{"mysql", "-p", "db"}},
		{[]string{"sshpass", "-p", "pw3", "ssh", "h"}, []string{"sshpass", "-p", "***", "ssh", "h"}},
		{[]string{"curl", "-u", "user:pw4", "https://h/"}, []string{"curl", "-u", "user:***", "https://h/"}},
		{[]string{"/usr/bin/curl", "-uuser:pw5"}, []string{"/usr/bin/curl", "-uuser:***"}},
		{[]string{"CMD", "redis-cli", "-a", "pw6"}, []string{"CMD", "redis-cli", "-a", "***"}},
		{[]string{"serve", "-a", "x"}, []string{"serve", "-a", "x"}},
	} {
		if got := r.Args(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("Args(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestLive(t *testing.T) {
	var buf bytes.Buffer
	var live redact.Live
	log := slog.New(redact.LiveHandler(slog.NewTextHandler(&buf, nil), &live))
	log.Info("before: rev1-secret-value")
	live.Learn("rev1-secret-value")
	live.Learn("rev2-secret-value")
	log.Info("after", "err", errors.New("exec rev1-secret-value rev2-secret-value"))
	out := buf.String()
	if strings.Count(out, "rev1-secret-value") != 1 || strings.Contains(out, "rev2-secret-value") {
		t.Errorf("a learnt value is masked from then on, and none is forgotten:\n%s", out)
	}
}
