package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetd/fleetd/agent"
	"github.com/fleetd/fleetd/fleets"
	"github.com/fleetd/fleetd/reconcile"
)

// statusServer is one agent's HTTP API as the dashboard reads it: its
// status at /v1/status, its dashboard (with its event log) under /ui/, and
// /v1/sync; every read needs the bearer token.
type statusServer struct {
	*httptest.Server
	agent *fakeAgent
	log   *EventLog
	syncs atomic.Int32
	down  atomic.Bool
}

func newStatusServer(t *testing.T, st agent.Status) *statusServer {
	t.Helper()
	s := &statusServer{agent: &fakeAgent{st: st}, log: NewEventLog(10, nil, nil)}
	h, err := New(Config{Backend: &Local{Agent: s.agent, Observer: fakeObserver{}, Log: s.log}, Tokens: Tokens{Read: readToken, API: apiToken}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ui/", h)
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+apiToken {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		writeJSON(w, s.agent.Status())
	})
	mux.HandleFunc("POST /v1/sync", func(w http.ResponseWriter, r *http.Request) {
		s.syncs.Add(1)
		w.WriteHeader(http.StatusAccepted)
	})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.down.Load() {
			http.Error(w, "agent restarting", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// get is the dashboard's reader: a GET with the token.
func get2xx(ctx context.Context, addr, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", addr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s: %s", res.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func TestRemoteAggregatesAgents(t *testing.T) {
	swarmFleet := func(standby string) agent.FleetStatus {
		return agent.FleetStatus{Name: "stack", Engine: fleets.EngineSwarm, Standby: standby, Services: []agent.ServiceStatus{{Name: "api", Replicas: 3}}}
	}
	a := newStatusServer(t, agent.Status{Host: "web-1", Engine: agent.EngineStatus{Up: true}, Fleets: []agent.FleetStatus{{Name: "shop"}, swarmFleet("")}})
	b := newStatusServer(t, agent.Status{Host: "web-2", Engine: agent.EngineStatus{Up: true}, Fleets: []agent.FleetStatus{{Name: "shop"}, swarmFleet("web-1-abc123")}})
	a.log.Notify(reconcile.Event{Time: t0, Kind: reconcile.EventDriftDetected, Host: "web-1", Fleet: "shop", Message: "1 containers drifted: stopped"})
	b.log.Notify(reconcile.Event{Time: t0.Add(time.Second), Kind: reconcile.EventDriftResolved, Host: "web-2", Fleet: "shop", Message: "drift resolved"})
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close() // nothing listens there any more

	now := t0
	r := NewRemote([]string{a.URL, b.URL, goneURL}, get2xx, func(ctx context.Context, addr string) error {
		_, err := http.Post(addr+"/v1/sync", "", nil)
		return err
	})
	r.Now = func() time.Time { return now }
	changed, stop := r.Subscribe()
	defer stop()
	r.Poll(t.Context())
	select {
	case <-changed:
	default:
		t.Error("first poll signalled no change")
	}

	var rows []string
	for _, row := range Overview(r.Hosts()) {
		rows = append(rows, fmt.Sprintf("%s@%s %v holder=%s %d/%d", row.Fleet, row.Host, row.Hosts, row.Holder, row.Healthy, row.Desired))
	}
	want := "shop@web-1 [web-1] holder= 0/0|shop@web-2 [web-2] holder= 0/0|stack@web-1 [web-1 web-2] holder=web-1 3/3"
	if got := strings.Join(rows, "|"); got != want {
		t.Errorf("overview:\n%s\nwant\n%s", got, want)
	}
	lines := HostLines(r.Hosts(), now)
	if !lines[0].Up || !lines[1].Up || lines[2].Up || lines[2].LastSeen != "never" || !strings.Contains(lines[2].Err, "connect") {
		t.Errorf("host lines: %+v", lines)
	}
	if evs := r.Events(); len(evs) != 2 || evs[0].Host != "web-1" || evs[1].Host != "web-2" {
		t.Errorf("events: %+v", evs)
	}

	// The same again is no change; web-2 going away is one, and it keeps
	// its last-seen time.
	r.Poll(t.Context())
	select {
	case <-changed:
		t.Error("a poll that read the same signalled a change")
	default:
	}
	b.down.Store(true)
	now = t0.Add(5 * time.Minute)
	r.Poll(t.Context())
	lines = HostLines(r.Hosts(), now)
	if lines[1].Up || lines[1].Name != "web-2" || lines[1].LastSeen != "5m ago" || !strings.Contains(lines[1].Err, "restarting") {
		t.Errorf("web-2 after it went away: %+v", lines[1])
	}
	for _, row := range Overview(r.Hosts()) {
		if row.Host == "web-2" {
			t.Errorf("row of the unreachable web-2 shown: %+v", row)
		}
	}

	// The dashboard's pages over the remote backend, and its action.
	h, err := New(Config{Backend: r, Tokens: Tokens{API: apiToken}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, h: h}
	_, body := e.do(get("/ui/", nil))
	for _, want := range []string{"web-1", "unreachable: 503 Service Unavailable: agent restarting", "5m ago", "never"} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard overview lacks %q", want)
		}
	}
	if err := r.Sync(t.Context(), "web-1"); err != nil || a.syncs.Load() != 1 {
		t.Errorf("sync web-1: %v, %d syncs", err, a.syncs.Load())
	}
	if err := r.Sync(t.Context(), "nowhere"); err == nil {
		t.Error("sync of an unknown host: no error")
	}
	var hosts []Host
	_, body = e.do(get("/ui/api/hosts", nil))
	if err := json.Unmarshal([]byte(body), &hosts); err != nil || len(hosts) != 3 {
		t.Errorf("api hosts: %v %d", err, len(hosts))
	}
}
