package reconcile

import (
	"testing"
	"time"
)

// TestHealBackoff: a heal waits 10s after the first, doubling to 5m; a
// container last healed 10 minutes ago or more heals at once and starts
// over (it stayed up since).
func TestHealBackoff(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		rec      HealRecord
		now      time.Time
		due      bool
		notAfter time.Time
	}{
		{"never healed", HealRecord{}, t0, true, time.Time{}},
		{"first backoff", HealRecord{Attempts: 1, Last: t0}, t0.Add(5 * time.Second), false, t0.Add(10 * time.Second)},
		{"first backoff over", HealRecord{Attempts: 1, Last: t0}, t0.Add(10 * time.Second), true, t0.Add(10 * time.Second)},
		{"third attempt waits 40s", HealRecord{Attempts: 3, Last: t0}, t0.Add(39 * time.Second), false, t0.Add(40 * time.Second)},
		{"capped at 5m", HealRecord{Attempts: 12, Last: t0}, t0.Add(4 * time.Minute), false, t0.Add(5 * time.Minute)},
		{"crash loop at the cap still waits", HealRecord{Attempts: 12, Last: t0}, t0.Add(5*time.Minute - time.Second), false, t0.Add(5 * time.Minute)},
		{"up 10 minutes since the last heal: reset", HealRecord{Attempts: 12, Last: t0}, t0.Add(HealBackoffReset), true, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := Policy{Now: c.now, Heals: map[string]HealRecord{"web-1": c.rec}}
			due, next := p.healDue("web-1")
			if due != c.due || !next.Equal(c.notAfter) {
				t.Errorf("healDue = %v, %v; want %v, %v", due, next, c.due, c.notAfter)
			}
		})
	}
}

// TestRecordHealsResets: a heal counted after the reset period starts the
// count again, so the next backoff is the first one.
func TestRecordHealsResets(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	rep := Report{Results: []Result{{Action: Action{Op: OpStart, Target: "web-1", Heal: true}, Status: Done}}}
	heals := map[string]HealRecord{"web-1": {Attempts: 9, Last: t0}}
	if got := RecordHeals(heals, rep, t0.Add(time.Minute))["web-1"]; got.Attempts != 10 {
		t.Errorf("a heal a minute later: attempts %d, want 10", got.Attempts)
	}
	if got := RecordHeals(heals, rep, t0.Add(HealBackoffReset))["web-1"]; got.Attempts != 1 {
		t.Errorf("a heal after the reset period: attempts %d, want 1", got.Attempts)
	}
}
