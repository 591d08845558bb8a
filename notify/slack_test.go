package notify

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

const webURL = "https://git.example.com/ops/fleet"

// TestSlackContentPerKind: every kind renders a header, where, the
// revision with its commit link, and its details.
func TestSlackContentPerKind(t *testing.T) {
	f := newFakeSlack(t)
	s := hookSlack(t, f)
	cases := []struct {
		event reconcile.Event
		want  []string
	}{
		{reconcile.Event{Kind: reconcile.EventDaemonStarted, Message: "fleetd v1.2.0 started on h1"}, []string{"fleetd started", "fleetd v1.2.0 started on h1"}},
		{reconcile.Event{Kind: reconcile.EventRevisionApplied, Fleet: "web", Message: "revision 0123456 applied: 1 recreated"}, []string{"Revision applied", "web @ h1", "<" + webURL + "/commit/" + testRev.Commit + "|0123456>", "web: bump nginx to 1.27", "Ada Lovelace", "1 recreated"}},
		{reconcile.Event{Kind: reconcile.EventRolloutStarted, Fleet: "web", Service: "app", Message: "rolling out 3f2a over 4 replicas"}, []string{"Rollout started: app", "over 4 replicas"}},
		{reconcile.Event{Kind: reconcile.EventRolloutBatch, Fleet: "web", Service: "app", Message: "batch 1 of 2 replaced"}, []string{"Rollout batch done: app"}},
		{reconcile.Event{Kind: reconcile.EventRolloutSucceeded, Fleet: "web", Service: "app", Message: "4 replicas on 3f2a"}, []string{"Rollout succeeded: app"}},
		{reconcile.Event{Kind: reconcile.EventRolloutFailed, Fleet: "web", Service: "app", Message: "batch failed", Reason: "web-app-2: health check failed"}, []string{"Rollout failed: app", "*Reason*", "health check failed", "error"}},
		{reconcile.Event{Kind: reconcile.EventRolloutRolledBack, Fleet: "web", Service: "app", Message: "back on 9c1d"}, []string{"Rollout rolled back: app"}},
		{reconcile.Event{Kind: reconcile.EventRolloutPaused, Fleet: "web", Service: "app", Message: "paused after 2 failures"}, []string{"Rollout paused: app"}},
		{reconcile.Event{Kind: reconcile.EventDriftDetected, Fleet: "web", Message: "2 containers drifted: modified, stopped", Drift: []drift.Item{
			stopped("web-app-1"),
			{Container: "web-app-2", Kind: drift.Modified, Fields: []drift.Field{{Field: "memory", Have: "256MiB", Want: "512MiB"}}},
		}}, []string{"Drift detected", "web-app-1  stopped  (exited (137))", "web-app-2  modified", "memory: 256MiB → 512MiB", "warning"}},
		{reconcile.Event{Kind: reconcile.EventDriftResolved, Fleet: "web", Message: "drift resolved: in sync again"}, []string{"Drift resolved", "in sync again"}},
		{reconcile.Event{Kind: reconcile.EventInvalidRevision, Message: "revision 0123456 is invalid and was not applied", Reason: "web/compose.yaml:12: services.app.image: required"}, []string{"Invalid revision", "compose.yaml:12"}},
		{reconcile.Event{Kind: reconcile.EventSourceUnreachable, Message: "the fleet repository cannot be reached", Reason: "dial tcp 10.0.0.1:443: i/o timeout"}, []string{"Repository unreachable", "i/o timeout"}},
		{reconcile.Event{Kind: reconcile.EventSourceRecovered, Message: "the fleet repository is reachable again"}, []string{"Repository reachable again"}},
		{reconcile.Event{Kind: reconcile.EventPruneRefused, Message: "prune refused", Reason: "would remove 6 of 8 managed containers"}, []string{"Prune refused", "6 of 8"}},
	}
	for _, c := range cases {
		t.Run(string(c.event.Kind), func(t *testing.T) {
			e := c.event
			e.Host, e.Time = "h1", time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
			if e.Kind != reconcile.EventDaemonStarted {
				e.Revision = testRev
			}
			m := Message{Event: e, Severity: SeverityOf(e.Kind), CommitURL: commitURL(webURL, e.Revision)}
			if err := s.Send(t.Context(), m); err != nil {
				t.Fatal(err)
			}
			p := f.next(t)
			var blocks []map[string]any
			if err := json.Unmarshal([]byte(p.Blocks), &blocks); err != nil || len(blocks) < 2 || blocks[0]["type"] != "header" {
				t.Fatalf("blocks %s: %v", p.Blocks, err)
			}
			all := p.Text + "\n" + p.Blocks
			all = strings.ReplaceAll(all, `\u003c`, "<")
			all = strings.ReplaceAll(all, `\u003e`, ">")
			all = strings.ReplaceAll(all, `\n`, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("missing %q in\n%s", w, all)
				}
			}
		})
	}
}

