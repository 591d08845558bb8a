package swarm

import (
	"fmt"
	"strconv"
	"time"
)

// LeaseParams are the timings of the election, with Kubernetes leader
// election's meaning and defaults (client-go leaderelection):
//
//   - Duration: how long a candidate that sees the lease unchanged waits
//     before it takes the lease over (15 s);
//   - RenewDeadline: how long the holder keeps acting without a successful
//     renewal; after it, it stops mutating and steps down (10 s);
//   - RetryPeriod: how often every agent tries to acquire or renew (2 s).
//
// RenewDeadline < Duration is what keeps two agents from acting at once: the
// holder stops before any other agent may take over. A candidate counts
// Duration from the earliest moment the lease can have changed (see
// Observe), not from when it saw the change, so that a killed holder is
// replaced within Duration; that is safe while a read takes at most
// RetryPeriod (Campaign bounds it) and Duration - RenewDeadline ≥ 2
// RetryPeriods, which Validate checks; what is left of that margin covers
// the agents' clocks running at slightly different rates.
type LeaseParams struct {
	Duration      time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
}

// DefaultLeaseParams are client-go's defaults.
var DefaultLeaseParams = LeaseParams{Duration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}

// Validate reports timings that would let two agents act at once.
func (p LeaseParams) Validate() error {
	switch {
	case p.RetryPeriod <= 0:
		return fmt.Errorf("lease: retry period %s must be positive", p.RetryPeriod)
	case p.RenewDeadline <= p.RetryPeriod:
		return fmt.Errorf("lease: renew deadline %s must be longer than the retry period %s", p.RenewDeadline, p.RetryPeriod)
	case p.Duration-p.RenewDeadline < 2*p.RetryPeriod:
		return fmt.Errorf("lease: duration %s must exceed the renew deadline %s by two retry periods (%s)", p.Duration, p.RenewDeadline, 2*p.RetryPeriod)
	}
	return nil
}

// LeaseRecord is the lease as stored in the swarm: who holds it, when it
// was acquired and last renewed (by the holder's clock; informational, the
// decision uses the observer's own clock), and how often it changed hands.
// Version is the store object's version, for compare-and-swap.
type LeaseRecord struct {
	Holder      string
	Acquired    time.Time
	Renewed     time.Time
	Duration    time.Duration
	Transitions int
	Version     uint64
}

// same reports whether two reads show the same lease (ignoring the
// version, which other updates of the object may move).
func (r LeaseRecord) same(o LeaseRecord) bool {
	return r.Holder == o.Holder && r.Renewed.Equal(o.Renewed) && r.Transitions == o.Transitions
}

// Elector is one agent's view of the election: the last lease it read and
// since when, by its own clock, that lease may have been as it is; and when
// it last renewed successfully, measured from before it sent the write.
type Elector struct {
	ID        string
	Observed  LeaseRecord
	ChangedAt time.Time // local time from which the observed lease may have been as it is
	ReadAt    time.Time // local time the last successful read started
	RenewedAt time.Time // local time before the last successful write of ours; zero if none
}

// Observe records a read of the lease that started at readStart. A lease
// that changed since the previous read (or is read for the first time)
// changed after that read started, and at the earliest one RetryPeriod
// before this one started: the holder sent it less than RetryPeriod before
// this read was served, which was less than RetryPeriod after it started.
func (e Elector) Observe(r LeaseRecord, readStart time.Time, p LeaseParams) Elector {
	if e.ReadAt.IsZero() || !e.Observed.same(r) {
		e.ChangedAt = readStart.Add(-p.RetryPeriod)
		if e.ReadAt.After(e.ChangedAt) {
			e.ChangedAt = e.ReadAt
		}
	}
	e.Observed, e.ReadAt = r, readStart
	return e
}

