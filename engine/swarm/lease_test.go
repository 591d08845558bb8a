package swarm

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func TestLeaseParamsValidate(t *testing.T) {
	if err := DefaultLeaseParams.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []LeaseParams{
		{Duration: 10 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second},
		{Duration: 15 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 2 * time.Second},
		{Duration: 15 * time.Second, RenewDeadline: 10 * time.Second},
		{Duration: 15 * time.Second, RenewDeadline: 12 * time.Second, RetryPeriod: 2 * time.Second},
	} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func TestLeaseDecisions(t *testing.T) {
	p := DefaultLeaseParams
	a := Elector{ID: "a"}.Observe(LeaseRecord{Version: 1}, t0, p)
	want, ok := a.Try(t0, p)
	if !ok || want.Holder != "a" || want.Transitions != 1 || want.Version != 1 || !want.Acquired.Equal(t0) {
		t.Fatalf("a free lease: got %+v, %v", want, ok)
	}
	a = a.Wrote(want, t0, 2)
	if !a.Leading(t0.Add(9*time.Second), p) || a.Leading(t0.Add(10*time.Second), p) {
		t.Error("the holder must lead until the renew deadline from the write's start, and not after")
	}

	b := Elector{ID: "b"}.Observe(a.Observed, t0.Add(time.Second), p)
	// It may have changed up to one retry period before b's first read.
	if _, ok := b.Try(t0.Add(14*time.Second-time.Millisecond), p); ok {
		t.Error("b took over before the lease duration passed since the lease can have changed")
	}
	if b.Leading(t0.Add(2*time.Second), p) {
		t.Error("a candidate leads")
	}
	take, ok := b.Try(t0.Add(14*time.Second), p)
	if !ok || take.Holder != "b" || take.Transitions != 2 || take.Version != 2 {
		t.Fatalf("takeover: got %+v, %v", take, ok)
	}

	// A renewal keeps the acquisition time and the transitions.
	renew, ok := a.Try(t0.Add(2*time.Second), p)
	if !ok || !renew.Acquired.Equal(t0) || renew.Transitions != 1 || !renew.Renewed.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("renewal: got %+v, %v", renew, ok)
	}
	// A renewal seen by b restarts its wait, counted from b's previous
	// read (the renewal landed after it started).
	b = b.Observe(LeaseRecord{Holder: "a", Renewed: renew.Renewed, Transitions: 1, Version: 3}, t0.Add(3*time.Second), p)
	if _, ok := b.Try(t0.Add(16*time.Second-time.Millisecond), p); ok {
		t.Error("b took over less than the lease duration after the read before the renewal")
	}
	if _, ok := b.Try(t0.Add(16*time.Second), p); !ok {
		t.Error("b did not take over the lease duration after the read before the renewal")
	}

	// Release lets another agent take over at once.
	rel, ok := a.Release()
	if !ok || rel.Holder != "" {
		t.Fatalf("release: %+v %v", rel, ok)
	}
	b = b.Observe(rel, t0.Add(4*time.Second), p)
	if _, ok := b.Try(t0.Add(4*time.Second), p); !ok {
		t.Error("a released lease was not taken at once")
	}
	if _, ok := b.Release(); ok {
		t.Error("a non-holder released the lease")
	}
}

func TestLeaseLabelsRoundTrip(t *testing.T) {
	r := LeaseRecord{Holder: "node2", Acquired: t0, Renewed: t0.Add(1234 * time.Millisecond), Duration: 15 * time.Second, Transitions: 7, Version: 42}
	got, err := ParseLease(LeaseLabels(r), 42)
	if err != nil || got != r {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, r)
	}
	if _, err := ParseLease(map[string]string{LabelLeaseRenewed: "yesterday"}, 1); err == nil {
		t.Error("a malformed label was accepted")
	}
	if r, err := ParseLease(nil, 5); err != nil || r.Holder != "" || r.Version != 5 {
		t.Errorf("no labels: %+v, %v", r, err)
	}
}

// latency is mostly short, sometimes up to max.
func latency(rng *rand.Rand, max time.Duration) time.Duration {
	if rng.IntN(5) == 0 {
		return time.Duration(rng.Int64N(int64(max)))
	}
	return time.Duration(rng.Int64N(int64(200 * time.Millisecond)))
}

// store is the swarm object holding the lease: compare-and-swap on its
// version, as Swarm's Raft store does.
type store struct{ rec LeaseRecord }

func (s *store) cas(want LeaseRecord) (uint64, bool) {
	if want.Version != s.rec.Version {
		return 0, false
	}
	want.Version++
	s.rec = want
	return want.Version, true
}

