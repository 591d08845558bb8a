package notify

import (
	"fmt"
	"maps"
	"slices"
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
	KindFlapping:                     "Flapping",
	KindFlapResolved:                 "Stable again",
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
	KindFlapping:                     "🔁",
	KindFlapResolved:                 "✅",
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
	if !m.Since.IsZero() && m.Flap == nil { // a flapping's text says when

		if m.Kind == reconcile.EventDriftResolved || m.Kind == reconcile.EventSourceRecovered {
			out = append(out, "after "+roundDuration(m.Time.Sub(m.Since)).String())
		} else {
			out = append(out, "first reported "+m.Since.UTC().Format("2006-01-02 15:04 UTC"))
		}
	}
	if m.Suppressed > 0 {
		out = append(out, fmt.Sprintf("%d repeats suppressed since the last alert", m.Suppressed))
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
	if m.StatusURL != "" {
		s += " Status: " + m.StatusURL
	}
	return s
}

// flapText is the text of a flapping message of kind k about the alert e
// (the incident that made its key flap): what flaps, how often, and what
// fleetd does about it.
func flapText(e reconcile.Event, f *Flap, k reconcile.EventKind) string {
	what := flapObject(e)
	span := roundDuration(f.Last.Sub(f.First))
	if k == KindFlapResolved {
		return fmt.Sprintf("%s: stable again, healthy for %s; %s over %s.", what, f.Window, incidents(f.Count), span)
	}
	count := fmt.Sprintf("%s in %s", incidents(f.Count), f.Window)
	if span > f.Window {
		count = fmt.Sprintf("%s since %s", incidents(f.Count), f.First.UTC().Format("15:04:05 UTC"))
	}
	action := "fleetd keeps retrying."
	if e.Kind == reconcile.EventDriftDetected {
		action = fmt.Sprintf("fleetd keeps healing it, waiting %s after a heal, doubling up to %s.",
			reconcile.DefaultHealBackoff, reconcile.DefaultHealBackoffMax)
	}
	return fmt.Sprintf("%s: %s. %s Further incidents update this message where the destination can; one more message follows once it has been healthy for %s.",
		what, count, action, f.Window)
}

// flapObject names what flaps: "web-1 in fleet shop", "the repository".
func flapObject(e reconcile.Event) string {
	switch e.Kind {
	case reconcile.EventSourceUnreachable:
		return "the repository"
	case reconcile.EventEngineUnreachable:
		return "the Docker engine"
	case reconcile.EventFleetStalled, reconcile.EventFleetFailing:
		return "fleet " + e.Fleet + " (" + titles[e.Kind] + ")"
	}
	set := map[string]bool{}
	for _, it := range e.Drift {
		set[it.Container] = true
	}
	names := slices.Sorted(maps.Keys(set))
	if len(names) > 3 {
		names = append(names[:3], fmt.Sprintf("%d more", len(names)-3))
	}
	if len(names) == 0 {
		return "fleet " + e.Fleet
	}
	return strings.Join(names, ", ") + " in fleet " + e.Fleet
}

func incidents(n int) string {
	if n == 1 {
		return "1 incident"
	}
	return fmt.Sprintf("%d incidents", n)
}
