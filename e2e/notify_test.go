package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/fleetd/fleetd/engine/dockertest"
)

// sinkRecorder is a generic-webhook endpoint that keeps every payload.
type sinkRecorder struct {
	mu       sync.Mutex
	payloads []map[string]any
}

func (s *sinkRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var p map[string]any
	if err := json.Unmarshal(body, &p); err == nil {
		s.mu.Lock()
		s.payloads = append(s.payloads, p)
		s.mu.Unlock()
	}
	w.WriteHeader(http.StatusNoContent)
}

// count returns how many payloads of kind concern fleet.
func (s *sinkRecorder) count(kind, fleet string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.payloads {
		if p["kind"] == kind && p["fleet"] == fleet {
			n++
		}
	}
	return n
}

// TestNotifyDriftOnceAndResolvedOnce is issue 7's end-to-end check: with the
// agent running and a webhook sink configured, a `docker stop` of a managed
// container yields exactly one drift-detected and one drift-resolved
// message, however many events and reconciles the stop and the heal cause.
func TestNotifyDriftOnceAndResolvedOnce(t *testing.T) {
	cli := setup(t)
	t.Parallel()
	ref, _ := dockertest.TestImage(t, cli, "v1")
	fleet := dockertest.Name(t, "alerted")
	g := newGitServer(t)
	c1 := g.commit("", "v1", map[string]string{fleet + "/compose.yaml": webCompose(fleet, ref, "v1", 1)})
	sink := &sinkRecorder{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	d := startDaemon(t, daemonOpts{url: g.url(), interval: "1h",
		extra: fmt.Sprintf("notify: {webhooks: [{url: %q}]}\n", srv.URL+"/fleetd")})
	ids := waitConverged(t, d, cli, fleet, "v1", c1, 1, 3*time.Minute)

	var name string
	for n := range ids {
		name = n
	}
	docker(t, "stop", "-t", "1", name)
	waitFor(t, 2*time.Minute, "healed", func() (bool, string) {
		ok, _, detail := fleetState(t.Context(), cli, fleet, "v1", 1)
		return ok, detail
	})
	waitFor(t, time.Minute, "drift resolved reported", func() (bool, string) {
		return sink.count("drift-resolved", fleet) >= 1, fmt.Sprintf("%d resolved", sink.count("drift-resolved", fleet))
	})
	time.Sleep(3 * time.Second) // room for a duplicate to arrive
	if got := sink.count("drift-detected", fleet); got != 1 {
		t.Errorf("drift-detected messages for %s: %d, want exactly 1", fleet, got)
	}
	if got := sink.count("drift-resolved", fleet); got != 1 {
		t.Errorf("drift-resolved messages for %s: %d, want exactly 1", fleet, got)
	}
}
