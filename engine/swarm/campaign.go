package swarm

import (
	"context"
	"sync"
	"time"
)

// LeaseBackend reads and writes the lease with compare-and-swap
// (LeaseStore in a swarm).
type LeaseBackend interface {
	Read(ctx context.Context) (LeaseRecord, error)
	Write(ctx context.Context, r LeaseRecord) (uint64, error)
}

// Campaign runs one agent's side of the election: every RetryPeriod it
// reads the lease and, when Elector.Try says so, writes it. It decides
// nothing itself (Elector does); Leading is safe to call from any
// goroutine, and is what the agent checks before each batch of mutating
// calls.
type Campaign struct {
	store  LeaseBackend
	params LeaseParams
	now    func() time.Time

	mu sync.Mutex
	e  Elector
	// OnChange, if set, is called (from the campaign's goroutine) when the
	// agent starts or stops leading.
	OnChange func(leading bool)
}

// NewCampaign returns the campaign of agent id.
func NewCampaign(store LeaseBackend, id string, p LeaseParams, now func() time.Time) *Campaign {
	return &Campaign{store: store, params: p, now: now, e: Elector{ID: id}}
}

// Leading reports whether the agent may mutate now.
func (c *Campaign) Leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.e.Leading(c.now(), c.params)
}

// Holder is the holder of the lease as last read.
func (c *Campaign) Holder() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.e.Observed.Holder
}

// Run campaigns until ctx ends, then releases the lease if it holds it,
// so that another agent takes over at once.
func (c *Campaign) Run(ctx context.Context) {
	was := false
	tick := time.NewTicker(c.params.RetryPeriod)
	defer tick.Stop()
	for {
		c.step(ctx)
		if now := c.Leading(); now != was {
			if c.OnChange != nil {
				c.OnChange(now)
			}
			was = now
		}
		select {
		case <-ctx.Done():
			c.release()
			if was && c.OnChange != nil {
				c.OnChange(false)
			}
			return
		case <-tick.C:
		}
	}
}

func (c *Campaign) step(ctx context.Context) {
	// One retry period bounds the read and the write together: the
	// election's safety counts on it (LeaseParams).
	ctx, cancel := context.WithTimeout(ctx, c.params.RetryPeriod)
	defer cancel()
	readStart := c.now()
	r, err := c.store.Read(ctx)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.e = c.e.Observe(r, readStart, c.params)
	want, ok := c.e.Try(c.now(), c.params)
	c.mu.Unlock()
	if !ok {
		return
	}
	sent := c.now()
	v, err := c.store.Write(ctx, want)
	if err != nil {
		return
	}
	c.mu.Lock()
	c.e = c.e.Wrote(want, sent, v)
	c.mu.Unlock()
}

func (c *Campaign) release() {
	c.mu.Lock()
	r, ok := c.e.Release()
	c.e.RenewedAt = time.Time{} // stop leading before the write, whatever it returns
	c.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.params.RetryPeriod)
	defer cancel()
	_, _ = c.store.Write(ctx, r)
}
