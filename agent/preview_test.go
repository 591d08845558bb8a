package agent_test

import (
	"strings"
	"testing"

	"github.com/fleetd/fleetd/fleets"
)

// TestPreviewAndChanges: the change feed signals as the agent works, and
// Preview plans over the agent's newest state and a fresh observation
// without acting (a container removed behind the agent's back, with no
// event told, is in the preview and stays missing).
func TestPreviewAndChanges(t *testing.T) {
	revs := map[string][]fleets.Fleet{"c1": {web("a", 2)}}
	h := start(t, revs, "c1", nil)
	changed, stop := h.a.Subscribe()
	defer stop()
	eventually(t, "a applied", func() bool { return h.fleet("a").Applied == "c1" && h.running("a-web-1") && h.running("a-web-2") })
	select {
	case <-changed:
	default:
		t.Error("no change signalled while the agent deployed")
	}
	text, err := h.a.Preview(t.Context())
	if err != nil || strings.TrimSpace(text) != "nothing to do" {
		t.Errorf("Preview when converged = %q, %v; want nothing to do", text, err)
	}
	h.eng.Remove("a-web-2")
	text, err = h.a.Preview(t.Context())
	if err != nil || !strings.Contains(text, "a-web-2") || !strings.Contains(text, "missing") {
		t.Errorf("Preview after a removal = %q, %v; want the missing a-web-2 created", text, err)
	}
	if h.running("a-web-2") {
		t.Error("Preview acted")
	}
}