// TestLeaseNeverTwoLeaders simulates three agents on one store over many
// seeds: each wakes every RetryPeriod with its own offset and decides by
// its own clock, running 3 % fast or slow at most; it reads, decides
// and writes; agents crash and come back, are cut off from the store for
// a while (reads and writes fail), and their writes land late. At no
// instant may two agents lead, and no agent that has been up and reaching
// the store for two Durations + 2 RetryPeriods (+ the slowest write) is
// left without a leader for as long.
func TestLeaseNeverTwoLeaders(t *testing.T) {
	p := DefaultLeaseParams
	const step = 100 * time.Millisecond
	for seed := uint64(1); seed <= 2000; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x1ea5e))
		st := &store{rec: LeaseRecord{Version: 1}}
		type agent struct {
			e         Elector
			next      time.Time
			downTill  time.Time // crashed
			cutTill   time.Time // cannot reach the store
			inflight  *LeaseRecord
			landAt    time.Time // a write in flight lands then
			sentAt    time.Time
			reading   bool      // a read is in flight
			readStart time.Time // real time it started (the step's start)
			serveAt   time.Time // when the store serves it
			upSince   time.Time // up and reaching the store since
			rate      float64   // its clock's rate: every agent decides by its own clock
		}
		agents := make([]*agent, 3)
		for i := range agents {
			agents[i] = &agent{e: Elector{ID: string(rune('a' + i))}, next: t0.Add(time.Duration(rng.IntN(2000)) * time.Millisecond),
				rate: 0.97 + 0.06*rng.Float64()}
		}
		clock := func(ag *agent, now time.Time) time.Time {
			return t0.Add(time.Hour + time.Duration(float64(now.Sub(t0))*ag.rate))
		}
		leaderless := t0
		// A takeover whose write landed after its agent gave up on it
		// restarts every wait once more: two durations.
		bound := 2*p.Duration + 2*p.RetryPeriod + 3*time.Second
		for now := t0; now.Before(t0.Add(10 * time.Minute)); now = now.Add(step) {
			for _, ag := range agents {
				if now.Before(ag.downTill) {
					continue
				}
				if ag.inflight != nil && !now.Before(ag.landAt) {
					w := *ag.inflight
					ag.inflight = nil
					if now.Before(ag.cutTill) {
						continue // lost on the way
					}
					if v, ok := st.cas(w); ok {
						// Campaign gives a step (read and write) one retry
						// period; a write that lands later is one the agent
						// gave up on (yet it landed).
						if now.Sub(ag.readStart) <= p.RetryPeriod {
							ag.e = ag.e.Wrote(w, ag.sentAt, v)
						}
					}
				}
				if ag.reading && !now.Before(ag.serveAt) {
					ag.reading = false
					if now.Before(ag.cutTill) {
						continue
					}
					ag.e = ag.e.Observe(st.rec, clock(ag, ag.readStart), p)
					local := clock(ag, now)
					if w, ok := ag.e.Try(local, p); ok {
						ag.inflight, ag.sentAt = &w, local
						ag.landAt = now.Add(latency(rng, 3*time.Second))
					}
				}
				if now.Before(ag.next) || ag.inflight != nil || ag.reading {
					continue
				}
				ag.next = now.Add(p.RetryPeriod)
				if now.Before(ag.cutTill) {
					continue
				}
				ag.reading, ag.readStart = true, now
				ag.serveAt = now.Add(latency(rng, p.RetryPeriod-step))
				// Faults, now and then.
				switch r := rng.IntN(400); {
				case r == 0: // crash: it forgets everything it knew
					ag.downTill = now.Add(time.Duration(5+rng.IntN(30)) * time.Second)
					ag.e, ag.inflight, ag.reading = Elector{ID: ag.e.ID}, nil, false
					ag.upSince = ag.downTill
				case r < 12:
					ag.cutTill = now.Add(time.Duration(1+rng.IntN(25)) * time.Second)
					ag.upSince = ag.cutTill
				}
			}
			var leaders []string
			for _, ag := range agents {
				if !now.Before(ag.downTill) && ag.e.Leading(clock(ag, now), p) {
					leaders = append(leaders, ag.e.ID)
				}
			}
			if len(leaders) > 1 {
				t.Fatalf("seed %d, %s: two leaders %v", seed, now.Sub(t0), leaders)
			}
			if len(leaders) == 1 {
				leaderless = now
				continue
			}
			for _, ag := range agents {
				if now.Sub(leaderless) > bound && now.Sub(ag.upSince) > bound {
					var states []string
					for _, a := range agents {
						states = append(states, fmt.Sprintf("%+v down %s cut %s", a.e, a.downTill.Sub(t0), a.cutTill.Sub(t0)))
					}
					t.Fatalf("seed %d, %s: no leader for %s, though %s has been up and reaching the store for %s\nstore %+v\n%s",
						seed, now.Sub(t0), now.Sub(leaderless), ag.e.ID, now.Sub(ag.upSince), st.rec, strings.Join(states, "\n"))
				}
			}
		}
	}
}
