package server

import (
	"strings"
	"sync"
	"testing"
	"time"
)

func TestReplayCacheSeen(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type call struct {
		key  string
		at   time.Duration // after t0
		want bool
	}
	tests := []struct {
		name    string
		ttl     time.Duration
		max     int
		calls   []call
		wantLen int
	}{
		{"first sighting", time.Hour, 10, []call{{"a", 0, false}}, 1},
		{"repeat within ttl", time.Hour, 10, []call{{"a", 0, false}, {"a", 59 * time.Minute, true}}, 1},
		{"repeat at ttl is new again", time.Hour, 10, []call{{"a", 0, false}, {"a", time.Hour, false}}, 1},
		{"a repeat does not extend the first sighting", time.Hour, 10,
			[]call{{"a", 0, false}, {"a", 50 * time.Minute, true}, {"a", 61 * time.Minute, false}}, 1},
		{"other keys are independent", time.Hour, 10,
			[]call{{"a", 0, false}, {"b", time.Minute, false}, {"a", 2 * time.Minute, true}, {"b", 3 * time.Minute, true}}, 2},
		{"expired keys are dropped", time.Hour, 10,
			[]call{{"a", 0, false}, {"b", time.Minute, false}, {"c", 90 * time.Minute, false}}, 1},
		{"full: the oldest is evicted", time.Hour, 2,
			[]call{{"a", 0, false}, {"b", time.Minute, false}, {"c", 2 * time.Minute, false},
				{"a", 3 * time.Minute, false}, // pushed out by c, so taken again (and it pushes out b)
				{"c", 4 * time.Minute, true}, {"b", 5 * time.Minute, false}}, 2},
		{"max one", time.Hour, 1,
			[]call{{"a", 0, false}, {"a", 0, true}, {"b", 0, false}, {"a", 0, false}}, 1},
		{"clock going back keeps keys", time.Hour, 10,
			[]call{{"a", time.Hour, false}, {"a", 0, true}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newReplayCache(tt.ttl, tt.max)
			for i, cl := range tt.calls {
				if got := c.seen(cl.key, t0.Add(cl.at)); got != cl.want {
					t.Errorf("call %d seen(%q, +%v) = %v, want %v", i, cl.key, cl.at, got, cl.want)
				}
				if c.len() > tt.max || len(c.at) != c.len() {
					t.Fatalf("call %d: %d keys, %d in order, max %d", i, len(c.at), c.len(), tt.max)
				}
			}
			if c.len() != tt.wantLen {
				t.Errorf("%d keys kept, want %d", c.len(), tt.wantLen)
			}
		})
	}
}

// TestReplayCacheBounded: a long stream of distinct IDs never holds more
// than max of them.
func TestReplayCacheBounded(t *testing.T) {
	c := newReplayCache(time.Hour, 100)
	now := time.Unix(0, 0)
	for i := range 10000 {
		if c.seen(strings.Repeat("x", i%7)+string(rune('a'+i%26))+time.Duration(i).String(), now) {
			t.Fatalf("id %d seen before", i)
		}
		if c.len() > 100 {
			t.Fatalf("%d keys after %d ids", c.len(), i+1)
		}
	}
}