// TestSlackThreading: with a bot token, a rollout's progress goes into the
// thread of its rollout-started message; a failure is also broadcast.
func TestSlackThreading(t *testing.T) {
	f := newFakeSlack(t)
	d := New(Options{Routes: []Route{{Sink: botSlack(t, f, "#deploys")}}})
	defer closeDispatcher(t, d)
	ev := func(k reconcile.EventKind, service string) reconcile.Event {
		return reconcile.Event{Kind: k, Host: "h1", Fleet: "web", Service: service, Revision: testRev, Message: string(k)}
	}
	d.Notify(ev(reconcile.EventRolloutStarted, "app"))
	started := f.next(t)
	d.Notify(ev(reconcile.EventRolloutStarted, "worker"))
	f.next(t) // worker's rollout-started
	d.Notify(ev(reconcile.EventRolloutBatch, "app"))
	d.Notify(ev(reconcile.EventRolloutBatch, "worker"))
	d.Notify(ev(reconcile.EventRolloutFailed, "worker"))
	d.Notify(ev(reconcile.EventRolloutSucceeded, "app"))
	d.Notify(ev(reconcile.EventRolloutBatch, "app")) // after success: no thread left
	batchApp, batchWorker, failWorker, okApp, late := f.next(t), f.next(t), f.next(t), f.next(t), f.next(t)
	if started.ThreadTS != "" || started.Channel != "#deploys" || started.Token != "xoxb-test-token-123456" {
		t.Fatalf("started: %+v", started)
	}
	startedTS, otherTS := "1700000000.000001", "1700000000.000002"
	for name, c := range map[string]struct {
		p  slackPost
		ts string
	}{"batch app": {batchApp, startedTS}, "succeeded app": {okApp, startedTS}, "batch worker": {batchWorker, otherTS}, "failed worker": {failWorker, otherTS}, "late": {late, ""}} {
		if c.p.ThreadTS != c.ts {
			t.Errorf("%s: thread %q, want %q", name, c.p.ThreadTS, c.ts)
		}
	}
	if !failWorker.Broadcast || batchWorker.Broadcast {
		t.Errorf("broadcast: failure %v, batch %v", failWorker.Broadcast, batchWorker.Broadcast)
	}
}

// TestSlackRouting: a fleet's slack_channel overrides the sink's channel,
// and its rollout threads live there.
func TestSlackRouting(t *testing.T) {
	f := newFakeSlack(t)
	d := New(Options{Routes: []Route{{Sink: botSlack(t, f, "#fleetd")}}})
	defer closeDispatcher(t, d)
	d.Notify(reconcile.Event{Kind: reconcile.EventRolloutStarted, Host: "h1", Fleet: "payments", Service: "api", SlackChannel: "#payments-ops"})
	d.Notify(reconcile.Event{Kind: reconcile.EventRolloutBatch, Host: "h1", Fleet: "payments", Service: "api", SlackChannel: "#payments-ops"})
	d.Notify(driftEvent("web", stopped("web-app-1")))
	a, b, c := f.next(t), f.next(t), f.next(t)
	if a.Channel != "#payments-ops" || b.Channel != "#payments-ops" || b.ThreadTS == "" || c.Channel != "#fleetd" {
		t.Fatalf("channels %q %q(thread %q) %q", a.Channel, b.Channel, b.ThreadTS, c.Channel)
	}
}

// TestSlackRateLimit: a 429 with Retry-After is waited out, then the
// message is delivered; for the Web API and the incoming webhook.
func TestSlackRateLimit(t *testing.T) {
	for name, mk := range map[string]func(*testing.T, *fakeSlack) *Slack{
		"web-api": func(t *testing.T, f *fakeSlack) *Slack { return botSlack(t, f, "#c") },
		"webhook": hookSlack,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeSlack(t)
			f.limited = 1
			s := mk(t, f)
			start := time.Now()
			if err := s.Send(t.Context(), Message{Event: reconcile.Event{Kind: reconcile.EventDaemonStarted, Host: "h1"}}); err != nil {
				t.Fatal(err)
			}
			p := f.next(t)
			f.mu.Lock()
			calls := f.calls
			f.mu.Unlock()
			if len(calls) != 2 {
				t.Fatalf("%d calls, want 2", len(calls))
			}
			if waited := calls[1].Sub(calls[0]); waited < time.Second {
				t.Errorf("retried after %v, before Retry-After (1s)", waited)
			}
			if p.At.Sub(start) > 3*time.Second {
				t.Errorf("took %v", p.At.Sub(start))
			}
		})
	}
}