// Leading reports whether the agent may mutate at now: it holds the lease
// and renewed it within the renew deadline. Check it before every batch of
// mutating calls.
func (e Elector) Leading(now time.Time, p LeaseParams) bool {
	return e.Observed.Holder == e.ID && !e.RenewedAt.IsZero() && now.Before(e.RenewedAt.Add(p.RenewDeadline))
}

// Try decides what the agent does at now with the lease it observed: write
// (acquire or renew) a record, or wait. want is the record to write with
// compare-and-swap on the observed version; ok is false when the lease is
// held by another agent that renewed it within Duration of the agent's own
// clock. Call it every RetryPeriod, after Observe.
func (e Elector) Try(now time.Time, p LeaseParams) (want LeaseRecord, ok bool) {
	r := e.Observed
	held := r.Holder != "" && r.Holder != e.ID
	if held && now.Before(e.ChangedAt.Add(p.Duration)) {
		return LeaseRecord{}, false
	}
	want = LeaseRecord{Holder: e.ID, Acquired: r.Acquired, Renewed: now, Duration: p.Duration, Transitions: r.Transitions, Version: r.Version}
	if r.Holder != e.ID {
		want.Acquired = now
		want.Transitions = r.Transitions + 1
	}
	return want, true
}

// Wrote records a successful write of want, sent at sentAt.
func (e Elector) Wrote(want LeaseRecord, sentAt time.Time, newVersion uint64) Elector {
	want.Version = newVersion
	e.Observed, e.ChangedAt, e.RenewedAt = want, sentAt, sentAt
	return e
}

// Release is the record an agent that steps down writes, so that another
// takes over at once instead of after Duration: no holder.
func (e Elector) Release() (LeaseRecord, bool) {
	if e.Observed.Holder != e.ID {
		return LeaseRecord{}, false
	}
	r := e.Observed
	r.Holder = ""
	return r, true
}

// Lease labels on the store object.
const (
	LabelLeaseHolder      = "io.fleetd.lease.holder"
	LabelLeaseAcquired    = "io.fleetd.lease.acquired"
	LabelLeaseRenewed     = "io.fleetd.lease.renewed"
	LabelLeaseDuration    = "io.fleetd.lease.duration"
	LabelLeaseTransitions = "io.fleetd.lease.transitions"
)

// LeaseLabels encodes a record as labels.
func LeaseLabels(r LeaseRecord) map[string]string {
	return map[string]string{
		LabelLeaseHolder:      r.Holder,
		LabelLeaseAcquired:    r.Acquired.UTC().Format(time.RFC3339Nano),
		LabelLeaseRenewed:     r.Renewed.UTC().Format(time.RFC3339Nano),
		LabelLeaseDuration:    r.Duration.String(),
		LabelLeaseTransitions: strconv.Itoa(r.Transitions),
	}
}

// ParseLease decodes a record from labels; missing labels read as zero
// values (a fresh lease), malformed ones as an error naming the label.
func ParseLease(labels map[string]string, version uint64) (LeaseRecord, error) {
	r := LeaseRecord{Holder: labels[LabelLeaseHolder], Version: version}
	var err error
	parseTime := func(key string) time.Time {
		v := labels[key]
		if v == "" || err != nil {
			return time.Time{}
		}
		t, perr := time.Parse(time.RFC3339Nano, v)
		if perr != nil {
			err = fmt.Errorf("lease label %s=%q: %w", key, v, perr)
		}
		return t
	}
	r.Acquired = parseTime(LabelLeaseAcquired)
	r.Renewed = parseTime(LabelLeaseRenewed)
	if v := labels[LabelLeaseDuration]; v != "" && err == nil {
		if r.Duration, err = time.ParseDuration(v); err != nil {
			err = fmt.Errorf("lease label %s=%q: %w", LabelLeaseDuration, v, err)
		}
	}
	if v := labels[LabelLeaseTransitions]; v != "" && err == nil {
		if r.Transitions, err = strconv.Atoi(v); err != nil {
			err = fmt.Errorf("lease label %s=%q: %w", LabelLeaseTransitions, v, err)
		}
	}
	return r, err
}