func TestDeliveryKey(t *testing.T) {
	long := strings.Repeat("f", 1000)
	tests := []struct {
		provider, id, want string
	}{
		{"github", "", ""},
		{"github", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "github 72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{"gitea", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "gitea 72d3162e-cc78-11e3-81ab-4c9367dc0958"},
		{"gitlab", strings.Repeat("a", maxIDLen), "gitlab " + strings.Repeat("a", maxIDLen)},
	}
	for _, tt := range tests {
		if got := deliveryKey(tt.provider, tt.id); got != tt.want {
			t.Errorf("deliveryKey(%q, %q) = %q, want %q", tt.provider, tt.id, got, tt.want)
		}
	}
	got := deliveryKey("github", long)
	if !strings.HasPrefix(got, "github sha256:") || len(got) != len("github sha256:")+64 {
		t.Errorf("long ID kept as %q", got)
	}
	if got == deliveryKey("github", long+"g") {
		t.Error("two long IDs share a key")
	}
}

// withID adds a provider's delivery ID header to its signed headers.
func withID(provider, id string, hdr []string) []string {
	name := map[string]string{
		"github": "X-GitHub-Delivery", "gitlab": "Idempotency-Key",
		"gitea": "X-Gitea-Delivery", "forgejo": "X-Forgejo-Delivery",
	}[provider]
	return append(hdr, name, id)
}

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func TestWebhookReplay(t *testing.T) {
	const id = "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	for _, p := range []string{"github", "gitlab", "gitea", "forgejo"} {
		t.Run(p, func(t *testing.T) {
			clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
			srv, spy := newTestServer(t, func(c *Config) { c.Now = clock.Now })
			body := pushBody("refs/heads/main")
			post := func(id string, secret []byte) string {
				rec := do(srv.Handler(), "POST", hookPath(p), body, withID(p, id, deliver(p, "push", secret, body))...)
				return rec.Body.String()
			}
			// A refused delivery is not remembered: the real one with the
			// same ID (a forge's redelivery after a fix) is taken.
			if got := post(id, []byte("wrong")); !strings.Contains(got, "does not match") {
				t.Fatalf("wrong secret: %s", got)
			}
			check(t, do(srv.Handler(), "POST", hookPath(p), body, withID(p, id, deliver(p, "push", testSecret, body))...), 202, "accepted")
			spy.next(t)

			rec := do(srv.Handler(), "POST", hookPath(p), body, withID(p, id, deliver(p, "push", testSecret, body))...)
			check(t, rec, 200, "duplicate delivery, ignored")
			spy.none(t, srv)

			check(t, do(srv.Handler(), "POST", hookPath(p), body, withID(p, "another", deliver(p, "push", testSecret, body))...), 202, "accepted")
			spy.next(t)

			clock.Add(ReplayTTL)
			check(t, do(srv.Handler(), "POST", hookPath(p), body, withID(p, id, deliver(p, "push", testSecret, body))...), 202, "accepted")
			spy.next(t)
			hasLine(t, scrape(t, srv), `fleetd_webhook_requests_total{provider="`+strings.Replace(p, "forgejo", "gitea", 1)+`",result="duplicate"} 1`)
		})
	}
	t.Run("gitlab event uuid", func(t *testing.T) {
		srv, spy := newTestServer(t, nil)
		body := pushBody("refs/heads/main")
		hdr := append(deliver("gitlab", "push", testSecret, body), "X-Gitlab-Event-UUID", id)
		check(t, do(srv.Handler(), "POST", "/hooks/gitlab", body, hdr...), 202, "accepted")
		spy.next(t)
		check(t, do(srv.Handler(), "POST", "/hooks/gitlab", body, hdr...), 200, "duplicate")
		spy.none(t, srv)
	})
	t.Run("ignored pushes are not remembered", func(t *testing.T) {
		srv, spy := newTestServer(t, nil)
		body := pushBody("refs/heads/dev")
		hdr := withID("github", id, deliver("github", "push", testSecret, body))
		check(t, do(srv.Handler(), "POST", "/hooks/github", body, hdr...), 202, "ignored: push to dev")
		check(t, do(srv.Handler(), "POST", "/hooks/github", body, hdr...), 202, "ignored: push to dev")
		spy.none(t, srv)
	})
	t.Run("the same ID from two providers", func(t *testing.T) {
		srv, spy := newTestServer(t, nil)
		body := pushBody("refs/heads/main")
		check(t, do(srv.Handler(), "POST", "/hooks/github", body, withID("github", id, deliver("github", "push", testSecret, body))...), 202, "accepted")
		check(t, do(srv.Handler(), "POST", "/hooks/gitea", body, withID("gitea", id, deliver("gitea", "push", testSecret, body))...), 202, "accepted")
		spy.next(t)
	})
	t.Run("generic carries no ID", func(t *testing.T) {
		srv, spy := newTestServer(t, nil)
		body := pushBody("refs/heads/main")
		hdr := withID("github", id, deliver("generic", "", testSecret, body))
		check(t, do(srv.Handler(), "POST", "/hooks/generic", body, hdr...), 202, "accepted")
		spy.next(t)
		check(t, do(srv.Handler(), "POST", "/hooks/generic", body, hdr...), 202, "accepted")
		spy.next(t)
	})
}
