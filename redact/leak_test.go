package redact_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/fault"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/notify"
	"github.com/fleetd/fleetd/reconcile"
	"github.com/fleetd/fleetd/redact"
	"github.com/fleetd/fleetd/review"
)

// planted starts every secret value the test plants. Each place gets its
// own suffix, so that a rule that fails is not hidden by another rule
// masking the same value. It has no character that Markdown, HTML or
// JSON escape, so an escaped leak is still found.
const planted = "pl4ntedS3CRETvalue"

// leakRepo is a repository with the secret planted in every place a spec
// can hold one, and a fleet whose compose-go error echoes it.
var leakRepo = map[string]string{
	"shop/.env": "API_TOKEN=" + planted + "DOTENV\n",
	"shop/compose.yaml": `services:
  web:
    image: app:v2
    command: ["serve", "--password=` + planted + `CMD", "--db-token", "` + planted + `CMD2", "DB_PASSWORD=` + planted + `CMD3"]
    environment:
      API_TOKEN: ${API_TOKEN}
      DATABASE_URL: postgres://app:` + planted + `URL@db/app
      GREETING: hello ` + planted + `FILE
      NOTE: ${API_TOKEN}
    labels:
      com.example.auth-token: ` + planted + `LABEL
      com.example.copy: ${API_TOKEN}
    logging:
      driver: splunk
      options:
        splunk-token: ` + planted + `LOG
        splunk-url: https://fleetd:` + planted + `LOGURL@splunk.example.com
    healthcheck:
      test: ["CMD-SHELL", "check --password ` + planted + `HC && curl -H 'Authorization: Bearer ` + planted + `HC2' http://localhost/"]
    secrets: [db]
    x-fleetd:
      public_env: [DATABASE_URL, GREETING, NOTE]
secrets:
  db:
    file: ./db.txt
`,
	"shop/db.txt": planted + "FILE\n",
	"broken/.env": "DB_PASSWORD=" + planted + "BROKEN\n",
	"broken/compose.yaml": `services:
  app:
    image: app:v1
    cpus: ${DB_PASSWORD}
    environment:
      DB_PASSWORD: {value: ` + planted + `LITERAL}
`,
}

