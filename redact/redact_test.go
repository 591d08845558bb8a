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
