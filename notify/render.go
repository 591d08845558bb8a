package notify

import (
	"fmt"
	"strings"
	"time"

	"github.com/fleetd/fleetd/drift"
	"github.com/fleetd/fleetd/reconcile"
)

// titles are the headlines of each kind, for people on a phone.
var titles = map[reconcile.EventKind]string{
	reconcile.EventDaemonStarted:     "fleetd started",
	reconcile.EventRevisionApplied:   "Revision applied",
	reconcile.EventRolloutStarted:    "Rollout started",
	reconcile.EventRolloutBatch:      "Rollout batch done",
	reconcile.EventRolloutSucceeded:  "Rollout succeeded",
	reconcile.EventRolloutFailed:     "Rollout failed",
	reconcile.EventRolloutRolledBack: "Rollout rolled back",
	reconcile.EventRolloutPaused:     "Rollout paused",
	reconcile.EventDriftDetected:     "Drift detected",
	reconcile.EventDriftResolved:     "Drift resolved",
	reconcile.EventInvalidRevision:   "Invalid revision",
	reconcile.EventSourceUnreachable: "Repository unreachable",
	reconcile.EventSourceRecovered:   "Repository reachable again",
	reconcile.EventPruneRefused:      "Prune refused",
	reconcile.EventFleetStalled:      "Fleet stalled",
	reconcile.EventFleetFailing:      "Fleet failing",
	reconcile.EventFleetRecovered:    "Fleet converges again",
	reconcile.EventEngineUnreachable: "Docker engine unreachable",
	reconcile.EventEngineRecovered:   "Docker engine back",
	KindTest:                         "Test message",
}

var icons = map[reconcile.EventKind]string{
	reconcile.EventDaemonStarted:     "🚀",
	reconcile.EventRevisionApplied:   "✅",
	reconcile.EventRolloutStarted:    "🔄",
	reconcile.EventRolloutBatch:      "▶️",
	reconcile.EventRolloutSucceeded:  "✅",
	reconcile.EventRolloutFailed:     "❌",
	reconcile.EventRolloutRolledBack: "⏪",
	reconcile.EventRolloutPaused:     "⏸️",
	reconcile.EventDriftDetected:     "⚠️",
	reconcile.EventDriftResolved:     "✅",
	reconcile.EventInvalidRevision:   "❌",
	reconcile.EventSourceUnreachable: "⚠️",
	reconcile.EventSourceRecovered:   "✅",
	reconcile.EventPruneRefused:      "🛑",
	reconcile.EventFleetStalled:      "🛑",
	reconcile.EventFleetFailing:      "⚠️",
	reconcile.EventFleetRecovered:    "✅",
	reconcile.EventEngineUnreachable: "⚠️",
	reconcile.EventEngineRecovered:   "✅",
	KindTest:                         "🔔",
}

// title is the headline: what happened, then where.
func title(m Message) string {
	t := titles[m.Kind]
	if t == "" {
		t = string(m.Kind)
	}
	if m.Repeat {
		t = "Still: " + t
	}
	if m.Service != "" {
		t += ": " + m.Service
	}
	if icon := icons[m.Kind]; icon != "" {
		t = icon + " " + t
	}
	return t
}

// where is "fleet @ host", or just the host.
func where(m Message) string {
	switch {
	case m.Fleet != "" && m.Host != "":
		return m.Fleet + " @ " + m.Host
	case m.Fleet != "":
		return m.Fleet
	}
	return m.Host
}

// shortHash is the first 7 characters of a commit.
func shortHash(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// commitURL links a commit under the repository's web URL.
func commitURL(webURL string, rev *reconcile.Revision) string {
	if webURL == "" || rev == nil || rev.Commit == "" {
		return ""
	}
	return strings.TrimRight(webURL, "/") + "/commit/" + rev.Commit
}

// notes are the small print: repeats, suppressed flaps, drops.
func notes(m Message) []string {
	var out []string
	if !m.Since.IsZero() {
		if m.Kind == reconcile.EventDriftResolved || m.Kind == reconcile.EventSourceRecovered {
			out = append(out, "after "+roundDuration(m.Time.Sub(m.Since)).String())
		} else {
			out = append(out, "first reported "+m.Since.UTC().Format("2006-01-02 15:04 UTC"))
		}
	}
	if m.Suppressed > 0 {
		out = append(out, fmt.Sprintf("%d repeats suppressed since the last alert (flapping)", m.Suppressed))
	}
	if m.Dropped > 0 {
		out = append(out, fmt.Sprintf("%d earlier notifications were dropped", m.Dropped))
	}
	return out
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d < time.Minute:
		return d.Round(time.Second)
	}
	return d.Round(time.Minute)
}

// maxDriftRows bounds the table so that a message stays readable.
const maxDriftRows = 15

// driftRows renders drift as lines: "web-1  stopped" and, per field,
// "  image: nginx:1.25 → nginx:1.27" (have → want).
func driftRows(items []drift.Item) []string {
	var rows []string
	for _, it := range items {
		row := it.Container + "  " + string(it.Kind)
		if it.Detail != "" {
			row += "  (" + clip(it.Detail, 80) + ")"
		}
		rows = append(rows, row)
		for _, f := range it.Fields {
			rows = append(rows, fmt.Sprintf("  %s: %s → %s", f.Field, clip(f.Have, 60), clip(f.Want, 60)))
		}
	}
	if len(rows) > maxDriftRows {
		more := len(rows) - maxDriftRows + 1
		rows = append(rows[:maxDriftRows-1], fmt.Sprintf("… and %d more lines", more))
	}
	return rows
}

// clip shortens s to n runes.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// plainText is the one-line fallback (notifications, logs, clients
// without blocks).
func plainText(m Message) string {
	s := title(m)
	if w := where(m); w != "" {
		s += " [" + w + "]"
	}
	if m.Message != "" {
		s += ": " + m.Message
	}
	return s
}