// TestSlackGivesUp: attempts are bounded; a permanent error is not retried.
func TestSlackGivesUp(t *testing.T) {
	f := newFakeSlack(t)
	f.limited = 100
	s, err := NewSlack(SlackConfig{Token: "xoxb-1", Channel: "#c", APIURL: f.URL + "/api/", Retry: Retry{Attempts: 2, MaxRetryAfter: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	// Retry-After (1s) exceeds MaxRetryAfter: give up at once rather than
	// hold the queue.
	if err := s.Send(t.Context(), Message{Event: reconcile.Event{Kind: reconcile.EventDaemonStarted}}); err == nil {
		t.Fatal("no error")
	}
	if n := len(f.calls); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestNewSlackConfig(t *testing.T) {
	for _, c := range []SlackConfig{{}, {WebhookURL: "https://x", Token: "t", Channel: "c"}, {Token: "t"}} {
		if _, err := NewSlack(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestSlackFlapping: with a bot token, the flapping message is posted
// once, later counts update it in place (chat.update of its channel and
// ts), and the end of the flapping updates it once more and replies in
// its thread. Secrets never reach Slack.
func TestSlackFlapping(t *testing.T) {
	const secret = "hunter2-flap-secret-value"
	f := newFakeSlack(t)
	c := newClock()
	d := New(Options{Routes: []Route{{Sink: botSlack(t, f, "#ops")}}, Now: c.Now, CheckEvery: time.Millisecond,
		Secrets: []string{secret}, StatusURL: "https://fleetd.example.com/status"})
	defer closeDispatcher(t, d)
	down := driftEvent("web", drift.Item{Container: "web-app-1", Kind: drift.Stopped, Detail: "exited (137): " + secret})
	down.Reason = "oom with TOKEN=" + secret
	for range 2 {
		d.Notify(down)
		d.Notify(resolvedEvent("web"))
	}
	d.Notify(down)
	var posts []slackPost
	for range 5 {
		posts = append(posts, f.next(t))
	}
	flap := posts[4]
	if flap.Path != "/api/chat.postMessage" || !strings.Contains(flap.Text, "3 incidents in 10m0s") || !strings.Contains(flap.Text, "https://fleetd.example.com/status") {
		t.Fatalf("flapping message: %+v", flap)
	}
	flapTS := "1700000000.000005"
	c.Advance(31 * time.Second)
	d.Notify(resolvedEvent("web"))
	d.Notify(down)
	upd := f.next(t)
	if upd.Path != "/api/chat.update" || upd.Channel != "#ops" || upd.TS != flapTS || !strings.Contains(upd.Text, "Flapping") {
		t.Fatalf("update: %+v, want chat.update of #ops %s", upd, flapTS)
	}
	c.Advance(11 * time.Minute) // the incident above is still open: no end
	d.Notify(resolvedEvent("web"))
	upd = f.next(t)
	if upd.Path != "/api/chat.update" || upd.TS != flapTS || !strings.Contains(upd.Text, "4 incidents since") {
		t.Fatalf("update with the new count: %+v", upd)
	}
	c.Advance(11 * time.Minute)
	end, reply := f.next(t), f.next(t)
	if end.Path != "/api/chat.update" || end.TS != flapTS || !strings.Contains(end.Text, "Stable again") || !strings.Contains(end.Text, "4 incidents over") {
		t.Fatalf("end of the flapping, in place: %+v", end)
	}
	if reply.Path != "/api/chat.postMessage" || reply.ThreadTS != flapTS || reply.Text != end.Text {
		t.Fatalf("end of the flapping, in the thread: %+v", reply)
	}
	closeDispatcher(t, d)
	all := f.allPosts()
	if len(all) != 9 {
		t.Errorf("%d calls, want 9 (4 incidents and resolutions, flapping, 2 updates, end, reply)", len(all))
	}
	for _, p := range all {
		if strings.Contains(p.Text+p.Blocks, secret) {
			t.Errorf("%s leaks the secret: %s %s", p.Path, p.Text, p.Blocks)
		}
	}
}

// TestSlackWebhookFlapping: an incoming webhook cannot update a message:
// it gets the flapping message and the flap-resolved one, no updates.
func TestSlackWebhookFlapping(t *testing.T) {
	f := newFakeSlack(t)
	c := newClock()
	s := hookSlack(t, f)
	if s.CanUpdate() || !botSlack(t, f, "#c").CanUpdate() {
		t.Fatal("CanUpdate: want false for a webhook, true for a bot token")
	}
	d := New(Options{Routes: []Route{{Sink: s}}, Now: c.Now, CheckEvery: time.Millisecond})
	defer closeDispatcher(t, d)
	for range 6 {
		d.Notify(driftEvent("web", stopped("web-app-1")))
		d.Notify(resolvedEvent("web"))
		c.Advance(40 * time.Second)
	}
	for range 5 {
		f.next(t)
	}
	c.Advance(11 * time.Minute)
	end := f.next(t)
	if !strings.Contains(end.Text, "Stable again") || !strings.Contains(end.Text, "6 incidents over") {
		t.Fatalf("end: %+v", end)
	}
	closeDispatcher(t, d)
	all := f.allPosts()
	var texts []string
	for _, p := range all {
		if !strings.HasPrefix(p.Path, "/hook/") {
			t.Errorf("a webhook sink called %s", p.Path)
		}
		texts = append(texts, p.Text)
	}
	if len(all) != 6 || !strings.Contains(all[4].Text, "Flapping") {
		t.Errorf("%d posts, want 6 (2 incidents, 2 resolutions, flapping, end):\n%s", len(all), strings.Join(texts, "\n"))
	}
}
