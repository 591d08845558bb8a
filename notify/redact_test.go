package notify

import (
	"strings"
	"testing"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

func TestScrubString(t *testing.T) {
	s := NewScrubber("s3cr3t-value", "", "ab")
	for in, want := range map[string]string{
		"clone https://deploy:ghp_abcdef123456@github.com/o/r.git failed": "clone https://deploy:***@github.com/o/r.git failed",
		"GET https://h/x?token=abc&page=2":                                "GET https://h/x?token=***&page=2",
		"DB_PASSWORD=hunter2 PATH=/usr/bin":                               "DB_PASSWORD=*** PATH=/usr/bin",
		"api_key: zzz9 mode: fast":                                        "api_key: *** mode: fast",
		`{"password":"pw1","user":"bob"}`:                                 `{"password":"***","user":"bob"}`,
		"Authorization: Bearer eyJhbGciOi.x.y":                            "Authorization: *** ***",
		"the value s3cr3t-value leaked, url-escaped s3cr3t-value too":     "the value *** leaked, url-escaped *** too",
		"sig=deadbeef ab ok":                                              "sig=*** ab ok",
		"web-app-1 stopped: exited (137)":                                 "web-app-1 stopped: exited (137)",
	} {
		if got := s.String(in); got != want {
			t.Errorf("%q\n got %q\nwant %q", in, got, want)
		}
	}
}

// TestNeverLeaks: an event full of secrets, through the dispatcher, to a
// Slack bot, a Slack webhook and a signed generic webhook: no secret in any
// request body.
func TestNeverLeaks(t *testing.T) {
	f := newFakeSlack(t)
	h := newHookServer(t)
	const (
		slackToken = "xoxb-test-token-123456"
		hookSecret = "whsec-0123456789"
		gitToken   = "glpat-Zx81kLmq0pQ"
	)
	hookURL := h.URL + "/in/8c1f0e77aa41"
	bot := botSlack(t, f, "#c")
	hook := hookSlack(t, f)
	wh, err := NewWebhook(WebhookConfig{URL: hookURL, Secret: hookSecret, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	slackHookURL := f.URL + "/hook/T000/B000/XXXXSECRETXXXX"
	d := New(Options{Routes: []Route{{Sink: bot}, {Sink: hook}, {Sink: wh}}, Secrets: []string{slackToken, hookSecret, hookURL, slackHookURL}})
	e := reconcile.Event{Kind: reconcile.EventRolloutFailed, Host: "h1", Fleet: "web", Service: "app",
		Revision: &reconcile.Revision{Commit: "abc", Subject: "rotate: set API_TOKEN=tok-777777 (oops)"},
		Message:  "rollout failed; notified " + hookURL + " and " + slackHookURL,
		Reason: "fetch https://oauth2:" + gitToken + "@gitlab.example.com/ops/fleet.git?private_token=" + gitToken + ": 401\n" +
			"env: DB_PASSWORD=hunter2 AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI HOME=/root\n" +
			"slack said invalid_auth for " + slackToken + ", signed with " + hookSecret,
		Drift: []drift.Item{{Container: "web-app-1", Kind: drift.Modified, Detail: "restarted with SESSION_KEY=k-9999",
			Fields: []drift.Field{{Field: "env.DATABASE_URL", Have: "postgres://app:pgpass42@db/app", Want: "postgres://app:pgpass42@db2/app"}}}},
	}
	d.Notify(e)
	posts := []string{}
	for range 2 {
		p := f.next(t)
		posts = append(posts, p.Text+p.Blocks)
	}
	posts = append(posts, string(h.next(t).body))
	closeDispatcher(t, d)
	secrets := []string{slackToken, hookSecret, gitToken, "hunter2", "wJalrXUtnFEMI", "tok-777777", "k-9999", "pgpass42", "8c1f0e77aa41", "XXXXSECRETXXXX"}
	for i, body := range posts {
		for _, secret := range secrets {
			if strings.Contains(body, secret) {
				t.Errorf("message %d leaks %q:\n%s", i, secret, body)
			}
		}
		if !strings.Contains(body, "HOME=/root") || !strings.Contains(body, "gitlab.example.com") {
			t.Errorf("message %d lost what is not secret:\n%s", i, body)
		}
	}
}
