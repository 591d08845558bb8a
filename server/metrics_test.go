package server

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// scrape returns the /metrics exposition.
func scrape(t *testing.T, srv *Server) string {
	t.Helper()
	rec := do(srv.Handler(), "GET", "/metrics", nil)
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func hasLine(t *testing.T, text, line string) {
	t.Helper()
	for _, l := range strings.Split(text, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("no line %q in the exposition", line)
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	srv := New(Config{WebhookSecret: "s3cret", Branch: "main"}, m)

	m.ObserveReconcile("web", "applied", 1500*time.Millisecond)
	m.SetDrift(map[string]int{"missing": 2, "spec": 1})
	m.SetApplied("web", "aaaa")
	m.ObserveFetch(20*time.Millisecond, nil)
	m.ObserveFetch(30*time.Millisecond, errors.New("unreachable"))
	m.SetBackoff(4 * time.Second)
	m.ObserveRollout("succeeded")
	m.AddDropped(3)
	m.AddDeadLetters("discord", 2)
	m.AddDeadLetters("discord", 1)
	m.AddDeadLetters("ntfy", 0)
	body := pushBody("refs/heads/main")
	do(srv.Handler(), "POST", "/hooks/github", body, deliver("github", "push", testSecret, body)...)
	do(srv.Handler(), "POST", "/hooks/github", body, deliver("github", "push", []byte("x"), body)...)

	text := scrape(t, srv)
	for _, line := range []string{
		`fleetd_reconcile_total{fleet="web",result="applied"} 1`,
		`fleetd_reconcile_duration_seconds_count{fleet="web"} 1`,
		`fleetd_drift_items{kind="missing"} 2`,
		`fleetd_drift_items{kind="spec"} 1`,
		`fleetd_applied_revision_info{fleet="web",revision="aaaa"} 1`,
		`fleetd_git_fetch_duration_seconds_count 2`,
		`fleetd_git_fetch_failures_total 1`,
		`fleetd_git_backoff_seconds 4`,
		`fleetd_rollouts_total{outcome="succeeded"} 1`,
		`fleetd_webhook_requests_total{provider="github",result="accepted"} 1`,
		`fleetd_webhook_requests_total{provider="github",result="unauthorized"} 1`,
		`fleetd_notifications_dropped_total 3`,
		`fleetd_notify_dead_letters_total{sink="discord"} 3`,
	} {
		hasLine(t, text, line)
	}
	for _, name := range []string{"go_goroutines", "process_"} {
		if !strings.Contains(text, name) && !(name == "process_" && !processMetrics()) {
			t.Errorf("no %s metrics", name)
		}
	}

	// Drift kinds that went away read 0; an applied revision replaces the
	// previous series.
	m.SetDrift(map[string]int{"spec": 3})
	m.SetApplied("web", "bbbb")
	m.SetApplied("api", "cccc")
	text = scrape(t, srv)
	hasLine(t, text, `fleetd_drift_items{kind="missing"} 0`)
	hasLine(t, text, `fleetd_drift_items{kind="spec"} 3`)
	hasLine(t, text, `fleetd_applied_revision_info{fleet="web",revision="bbbb"} 1`)
	hasLine(t, text, `fleetd_applied_revision_info{fleet="api",revision="cccc"} 1`)
	if strings.Contains(text, `revision="aaaa"`) {
		t.Error("the previous applied revision is still exported")
	}
}

// processMetrics reports whether the process collector works here (it
// needs /proc on Linux).
func processMetrics() bool {
	m := NewMetrics()
	mfs, err := m.Registry.Gather()
	if err != nil {
		return false
	}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "process_") {
			return true
		}
	}
	return false
}

func TestMetricsNilSafe(t *testing.T) {
	var m *Metrics
	m.ObserveReconcile("web", "applied", time.Second)
	m.SetDrift(map[string]int{"spec": 1})
	m.SetApplied("web", "a")
	m.ObserveFetch(time.Second, errors.New("x"))
	m.SetBackoff(time.Second)
	m.ObserveRollout("failed")
	m.AddDropped(1)
	m.AddDeadLetters("discord", 1)
}

func TestNewWithoutMetrics(t *testing.T) {
	srv := New(Config{}, nil)
	if !strings.Contains(scrape(t, srv), "fleetd_git_fetch_failures_total 0") {
		t.Error("a server without Metrics serves its own registry")
	}
}

// daemonMetrics mirrors reconcile.Metrics, which the daemon loop reports
// to; cmd/fleetd passes a *Metrics there. (server does not import
// reconcile; the wiring type-checks it too.)
type daemonMetrics interface {
	ObserveReconcile(fleet, result string, d time.Duration)
	SetDrift(byKind map[string]int)
	SetApplied(fleet, revision string)
	ObserveFetch(d time.Duration, err error)
	SetBackoff(d time.Duration)
	ObserveRollout(outcome string)
}

var _ daemonMetrics = (*Metrics)(nil)

func TestConditionSeries(t *testing.T) {
	m := NewMetrics()
	srv := New(Config{}, m)
	m.SetCondition("a", "Stalled", true, "Conflict")
	m.SetCondition("a", "Ready", false, "Conflict")
	m.SetCondition("b", "Ready", true, "Converged")
	text := scrape(t, srv)
	hasLine(t, text, `fleetd_fleet_condition{fleet="a",reason="Conflict",type="Stalled"} 1`)
	hasLine(t, text, `fleetd_fleet_condition{fleet="a",reason="Conflict",type="Ready"} 0`)
	// A new reason replaces the series; a forgotten fleet has none.
	m.SetCondition("a", "Stalled", false, "AsExpected")
	m.ForgetFleet("b")
	text = scrape(t, srv)
	hasLine(t, text, `fleetd_fleet_condition{fleet="a",reason="AsExpected",type="Stalled"} 0`)
	for _, gone := range []string{`reason="Conflict",type="Stalled"`, `fleet="b"`} {
		if strings.Contains(text, gone) {
			t.Errorf("series %s still exposed", gone)
		}
	}
}

func TestBuildInfoAndLastSuccess(t *testing.T) {
	m := NewMetrics()
	srv := New(Config{}, m)
	m.SetBuildInfo("v1.2.3", "abc123", "go1.26")
	before := time.Now().Unix()
	m.ObserveReconcile("web", "ok", time.Second)
	m.ObserveReconcile("db", "failed", time.Second)
	text := scrape(t, srv)
	hasLine(t, text, `fleetd_build_info{goversion="go1.26",revision="abc123",version="v1.2.3"} 1`)
	if strings.Contains(text, `fleetd_last_success_timestamp_seconds{fleet="db"}`) {
		t.Error("a failed apply set the last success")
	}
	var ts int64
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, `fleetd_last_success_timestamp_seconds{fleet="web"} `); ok {
			f, _ := strconv.ParseFloat(v, 64)
			ts = int64(f)
		}
	}
	if ts < before {
		t.Errorf("last success of web %d, want at least %d", ts, before)
	}
	m.ForgetFleet("web")
	if strings.Contains(scrape(t, srv), `fleetd_last_success_timestamp_seconds{fleet="web"}`) {
		t.Error("a forgotten fleet keeps its last success")
	}
}