// TestNoSecretInAnyOutput is issue 17's figure: a secret planted in every
// place (environment under a secret-looking key, .env, a label, logging
// options, command flags, a healthcheck, URL credentials, a secret file, a
// value compose-go rejects) occurs 0 times in every output: the problems,
// drift text, plan text and JSON, the review's text, Markdown and JSON,
// /v1/status JSON, Slack and webhook notifications, and log lines.
func TestNoSecretInAnyOutput(t *testing.T) {
	dir := t.TempDir()
	for name, data := range leakRepo {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	host := fleets.Host{Name: "host-1"}
	desired, err := fleets.Load(t.Context(), dir, host)
	var problems fleets.ProblemList
	if !errors.As(err, &problems) || len(desired) != 1 {
		t.Fatalf("want the shop fleet and broken's problems, got %d fleets, %v", len(desired), err)
	}
	shop := desired[0]
	obs := observedBase(t, shop)

	outputs := map[string]string{"problems": problems.Error()}
	items := drift.Diff(desired, obs)
	outputs["drift text"] = drift.Text(items)
	outputs["drift json"] = mustJSON(t, items)
	plan := reconcile.Plan(desired, obs, reconcile.Policy{})
	outputs["plan text"] = plan.String()
	outputs["plan json"] = mustJSON(t, plan)

	rv := review.Compare(review.RevisionRef{Ref: "main"}, review.RevisionRef{Ref: "head"}, []review.HostRevisions{{
		Base: review.HostLoad{Host: host, Fleets: []fleets.Fleet{baseOf(shop)}},
		Head: review.HostLoad{Host: host, Fleets: desired, Problems: problems},
	}})
	outputs["review text"], outputs["review markdown"], outputs["review json"] = rv.String(), rv.Markdown(), mustJSON(t, rv)

	// The engine's errors echo what they were given: a known secret in a
	// fault reaches the status and the notifications through the agent.
	engineErr := "create shop-web-1: invalid mount config: " + planted + "FILE; exec --password " + planted + "ENGINE"
	state, effects := agentRun(t, shop, items, problems.Error(), engineErr)
	outputs["status json"] = mustJSON(t, agent.StatusOf(state, host.Name, time.Now()))

	// The daemon's logger path (cmd/fleetd newLogger and learnSecrets): a
	// Live handler that learns the known secret values of every fleet the
	// agent loads, before the agent acts on them.
	var logs bytes.Buffer
	live := &redact.Live{}
	log := slog.New(redact.LiveHandler(slog.NewJSONHandler(&logs, nil), live))
	for _, f := range desired {
		live.Learn(f.SecretValues()...)
	}
	var events []reconcile.Event
	for _, fx := range effects {
		if n, ok := fx.(agent.Notify); ok {
			events = append(events, n.Event)
			log.Info(n.Event.Message, "event", n.Event.Kind, "fleet", n.Event.Fleet, "reason", n.Event.Reason) // as the agent's shell logs them
		}
	}
	if len(events) == 0 {
		t.Fatal("the agent told nothing")
	}
	log.Warn("apply failed", "fleet", "shop", "err", errors.New("pull https://bot:"+planted+"PULL@registry.example.com/app: denied"))
	// The engine's error as the engine returns it, unredacted: only the
	// known values mask the secret file's contents in it.
	log.Error("apply failed", "fleet", "shop", "err", errors.New(engineErr))
	log.Error(engineErr)
	var unlearnt bytes.Buffer
	slog.New(redact.Handler(slog.NewJSONHandler(&unlearnt, nil), nil)).Error("apply failed", "err", errors.New(engineErr))
	if !strings.Contains(unlearnt.String(), planted+"FILE") {
		t.Fatalf("the engine error's secret is masked by a rule, so the log check proves nothing of known values: %s", unlearnt.String())
	}
	log.Error("load failed", "err", problems)
	outputs["notifications"] = notifyAll(t, events)
	outputs["log lines"] = logs.String()

	for name, out := range outputs {
		if n := strings.Count(out, planted); n != 0 {
			t.Errorf("%s: %d occurrences of the planted secret:\n%s", name, n, out)
		}
		if out == "" {
			t.Errorf("%s: empty", name)
		}
	}
	// The outputs still say what changed: the redaction masks values, not
	// the fields and flags that hold them.
	for _, want := range []string{"--password=***", "postgres://app:***@db/app", "labels.com.example.auth-token", "logging.options.splunk-token", "healthcheck.test"} {
		if !strings.Contains(outputs["plan text"]+outputs["review text"], want) {
			t.Errorf("the plan and the review lost %q", want)
		}
	}
	t.Logf("0 occurrences across %d outputs", len(outputs))
	if os.Getenv("LEAK_DUMP") != "" {
		for name, out := range outputs {
			t.Logf("== %s\n%s", name, out)
		}
	}
}

// baseOf is the fleet as it ran before: the service without the planted
// values (so every planted field changes).
func baseOf(f fleets.Fleet) fleets.Fleet {
	f.Services = []fleets.Service{f.Services[0]}
	s := &f.Services[0]
	s.Spec = fleets.Spec{Image: "app:v1", Restart: s.Spec.Restart, StopGracePeriod: s.Spec.StopGracePeriod, Networks: s.Spec.Networks}
	s.Secrets = nil
	hash, err := fleets.HashSpec(fleets.HashVersion, s.Spec)
	if err != nil {
		panic(err)
	}
	s.Hash = hash
	return f
}

// observedBase is the base fleet's container, running, as fleetd created
// it: the planted fleet recreates it.
func observedBase(t *testing.T, desired fleets.Fleet) drift.Observed {
	base := baseOf(desired)
	s := base.Services[0]
	spec, err := fleets.EncodeSpec(s.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return drift.Observed{
		Containers: []drift.Container{{
			ID: "c1", Name: drift.ContainerName(base.Name, s, 1), Image: "app:v1", ImageID: "sha256:1", State: "running", Status: "Up",
			Labels: map[string]string{
				fleets.LabelManaged: "true", fleets.LabelFleet: base.Name, fleets.LabelService: s.Name, fleets.LabelSlot: "1",
				fleets.LabelSpecHash: s.Hash, fleets.LabelHashVersion: fleets.HashVersion, fleets.LabelSpec: spec, fleets.LabelImageID: "sha256:1",
			},
		}},
		Images: map[string]string{"app:v1": "sha256:1", "app:v2": "sha256:2"},
	}
}

// agentRun feeds the agent a fleet whose apply found drift and failed on
// an engine error, and the next revision's problems; it returns the state
// and every effect.
func agentRun(t *testing.T, f fleets.Fleet, items []drift.Item, invalid, engineErr string) (agent.State, []agent.Effect) {
	t.Helper()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	s := agent.State{
		Started: true, Revision: &reconcile.Revision{Commit: "c1", Subject: "set DB_PASSWORD=" + planted + "COMMIT"},
		Invalid: invalid,
		Engine:  agent.EngineState{Up: true},
		Fleets: map[string]agent.Fleet{f.Name: {
			Name: f.Name, Model: &f, Rev: reconcile.Revision{Commit: "c1", Subject: "set DB_PASSWORD=" + planted + "COMMIT"},
			Running: true, Invalid: invalid,
		}},
	}
	s, fx := agent.Next(s, agent.ApplyDone{
		Fleet: f.Name, Revision: "c1", Drifted: items, Left: items,
		Faults: []agent.Fault{{Class: fault.Permanent, Reason: fault.Conflict, Object: "shop-web-1", Message: engineErr}},
	}, now, agent.Rules{Host: "host-1"})
	return s, fx
}

// notifyAll sends the events through a Slack incoming webhook and a
// generic webhook, and returns every request body.
func notifyAll(t *testing.T, events []reconcile.Event) string {
	var (
		mu     sync.Mutex
		bodies strings.Builder
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies.Write(b)
		bodies.WriteString("\n")
		mu.Unlock()
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	slack, err := notify.NewSlack(notify.SlackConfig{WebhookURL: srv.URL + "/hook/T0/B0/X"})
	if err != nil {
		t.Fatal(err)
	}
	hook, err := notify.NewWebhook(notify.WebhookConfig{URL: srv.URL + "/in"})
	if err != nil {
		t.Fatal(err)
	}
	d := notify.New(notify.Options{Routes: []notify.Route{{Sink: slack}, {Sink: hook}}})
	for _, e := range events {
		d.Notify(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return bodies.String()
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
